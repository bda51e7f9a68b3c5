"""The exported bundle a checkpoint keeps beside it (the built-in demo target's cache): built on
first use, and again whenever the checkpoint changed or a format is missing."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from dancenow.engines.bundle import MANIFEST, read_manifest
from dancenow.errors import DanceNowError
from dancenow.export.exporter import CPU_FORMATS, FORM, FORMAT_ARTIFACTS, SAMPLES, ExportConfig, export
from dancenow.export.messages import say
from dancenow.files import sha256


def stale_reason(checkpoint: Path, bundle_dir: Path, formats: tuple[str, ...] = CPU_FORMATS,
                 half: Path | None = None) -> str | None:
    """Why `bundle_dir` must be (re)built from `checkpoint` (and `half`, an HD bundle's half size) in
    `formats`, or None when it is current."""
    if not (bundle_dir / MANIFEST).is_file():
        return f"first use: exporting {checkpoint.name} to {bundle_dir} (ONNX, OpenVINO and INT8 models, about a minute)"
    try:
        manifest = read_manifest(bundle_dir, verify=False)
    except DanceNowError as e:
        return f"{bundle_dir} is not usable ({e}): exporting it again"
    if manifest.export.get("checkpoint_sha256") != sha256(checkpoint):
        return f"{checkpoint.name} changed since {bundle_dir} was built: exporting it again"
    if half is not None and manifest.export.get("half_sha256") != sha256(half):
        return f"{half.name} (its half size) changed since {bundle_dir} was built: exporting it again"
    if (manifest.export.get("form") or 1) < FORM:
        return f"{bundle_dir} was written by an older export-engine (form {manifest.export.get('form') or 1} < {FORM}): exporting it again"
    have = {(e.get("kind"), e.get("precision")) for e in manifest.artifacts.values() if e.get("role") == "generator"}
    missing = [f for f in formats if f in FORMAT_ARTIFACTS and FORMAT_ARTIFACTS[f] not in have]
    if missing or SAMPLES not in manifest.artifacts:
        return f"{bundle_dir} was built without {', '.join(missing or [SAMPLES])}: exporting it again"
    return None


def ensure_bundle(checkpoint: str | os.PathLike, bundle_dir: str | os.PathLike,
                  half: str | os.PathLike | None = None) -> Path:
    """The bundle for `checkpoint` in `bundle_dir`: exported (the CPU formats) on first use, and again
    whenever the checkpoint's sha256 changed or a format is missing. `half`: an HD checkpoint's half
    size from that checkpoint (export's --half). Safe against two processes doing it at once."""
    checkpoint, bundle_dir = Path(checkpoint), Path(bundle_dir)
    half = Path(half) if half is not None else None
    if not checkpoint.is_file():
        raise DanceNowError(f"checkpoint {checkpoint} not found: the built-in demo target needs it "
                            "(made by `dancenow train` on `dancenow prepare --synthetic`: demo/assets/DEMO_CHECKPOINT.md)")
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(bundle_dir.parent / f".{bundle_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the bundle current
        reason = stale_reason(checkpoint, bundle_dir, half=half)
        if reason is None:
            return bundle_dir
        say(reason)
        if bundle_dir.exists():
            shutil.rmtree(bundle_dir)  # our cache: an old or half-written bundle
        export(checkpoint, bundle_dir, ExportConfig(formats=CPU_FORMATS, half=None if half is None else str(half)))
    return bundle_dir
