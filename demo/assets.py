"""Assets the project made itself: the built-in demo target's checkpoint and where its bundle is built."""

from __future__ import annotations

import os
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
# Trained by the project's own commands on the synthetic target; see assets/DEMO_CHECKPOINT.md.
DEMO_CHECKPOINT = ASSETS / "demo_checkpoint.pt"


def demo_bundle_dir() -> Path:
    """Where the demo bundle is exported on first use (DANCENOW_CACHE overrides the cache root)."""
    root = Path(os.environ.get("DANCENOW_CACHE", Path.home() / ".cache" / "dancenow"))
    return root / "bundles" / "demo"
