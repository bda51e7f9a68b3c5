"""The One Euro filter on real MediaPipe tracks: less jitter, no more than a frame of lag."""

from __future__ import annotations

import numpy as np
import pytest

from dancenow.realtime.pose.filter import OneEuroConfig, PoseFilter, jitter, lag_frames
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.skeleton import NUM_BODY, NUM_POINTS

from footage import CLIPS, STREET
from pose_tracks import WINDOW, track

CLIP_NAMES = sorted(p.name for p in CLIPS.glob("*.mp4")) if CLIPS.is_dir() else ["(no clips)"]


def body_track(poses) -> np.ndarray:
    """(T, 33, 2) body points in frame heights."""
    return np.stack([p.points[:NUM_BODY] for p in poses]) / poses[0].frame_size[0]


@pytest.mark.data
@pytest.mark.parametrize("name", CLIP_NAMES)
def test_filter_cuts_jitter_without_lag(name):
    clip = CLIPS / name
    raw = [p for p in track(clip, None if clip == STREET else WINDOW) if p.detected]
    f = PoseFilter()
    smooth = [f.apply(p) for p in raw]
    cut = 1 - jitter(body_track(smooth)) / jitter(body_track(raw))
    lag = lag_frames(body_track(raw), body_track(smooth))
    assert cut >= 0.40, f"{name}: jitter cut only {cut:.0%}"
    assert -0.25 <= lag <= 1.0, f"{name}: lag {lag:.2f} frames"


def test_lag_estimate_finds_a_known_delay():
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(200, 3, 2)), axis=0)
    assert abs(lag_frames(x[3:], x[:-3]) - 3) < 0.05  # the second trails the first by 3
    assert abs(lag_frames(x, x)) < 0.05


def _pose(t: float, x: float = 100.0) -> Pose:
    return Pose(np.full((NUM_POINTS, 2), x), np.ones(NUM_POINTS), (480, 640), t)


def test_still_pose_is_left_where_it_is():
    f = PoseFilter()
    for i in range(10):
        out = f.apply(_pose(i / 30))
    np.testing.assert_allclose(out.points, 100.0, atol=1e-3)


def test_missed_detection_holds_then_resets():
    f = PoseFilter(OneEuroConfig(hold_seconds=0.2))
    for i in range(5):
        last = f.apply(_pose(i / 30, 100 + i))
    held = f.apply(Pose.missing((480, 640), 5 / 30))
    assert held.detected and held.extras["held"] and held.timestamp == 5 / 30
    np.testing.assert_array_equal(held.points, last.points)
    assert f.apply(Pose.missing((480, 640), 4 / 30 + 0.15)).detected  # still within the hold
    gone = f.apply(Pose.missing((480, 640), 4 / 30 + 0.25))
    assert not gone.detected
    # After the reset the next detection starts afresh instead of gliding from the old place.
    back = f.apply(_pose(1.0, 300.0))
    np.testing.assert_allclose(back.points, 300.0)


def test_returning_point_restarts_its_filter():
    f = PoseFilter()
    f.apply(_pose(0.0, 100.0))
    hidden = _pose(1 / 30, 100.0)
    hidden.confidence[40:] = 0.0  # a hand lost
    f.apply(hidden)
    back = _pose(2 / 30, 100.0)
    back.points[40:] = 200.0  # it reappears elsewhere
    out = f.apply(back)
    np.testing.assert_allclose(out.points[40:], 200.0)
    np.testing.assert_allclose(out.points[:40], 100.0, atol=1e-3)
