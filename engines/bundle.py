"""The target bundle: one folder, one `manifest.json`, its artifacts beside it.

This module is the single definition of the manifest. `export` writes bundles with it and
`engines` reads and verifies them with it, so the two can never disagree.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from dancenow.errors import DanceNowError
from dancenow.files import sha256, write_atomic
from dancenow.schema import parse, read_json

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
FIX = "re-export the bundle with this version's `export-engine`"


@dataclass
class Manifest:
    """What a bundle holds and what it was built for (see ../shared/DESIGN.md, Contracts)."""

    name: str
    resolution: tuple[int, int]  # (height, width)
    profile: str = "cpu-realtime"
    generator: dict = field(default_factory=dict)  # inputs/outputs, config, gflop
    face: dict | None = None  # {"crop": px, "config": {...}} or None
    renderer: dict = field(default_factory=dict)  # RenderConfig.to_dict()
    pose_stats: dict | None = None  # the target's normalization statistics
    training: dict = field(default_factory=dict)  # steps, data, losses, duration
    artifacts: dict[str, dict] = field(default_factory=dict)  # relative path -> {"sha256", "kind", "precision", ...}
    export: dict = field(default_factory=dict)  # checkpoint_sha256, tool versions, parity figures
    half: str | None = None  # HD: the folder of the bundle at half the size (the coarse network alone)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["resolution"] = list(self.resolution)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = MANIFEST) -> Manifest:
        """Every field type-checked; unknown fields refused (a bundle from a newer version says so)."""
        return parse(cls, d, where, FIX)


def artifact_path(bundle: Path, rel: str) -> Path:
    """`bundle / rel`, refused unless it stays inside the bundle: no absolute paths, no `..`, no
    symbolic links (a bundle from a stranger must not make us read or hash files elsewhere)."""
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts or "\\" in rel:
        raise DanceNowError(f"{bundle}/{MANIFEST} names artifact {rel!r} outside the bundle: "
                            "artifacts are plain file names inside the bundle folder; re-export it")
    path = bundle / rel
    for i in range(1, len(parts) + 1):
        if (bundle.joinpath(*parts[:i])).is_symlink():
            raise DanceNowError(f"{path} is a symbolic link: a bundle holds its own files; re-export it")
    return path


def write_manifest(bundle: str | os.PathLike, manifest: Manifest) -> Path:
    """Hash every listed artifact and write the manifest atomically."""
    bundle = Path(bundle)
    for rel, entry in manifest.artifacts.items():
        entry["sha256"] = sha256(bundle / rel)
        entry["bytes"] = (bundle / rel).stat().st_size
    path = bundle / MANIFEST
    write_atomic(path, (json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n").encode())
    return path


def read_manifest(bundle: str | os.PathLike, verify: bool = True) -> Manifest:
    """Load and check a bundle's manifest; with `verify`, check every artifact's sha256.

    Raises DanceNowError with what is wrong and what to rebuild.
    """
    bundle = Path(bundle)
    path = bundle / MANIFEST
    if not bundle.is_dir():
        raise DanceNowError(f"target bundle {bundle} is not a folder: pass the folder that export-engine wrote")
    if not path.is_file():
        raise DanceNowError(f"{bundle} has no {MANIFEST}: it is not a target bundle; run `export-engine RUN_DIR --out {bundle}`")
    raw = read_json(path, "bundle manifest", FIX)
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise DanceNowError(
            f"{path} has schema version {version!r}, this DanceNow reads version {SCHEMA_VERSION}: "
            "re-export the bundle with this version's `export-engine`"
        )
    manifest = Manifest.from_dict(raw, str(path))
    for rel in manifest.artifacts:
        artifact_path(bundle, rel)
    if verify:
        verify_artifacts(bundle, manifest)
    return manifest


def verify_artifacts(bundle: Path, manifest: Manifest, only: list[str] | None = None) -> None:
    for rel in only or list(manifest.artifacts):
        entry = manifest.artifacts[rel]
        p = artifact_path(bundle, rel)
        if not p.is_file():
            raise DanceNowError(f"bundle {bundle} lists {rel} but the file is missing: re-export the bundle")
        if sha256(p) != entry.get("sha256"):
            raise DanceNowError(
                f"{p} does not match the sha256 in {MANIFEST}: the file was changed or damaged; "
                "re-export the bundle with `export-engine`"
            )
