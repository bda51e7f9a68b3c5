"""A performer at a desk, on real footage: dancer A cropped to head-to-waist and head-to-knees,
stepping out from behind a desk, and an empty room, through the live pipeline (what `dancenow
run` runs) and `transfer`, the output read back by a real MediaPipe."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from dancenow.realtime.bench import desk
from dancenow.realtime.live.pipeline import PipelineConfig
from dancenow.realtime.live.show import open_show
from dancenow.realtime.live.target import Target
from dancenow.realtime.media.reader import iter_frames
from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.stance import HIPS

from live_helpers import drain
from partial_clips import cropped, empty_room, occluded

pytestmark = [pytest.mark.slow, pytest.mark.data]
IDX = sk.INDEX
ARMS = (("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"))
LEGS = (("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"))


def angle(p: Pose, a: str, b: str) -> float:
    d = p.points[IDX[b]] - p.points[IDX[a]]
    return float(np.degrees(np.arctan2(d[1], d[0])))


def off(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def live(clip: Path, bundle: Path) -> list:
    """Every output frame of the live pipeline on `clip`, unpaced and lossless."""
    show = open_show(clip, bundle, PipelineConfig(), paced=False)
    with show.pipeline as pipeline:
        return drain(pipeline, timeout=240.0)


def standing(images, target: Target) -> np.ndarray:
    """Per image: the target standing, both ankles in its own band (`bench desk`'s measure)."""
    return desk.standing(desk.track(images), target)


@pytest.fixture(scope="module")
def target(demo_bundle) -> Target:
    return Target.open(demo_bundle)


@pytest.mark.parametrize("bottom", [0.57, 0.80], ids=["head-to-waist", "head-to-knees"])
def test_a_desk_performer_drives_a_whole_target(dancer_a, demo_bundle, target, tmp_path, bottom):
    clip = cropped(dancer_a, tmp_path / "desk.mp4", 0.10, bottom, size=(480, 640) if bottom < 0.7 else (640, 480))
    frames = live(clip, demo_bundle)
    assert len(frames) == 150
    views = {f.drawn.extras.get("view") for f in frames[10:]}
    assert views == {"waist" if bottom < 0.7 else "knees"}
    # the arms drawn are the performer's (the placement scales and moves, never bends)
    for f in frames:
        if f.state == "live":
            assert max(off(angle(f.drawn, a, b), angle(f.pose, a, b)) for a, b in ARMS) < 0.01
    ok = standing([f.generated for f in frames], target)
    assert ok.all(), f"no ankles in the target's standing band on frames {np.flatnonzero(~ok).tolist()}"


def test_transfer_takes_desk_footage_and_says_what_it_completed(dancer_a, demo_bundle, target, tmp_path, caplog):
    from dancenow.realtime.transfer import TransferConfig, transfer

    clip = cropped(dancer_a, tmp_path / "desk.mp4", 0.10, 0.57, frames=60)
    with caplog.at_level(logging.INFO):
        out = transfer(clip, target, tmp_path / "out.mp4", TransferConfig())
    assert "cut off in 60 of 60 frames (waist 60)" in caplog.text
    ok = standing([f.image for f in iter_frames(out)], target)
    assert len(ok) == 60 and ok.all()


def test_stepping_out_from_behind_a_desk_glides_into_full_control(dancer_a, demo_bundle, tmp_path):
    # the desk's edge drops from 0.57 of the height to below the frame between 2 s and 4 s; her
    # feet (about 0.92) are in view from about 3.6 s
    clip = occluded(dancer_a, tmp_path / "widen.mp4", lambda t: 0.57 if t < 2 else min(1.0, 0.57 + (t - 2) / 2 * 0.43))
    frames = live(clip, demo_bundle)
    h = frames[0].drawn.frame_size[0]
    hips = np.array([f.drawn.points[list(HIPS), 1].mean() / h for f in frames])
    assert np.abs(np.diff(hips)).max() <= 0.04
    t = np.array([f.drawn.timestamp for f in frames]) - frames[0].drawn.timestamp
    assert frames[int(np.searchsorted(t, 1.5))].drawn.extras["view"] == "waist"
    late = [f for f, s in zip(frames, t, strict=True) if s >= 3.65 + 1.0]
    assert late and all(f.drawn.extras["view"] == "full" for f in late)
    errors = [off(angle(f.drawn, a, b), angle(f.pose, a, b)) for f in late for a, b in LEGS]
    assert max(errors) < 20.0  # the performer's own legs, not the completed stance


def test_an_empty_room_shows_the_target_standing(demo_bundle, target, tmp_path):
    frames = live(empty_room(tmp_path / "empty.mp4", seconds=4.0), demo_bundle)
    assert len(frames) == 96 and all(f.state == "rest" for f in frames)
    ok = standing([f.generated for f in frames], target)
    assert ok.mean() >= 0.95, f"standing in {ok.mean():.0%} of frames"


def test_bench_desk_measures_both_crops_through_both_paths(dancer_a, demo_bundle, tmp_path):
    """`dancenow bench desk`: issue 25's arm and standing measures, on the first 40 frames."""
    r = desk.run(dancer_a, demo_bundle, keep=tmp_path, frames=40)
    assert set(r["crops"]) == {"head to waist", "head to knees"}
    assert r["crops"]["head to waist"]["size"] == [480, 640]
    for view, c in r["crops"].items():
        for path in ("run --out (live)", "transfer"):
            s = c[path]
            assert s["frames"] == 40, (view, path)
            assert s["standing"] == 1.0, (view, path)  # a whole target on every frame
            assert s["left upper arm"] >= 0.8 and s["right upper arm"] >= 0.8, (view, path, s)
            assert all(0.0 <= s[n] <= 1.0 for n, _, _ in desk.BONES)
    assert all((tmp_path / f).is_file() for f in ("waist.transfer.mp4", "knees.mp4", "knees.live.mp4"))
    table = desk.format_table(r)
    assert "host: " in table and "head to knees" in table and "transfer" in table


def test_dancer_b_at_a_desk_moves_the_targets_arms(demo_bundle, tmp_path):
    """Issue 25's first check on the clip README reports it with (dancer B, 288 frames): every arm
    bone within 20 degrees of hers, the target standing in its band on every frame. Transfer is
    held to the bar itself (98.6 % at its lowest on an Intel Xeon with AVX-512 VNNI); the live
    path's weakest bone was 92.4 % there and INT8 kernels move such figures by 2-4 points from
    host to host, so it is held to 85 % here as a guard, and README gives the measured figures."""
    from footage import CLIPS

    clip = CLIPS / "dancer_b_red_skirt_full_body.mp4"
    if not clip.is_file():
        pytest.skip(f"needs {clip} (../shared/data)")
    r = desk.run(clip, demo_bundle, keep=tmp_path)
    for view, c in r["crops"].items():
        for path, bar in (("transfer", desk.BAR), ("run --out (live)", 0.85)):
            s = c[path]
            assert s["standing"] == 1.0, (view, path)
            low = {n: s[n] for n, _, _ in desk.BONES if s[n] < bar}
            assert not low, (view, path, low)
