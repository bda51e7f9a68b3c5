"""The studio's live verdict on a recording: whole in view, distance, light, and the moves seen."""

from __future__ import annotations

import numpy as np

from dancenow.realtime.live.coverage import MOVES, Coverage
from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.choreography import pose_at
from dancenow.realtime.pose.pose import Pose

GREY = np.full((120, 160, 3), 128, np.uint8)


def turned(pose: Pose) -> Pose:
    """`pose` seen from the side: the shoulders and hips squeezed onto the body's centre line."""
    pts = pose.points.copy()
    centre = pts[[sk.LEFT_SHOULDER, sk.RIGHT_SHOULDER]].mean(0)[0]
    for i in (sk.LEFT_SHOULDER, sk.RIGHT_SHOULDER, sk.LEFT_HIP, sk.RIGHT_HIP):
        pts[i, 0] = centre + (pts[i, 0] - centre) * 0.2
    return pose.copy(points=pts)


def test_the_built_in_dance_shows_its_moves_and_a_turn_completes_the_meter():
    c = Coverage()
    for i in range(600):  # one loop of the dance: arm waves, both arms up, squats, side steps
        c.update(pose_at(i / 30), GREY)
    v = c.verdict()
    assert v["in_view"] and v["whole_body"] == 1.0 and {"arms up", "arm to the side", "crouch"} <= set(v["seen"])
    assert "turn" not in v["seen"] and v["advice"] == ["still to show: turn"]
    for _ in range(10):
        c.update(turned(pose_at(0.2)), GREY)
    v = c.verdict()
    assert v["coverage"] == 1.0 and v["seen"] == list(MOVES) and v["advice"] == []


def test_nobody_cut_off_too_far_and_too_dark_are_said():
    c = Coverage()
    c.update(Pose.missing((240, 320)), GREY)
    assert c.verdict()["advice"][0].startswith("nobody in view")
    legs = pose_at(1.0)
    conf = legs.confidence.copy()
    conf[[sk.INDEX[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]] = 0.0
    c.update(legs.copy(confidence=conf), GREY)
    assert c.verdict()["advice"][0].startswith("head to feet not in view")
    small = pose_at(1.0).transformed(0.4, (0.0, 0.0))
    c.update(small, np.full((120, 160, 3), 20, np.uint8))
    advice = c.verdict()["advice"]
    assert advice[0].startswith("far away") and advice[1].startswith("too dark")
    c.reset()
    assert c.verdict()["frames"] == 0 and c.verdict()["advice"] == ["nobody in view: step into the frame"]
