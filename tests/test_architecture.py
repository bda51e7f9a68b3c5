"""docs/ARCHITECTURE.md's import rules, enforced: every module of ours, every import in it (lazy
imports inside functions and TYPE_CHECKING blocks included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GROUND = {"dancenow.errors", "dancenow.files", "dancenow.host", "dancenow.schema", "dancenow.targets",
          "dancenow.vendor_telemetry"}

# area -> the areas it may import (besides the ground and itself)
ALLOWED: dict[str, set[str]] = {
    "ground": set(),
    "engines": set(),
    "realtime.pose": set(),
    "realtime.media": set(),
    "realtime.live": {"engines", "realtime.pose", "realtime.media"},
    "realtime.serve": {"realtime.live", "engines", "realtime.pose", "realtime.media"},
    "realtime.bench": {"realtime.serve", "realtime.live", "realtime.pose", "realtime.media", "realtime", "engines",
                       "training", "export"},
    "realtime": {"realtime.serve", "realtime.live", "realtime.pose", "realtime.media", "realtime.bench", "engines"},
    "training": {"realtime.pose", "realtime.media"},
    "export": {"training", "engines", "realtime.pose", "realtime.media"},
    "demo": {"realtime", "realtime.live", "realtime.pose", "realtime.media", "realtime.serve"},
    "roof": {"*"},
}
FOLDERS = {"engines": "engines", "realtime": "realtime", "training": "training", "export": "export",
           "demo": "demo", "dancenow": "dancenow"}


def area_of_module(name: str) -> str:
    """`dancenow.realtime.live.pipeline` -> "realtime.live"; the ground's modules -> "ground"."""
    if name == "dancenow.cli":
        return "roof"
    if name in GROUND or name == "dancenow":
        return "ground"
    parts = name.split(".")[1:]
    if parts[0] == "realtime" and len(parts) > 1 and parts[1] in ("pose", "media", "live", "serve", "bench"):
        return f"realtime.{parts[1]}"
    return parts[0]


def modules() -> list[tuple[str, Path]]:
    out = []
    for folder in FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join(["dancenow"] + ([] if folder == "dancenow" else [folder]) + parts)
            out.append((name, path))
    return out


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("dancenow")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dancenow") and not node.level:
            # `from dancenow.realtime.live import pixelstamp` imports the submodule
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def resolve(imported: str, known: set[str]) -> str:
    """The module an import names (dropping a trailing object name like a class)."""
    while imported not in known and "." in imported:
        imported = imported.rsplit(".", 1)[0]
    return imported


def test_every_import_follows_the_architecture():
    mods = modules()
    assert len(mods) > 60, "the walk found too few modules: the layout changed?"
    known = {name for name, _ in mods}
    bad = []
    for name, path in mods:
        src = area_of_module(name)
        for line, imported in imports_of(path):
            target = resolve(imported, known)
            dst = area_of_module(target)
            if dst == "roof":
                bad.append(f"{path.relative_to(REPO)}:{line} imports the command line ({target}): nothing may")
            elif dst not in ("ground", src) and "*" not in ALLOWED[src] and dst not in ALLOWED[src]:
                bad.append(f"{path.relative_to(REPO)}:{line} ({src}) imports {target} ({dst})")
    assert not bad, "imports against docs/ARCHITECTURE.md:\n" + "\n".join(bad)


@pytest.mark.parametrize("name, area", [
    ("dancenow.cli", "roof"), ("dancenow.files", "ground"), ("dancenow.realtime.live.show", "realtime.live"),
    ("dancenow.realtime.transfer", "realtime"), ("dancenow.training.prepare", "training"),
])
def test_areas_are_read_off_the_module_names(name, area):
    assert area_of_module(name) == area


def test_the_checker_catches_a_floor_importing_upwards(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from dancenow.realtime.live.target import Target\n")
    [(line, imported)] = imports_of(bad)
    assert line == 2 and area_of_module(resolve(imported, {"dancenow.realtime.live.target"})) == "realtime.live"
    assert "realtime.live" not in ALLOWED["realtime.pose"]


def test_no_module_is_over_about_400_lines():
    long = [f"{p.relative_to(REPO)}: {n}" for _, p in modules() if (n := len(p.read_text().splitlines())) > 420]
    assert not long, long


def test_one_file_reader_cameras_only_through_opencv():
    """Video files go through realtime/media/reader.py; cv2.VideoCapture only opens cameras."""
    users = [p.relative_to(REPO).as_posix() for _, p in modules() if "cv2.VideoCapture(" in p.read_text()]
    assert users == ["realtime/live/sources.py"], users
