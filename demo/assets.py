"""Assets the project made itself: the built-in demo targets' checkpoints and where their bundles are built."""

from __future__ import annotations

import os
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
# Trained by the project's own commands on the synthetic target; see assets/DEMO_CHECKPOINT.md.
DEMO_CHECKPOINT = ASSETS / "demo_checkpoint.pt"
# The same synthetic target at 512 (`cpu-hd`: one bundle, two sizes; its half size runs where 512 does not fit).
DEMO_HD_CHECKPOINT = ASSETS / "demo_hd_checkpoint.pt"
# The built-in targets by name (`--target demo-hd`): the checkpoint and the one its half size comes
# from (the 256 demo, with its own face stage); `demo` is the default when no target is given.
BUILT_IN = {"demo": (DEMO_CHECKPOINT, None), "demo-hd": (DEMO_HD_CHECKPOINT, DEMO_CHECKPOINT)}


def demo_bundle_dir(name: str = "demo") -> Path:
    """Where a built-in target's bundle is exported on first use (DANCENOW_CACHE overrides the cache root)."""
    root = Path(os.environ.get("DANCENOW_CACHE", Path.home() / ".cache" / "dancenow"))
    return root / "bundles" / name
