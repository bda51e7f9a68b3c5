"""The one validating JSON parser: wrong types, unknown and missing fields are refused by name,
never a traceback; and bundles cannot point outside themselves."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field

import pytest

from dancenow.engines.bundle import read_manifest
from dancenow.errors import DanceNowError
from dancenow.realtime.pose.normalize import PoseStats
from dancenow.realtime.pose.renderer import RenderConfig
from dancenow.schema import parse, read_json


@dataclass
class Inner:
    size: tuple[int, int]
    scale: float = 1.0


@dataclass
class Outer:
    name: str
    inner: Inner
    tags: list[str] = field(default_factory=list)
    extra: dict[str, int] = field(default_factory=dict)
    maybe: int | None = None
    on: bool = False


GOOD = {"name": "a", "inner": {"size": [2, 3], "scale": 2}, "tags": ["x"], "extra": {"k": 1}, "maybe": None, "on": True}


def test_a_good_document_is_built_with_its_types():
    o = parse(Outer, GOOD, "t.json", "fix it")
    assert o.inner.size == (2, 3) and o.inner.scale == 2.0 and isinstance(o.inner.scale, float)
    assert o.tags == ["x"] and o.extra == {"k": 1} and o.maybe is None and o.on is True


@pytest.mark.parametrize("change, named", [
    ({"name": 3}, "'name' must be a string"),
    ({"inner": {"size": [2]}}, "'inner.size' must be a list of 2"),
    ({"inner": {"size": [2, "3"]}}, "'inner.size[1]' must be a whole number"),
    ({"inner": {"size": [2, 3], "scale": "big"}}, "'inner.scale' must be a finite number"),
    ({"inner": {"size": [2, 3], "depth": 1}}, "unknown field 'inner.depth'"),
    ({"tags": "x"}, "'tags' must be a list"),
    ({"extra": {"k": 1.5}}, "'extra.k' must be a whole number"),
    ({"maybe": True}, "'maybe' must be a whole number"),
    ({"on": 1}, "'on' must be true or false"),
    ({"surprise": 1}, "unknown field 'surprise'"),
])
def test_a_wrong_field_is_named(change, named):
    with pytest.raises(DanceNowError, match="fix it") as e:
        parse(Outer, {**GOOD, **change}, "t.json", "fix it")
    assert named in str(e.value) and str(e.value).startswith("t.json: ")


def test_missing_fields_and_wrong_shapes():
    with pytest.raises(DanceNowError, match="field 'inner' is missing"):
        parse(Outer, {"name": "a"}, "t.json", "fix")
    for top in ([], "x", 3, None):
        with pytest.raises(DanceNowError, match="must be a JSON object"):
            parse(Outer, top, "t.json", "fix")
    with pytest.raises(DanceNowError, match="finite"):
        parse(Inner, {"size": [1, 1], "scale": float("nan")}, "t.json", "fix")


def test_files_that_are_not_json_are_clear_errors(tmp_path):
    for content in (b"{", b"\xff\xfe", b"[" * 100_000):
        p = tmp_path / "c.json"
        p.write_bytes(content)
        with pytest.raises(DanceNowError, match="not valid JSON"):
            read_json(p, "calibration file", "record one")
    with pytest.raises(DanceNowError, match="not found"):
        read_json(tmp_path / "none.json", "calibration file", "record one")


def test_pose_statistics_and_renderer_settings_are_checked(tmp_path):
    good = {"frame_size": [256, 192], "ankle_close": 240.0, "ankle_far": 220.0, "ankle_median": 230.0,
            "height_close": 200.0, "height_far": 180.0, "height_median": 190.0, "x_center": 96.0, "frames": 30}
    assert PoseStats.from_dict(good).frame_size == (256, 192)
    cal = tmp_path / "me.json"
    cal.write_text(json.dumps({**good, "frames": "30"}))
    with pytest.raises(DanceNowError, match=r"me.json: field 'frames' must be a whole number.*dancenow calibrate"):
        PoseStats.read(cal)
    cal.write_text(json.dumps({**good, "mode": "three-position"}))
    with pytest.raises(DanceNowError, match="mode"):
        PoseStats.read(cal)
    with pytest.raises(DanceNowError, match="unknown field 'glow'"):
        RenderConfig.from_dict({**RenderConfig().to_dict(), "glow": 1})


def _copy(bundle, tmp_path):
    out = tmp_path / "b"
    shutil.copytree(bundle, out)
    return out, json.loads((out / "manifest.json").read_text())


def test_a_mistyped_manifest_is_refused_naming_the_field(live_bundle, tmp_path):
    out, m = _copy(live_bundle, tmp_path)
    (out / "manifest.json").write_text(json.dumps({**m, "resolution": "256x192"}))
    with pytest.raises(DanceNowError, match="'resolution' must be a list of 2.*export-engine"):
        read_manifest(out)
    (out / "manifest.json").write_text(json.dumps({**m, "unexpected": 1}))
    with pytest.raises(DanceNowError, match="unknown field 'unexpected'"):
        read_manifest(out)


@pytest.mark.parametrize("rel", ["/etc/passwd", "../outside.onnx", "sub/../../x.onnx"])
def test_artifacts_must_stay_inside_the_bundle(live_bundle, tmp_path, rel):
    out, m = _copy(live_bundle, tmp_path)
    m["artifacts"][rel] = {"kind": "onnx", "role": "generator", "precision": "fp32", "sha256": "0" * 64}
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DanceNowError, match="outside the bundle"):
        read_manifest(out)


def test_a_symlinked_artifact_is_refused(live_bundle, tmp_path):
    out, m = _copy(live_bundle, tmp_path)
    rel = next(iter(m["artifacts"]))
    real = tmp_path / "elsewhere.bin"
    os.replace(out / rel, real)
    os.symlink(real, out / rel)
    with pytest.raises(DanceNowError, match="symbolic link"):
        read_manifest(out)
