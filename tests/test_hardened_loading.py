"""Loading never runs what a file says: a checkpoint pickle with code in it is refused (weights only),
and a bundle's TorchScript file is checked against the manifest's sha256 before torch sees it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from dancenow.errors import DanceNowError
from dancenow.training.checkpoint import FORMAT, load_checkpoint, save_checkpoint


class _Payload:
    """Unpickling this calls open(path, "w"): a stand-in for any code a pickle can run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def test_a_checkpoint_with_code_in_it_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "checkpoint.pt"
    torch.save({"format": FORMAT, "step": 1, "generator": {"w": torch.ones(1)}, "x": _Payload(marker)}, evil)
    with pytest.raises(DanceNowError, match=r"could run code\), so it is refused"):
        load_checkpoint(evil)
    assert not marker.exists(), "loading ran the pickle's code"
    torch.load(evil, weights_only=False)  # the payload is real: an unsafe load runs it
    assert marker.exists()


def test_our_checkpoints_load_weights_only(tmp_path: Path) -> None:
    """The committed demo checkpoints and what the trainer writes hold only safe types."""
    from dancenow.demo import assets

    for checkpoint, _ in assets.BUILT_IN.values():
        demo = load_checkpoint(checkpoint)
        assert demo["generator"] and demo["format"] == FORMAT
        assert torch.serialization.get_unsafe_globals_in_checkpoint(checkpoint) == []
    state = {"step": 3, "generator": {"w": torch.ones(2)}, "summary": {"losses": [1.0, 2.5], "note": "é"},
             "train_state": {"rng": {"0": {"torch": torch.get_rng_state(), "numpy": {"state": {"state": 2**100}}}},
                             "betas": (0.5, 0.999)}}
    save_checkpoint(tmp_path / "c.pt", state)
    assert load_checkpoint(tmp_path / "c.pt")["summary"]["note"] == "é"


def _copy_bundle(bundle: Path, out: Path, changed: str) -> Path:
    """The bundle with every file hard-linked except `changed`, which is copied (to be altered)."""
    out.mkdir()
    for p in bundle.iterdir():
        (shutil.copy2 if p.name == changed else os.link)(p, out / p.name)
    return out


def test_a_changed_torchscript_file_is_refused_before_loading(live_bundle: Path, tmp_path: Path) -> None:
    from dancenow.engines import load_engine

    manifest = json.loads((live_bundle / "manifest.json").read_text())
    ts = [rel for rel, e in manifest["artifacts"].items() if e.get("kind") == "torchscript" and e.get("role") == "generator"]
    if not ts:
        pytest.skip("this bundle has no TorchScript generator")
    out = _copy_bundle(live_bundle, tmp_path / "b", ts[0])
    data = bytearray((out / ts[0]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / ts[0]).write_bytes(bytes(data))
    with pytest.raises(DanceNowError, match="does not match the sha256"):
        load_engine(out, backend="torch")
