"""`dancenow make-target`: footage it cannot use is refused with a reason before any training, names
are folder names and nothing else, and a named target is found by `serve --target NAME`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dancenow.errors import DanceNowError
from dancenow.export.make_target import FootageConfig, MakeTargetConfig, check_footage, make_target
from dancenow.targets import check_name, targets_dir

from footage import DANCER_A
from live_helpers import demo_clip
from partial_clips import cropped, empty_room


@pytest.mark.parametrize("bad", ["../evil", "a/b", ".hidden", "-x", "", "x" * 65, "naïve", "a b", "c:\\x"])
def test_names_with_path_characters_are_refused(bad):
    with pytest.raises(DanceNowError, match="target name"):
        check_name(bad)
    assert check_name("alice_2-b") == "alice_2-b"


def test_a_text_file_renamed_mp4_and_an_empty_file_are_refused(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(DanceNowError) as e:
        check_footage(text)
    assert "notes.mp4" in str(e.value)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DanceNowError, match="empty \\(0 bytes\\)"):
        check_footage(empty)


def test_nobody_too_short_and_feet_cut_off_are_refused_before_training(tmp_path):
    with pytest.raises(DanceNowError, match="nobody found in 100% of the frames"):
        check_footage(empty_room(tmp_path / "room.mp4", seconds=5.0))
    short = demo_clip(tmp_path / "short.mp4", frames=40)
    with pytest.raises(DanceNowError, match="only 40 frames"):
        check_footage(short)
    # the whole chain stops at the check: nothing prepared, nothing trained
    root = tmp_path / "targets"
    with pytest.raises(DanceNowError, match="only 40 frames"):
        make_target(short, "shorty", MakeTargetConfig(minutes=1, targets=root))
    assert not (root / ".work" / "shorty" / "data").exists() and not (root / "shorty").exists()


@pytest.mark.data
def test_feet_out_of_view_are_refused_with_what_to_do(tmp_path):
    if not DANCER_A.is_file():
        pytest.skip("real footage not found (../shared/data)")
    desk = cropped(DANCER_A, tmp_path / "desk.mp4", 0.10, 0.57)
    with pytest.raises(DanceNowError, match="the feet are out of view in 100% of the frames: step back"):
        check_footage(desk)
    report = check_footage(DANCER_A, FootageConfig(samples=12))
    assert report.frames == 150 and report.person == 1.0 and report.full_body >= 0.9


def test_serve_finds_a_named_target(tmp_path, monkeypatch):
    from dancenow.cli import _default_bundle

    monkeypatch.setenv("DANCENOW_TARGETS", str(tmp_path))
    assert targets_dir() == tmp_path
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "manifest.json").write_text("{}")
    assert _default_bundle("alice") == tmp_path / "alice"
    assert _default_bundle("bob") == Path("bob")  # not a target: taken as a path (and refused there)
    assert _default_bundle(os.fspath(tmp_path / "alice")) == tmp_path / "alice"
    (tmp_path / "demo-hd").mkdir()  # a user's target named like a built-in one is theirs
    (tmp_path / "demo-hd" / "manifest.json").write_text("{}")
    assert _default_bundle("demo-hd") == tmp_path / "demo-hd"
