"""Partial views: what the camera shows, the target's stance lending the rest, placement by the
upper body, gliding between maps, and the target at rest when nobody is in view (no footage)."""

from __future__ import annotations

import numpy as np
import pytest

from dancenow.errors import DanceNowError
from dancenow.realtime.live.presence import REST, RETURN, Presence
from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.choreography import pose_at
from dancenow.realtime.pose.normalize import PoseStats, fit_stats
from dancenow.realtime.pose.placement import (
    EDN,
    FULL,
    HEAD,
    KNEES_VIEW,
    UPPER,
    WAIST,
    Placement,
    PlacementConfig,
    ViewTracker,
    seen_view,
)
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.stance import ANKLES, FEET, HIPS, KNEES, Stance, typical_stance

SIZE = (256, 192)
FPS = 24.0
IDX = sk.INDEX


def hidden(pose: Pose, below: tuple[int, ...]) -> Pose:
    """`pose` with the points `below` untracked (confidence 0), as a camera that does not see them."""
    conf = pose.confidence.copy()
    conf[list(below)] = 0.0
    return pose.copy(confidence=conf)


def waist(pose: Pose) -> Pose:
    return hidden(pose, (*KNEES, *ANKLES, *FEET))


def short_legs(pose: Pose, k: float = 0.6) -> Pose:
    """A performer whose legs are `k` times the dancer's: the torso and the height give two
    different scales, so switching from the upper-body map to EDN's moves the body."""
    pts = pose.points.copy()
    hip = pts[list(HIPS)].mean(axis=0)
    for i in (*KNEES, *ANKLES, *FEET):
        pts[i] = hip + (pts[i] - hip) * k
    return pose.copy(points=pts)


def angle(p: Pose, a: str, b: str) -> float:
    d = p.points[IDX[b]] - p.points[IDX[a]]
    return float(np.degrees(np.arctan2(d[1], d[0])))


@pytest.fixture(scope="module")
def target() -> PoseStats:
    return fit_stats([pose_at(t / 10, SIZE) for t in range(200)])


def test_the_view_is_the_lowest_part_shown():
    p = pose_at(1.0, SIZE)
    assert seen_view(p) == FULL
    assert seen_view(hidden(p, ANKLES)) == KNEES_VIEW
    assert seen_view(waist(p)) == WAIST
    assert seen_view(hidden(p, (*HIPS, *KNEES, *ANKLES, *FEET))) == HEAD
    # a point outside the frame is not shown, however confident MediaPipe is about it
    assert seen_view(p.copy(frame_size=(int(p.points[IDX["left_knee"], 1]) - 5, SIZE[1]))) == WAIST
    # cut between the ankles and the feet: MediaPipe then puts confident ankles on the bottom edge
    # (a head-to-knees crop of dancer A), but no foot is in view, so the legs are not whole
    edge = int(p.points[list(ANKLES), 1].max()) + 1
    assert (p.points[list(FEET), 1] >= edge).all()
    assert seen_view(p.copy(frame_size=(edge, SIZE[1]))) == KNEES_VIEW


def test_the_view_changes_only_after_it_persists():
    views = ViewTracker(frames=5)
    p = pose_at(1.0, SIZE)
    assert views.update(waist(p)) == WAIST
    assert views.update(p) == WAIST  # MediaPipe guessing legs for a frame does not count
    assert views.update(waist(p)) == WAIST
    assert [views.update(p) for _ in range(5)] == [WAIST] * 4 + [FULL]


def test_stance_recorded_by_fit_stats_is_a_real_training_frame(target):
    poses = [pose_at(t / 10, SIZE) for t in range(200)]
    rest = np.asarray(typical_stance(poses))
    assert rest.shape == (sk.NUM_BODY, 2)
    assert min(np.abs(p.points[:sk.NUM_BODY] - rest).max() for p in poses) < 0.01
    assert np.allclose(np.asarray(target.rest), rest)


def test_stats_keep_the_stance_through_json_and_refuse_a_bad_one(target):
    d = target.to_dict()
    assert PoseStats.from_dict(d) == target
    d["rest"] = d["rest"][:20]
    with pytest.raises(DanceNowError, match="rest has 20 points"):
        PoseStats.from_dict(d)
    d.pop("rest")  # a file from before: loads, and the stance is a neutral one fitted to its numbers
    old = PoseStats.from_dict(d)
    stance = Stance.of(old)
    body = stance.pose
    assert body.body_height() == pytest.approx(old.height_median, rel=0.02)
    assert stance.ankle_y == pytest.approx(old.ankle_median, abs=1.0)
    assert (stance.pose.points[IDX["left_wrist"], 1] > stance.pose.points[IDX["left_elbow"], 1])  # arms down


def test_desk_performer_gets_the_targets_legs_on_its_floor_arms_unchanged(target):
    placement = Placement(target)
    stance = placement.stance
    out = []
    for i in range(48):  # 2 s of a performer seen from the head to the waist, bigger than the target
        performer = waist(pose_at(i / FPS, SIZE).transformed(1.6, (-40.0, -30.0), (480, 640)))
        out.append((performer, placement.apply(performer, i / FPS)))
    assert placement.view == WAIST and placement.mode == UPPER and placement.calibrated
    for performer, placed in out[12:]:
        assert (placed.confidence[:sk.NUM_BODY] >= 0.3).all()  # a whole body: nothing cut at the waist
        ankles = placed.points[list(ANKLES), 1].max()
        assert abs(ankles - stance.ankle_y) < 0.06 * SIZE[0]  # standing on the target's floor
        for a, b in (("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist")):
            assert abs(angle(placed, a, b) - angle(performer, a, b)) < 1e-3  # the arms are the performer's


def test_the_first_frame_already_stands_on_the_targets_legs(target):
    """Nothing was drawn before the first frame, so the lent legs do not fade in from the legs
    MediaPipe guesses below the frame's edge: they are the stance's at once."""
    guessed = waist(pose_at(0.0, SIZE).transformed(1.6, (-40.0, -30.0), (480, 640)))
    conf = guessed.confidence.copy()
    conf[list(ANKLES)] = 0.45  # shown, but guessed: a head-to-knees crop's ankles below its edge
    pts = guessed.points.copy()
    pts[list(ANKLES)] = pts[list(HIPS)] + [0.0, 30.0]  # up at the hips
    placement = Placement(target)
    placed = placement.apply(guessed.copy(points=pts, confidence=conf), 0.0)
    assert abs(placed.points[list(ANKLES), 1].max() - placement.stance.ankle_y) < 0.03 * SIZE[0]


def test_a_desk_performer_rising_on_her_toes_keeps_the_lent_feet_on_the_floor(target):
    """The upper-body map follows her shoulders; lent feet stay within the target's own ankle rows."""
    placement = Placement(target)
    lift = []
    for i in range(72):  # 3 s at a desk; from 1 s her whole body rises by a fifth of the frame
        up = 0.0 if i < 24 else min(1.0, (i - 24) / 12) * 0.2 * 480
        performer = waist(pose_at(0.0, SIZE).transformed(1.6, (-40.0, -30.0 - up), (480, 640)))
        placed = placement.apply(performer, i / FPS)
        lift.append((placed.points[list(ANKLES), 1].max(), placed.points[IDX["nose"], 1]))
    ankles, nose = np.array(lift).T
    stance = placement.stance.ankle_y
    lo, hi = min(target.ankle_far, stance), max(target.ankle_close, stance)
    assert (ankles[12:] >= lo - 1e-3).all() and (ankles[12:] <= hi + 1e-3).all()
    assert abs(ankles[20] - stance) < 0.02 * SIZE[0]  # before she rises: on the stance's floor
    assert nose[-1] >= nose[20] - (ankles[20] - lo) - 1e-3  # the body rose at most what the floor allows
    assert np.abs(np.diff(ankles[12:])).max() < 0.03 * SIZE[0]  # no pop


@pytest.mark.parametrize("glide", [True, False])
def test_feet_coming_into_view_glide_in_without_a_jump(target, glide):
    placement = Placement(target, PlacementConfig(switch_seconds=0.8 if glide else 1e-6))
    hips, knees_err, switched_at = [], [], None
    for i in range(int(6 * FPS)):
        t = i / FPS
        performer = short_legs(pose_at(8.5 + t, SIZE)).transformed(1.3, (10.0, -20.0), (360, 300))  # squats
        if t < 2.0:
            performer = waist(performer)
        placed = placement.apply(performer, t)
        hips.append(placed.points[list(HIPS), 1].mean() / SIZE[0])
        if placement.view == FULL and switched_at is None:
            switched_at = t
        if t >= 3.0:  # a second after the feet came into view: the performer's knees
            for side in ("left", "right"):
                knees_err.append(abs(angle(placed, f"{side}_knee", f"{side}_ankle")
                                     - angle(performer, f"{side}_knee", f"{side}_ankle")))
    assert switched_at is not None and switched_at < 2.5
    assert placement.mode == EDN
    assert max(knees_err) < 20.0
    jump = np.abs(np.diff(hips)).max()
    assert (jump <= 0.04) if glide else (jump > 0.06)  # without the glide the map's switch shows


def test_nobody_from_the_start_shows_the_target_at_rest_breathing(target):
    stance = Stance.of(target)
    presence = Presence(stance=stance)
    shown = [presence.apply(Pose.missing(SIZE), i / 30) for i in range(90)]
    assert all(state == REST and p.detected for p, state in shown)
    pts = np.stack([p.points[:sk.NUM_BODY] for p, _ in shown])
    assert np.abs(pts - stance.pose.points[:sk.NUM_BODY]).max() < 0.02 * SIZE[0]  # its stance, slightly alive
    assert np.ptp(pts[:, sk.NOSE, 1]) > 0.1  # breathing: it is not a still image
    back, state = presence.apply(pose_at(0.0, SIZE), 3.0)
    assert state == RETURN  # a performer who appears glides in from the stance
    assert np.abs(back.points[:sk.NUM_BODY] - shown[-1][0].points[:sk.NUM_BODY]).max() < \
        np.abs(pose_at(0.0, SIZE).points[:sk.NUM_BODY] - shown[-1][0].points[:sk.NUM_BODY]).max()


def test_a_camera_that_comes_back_keeps_its_performers_statistics(target):
    placement = Placement(target)
    camera, demo = object(), object()
    placement.switch_performer(camera, 0.0)
    for i in range(20):
        placement.apply(waist(pose_at(i / FPS, SIZE)), i / FPS)
    assert placement.calibrated and placement.upper.frames == 20
    placement.switch_performer(demo, 1.0)  # the performer's link dropped: the show's own source plays
    assert not placement.calibrated
    placement.switch_performer(camera, 11.0)  # back within keep_seconds: the same performer
    assert placement.calibrated and placement.upper.frames == 20
    placement.switch_performer(demo, 12.0)
    placement.switch_performer(camera, 12.0 + placement.config.keep_seconds + 1)  # long gone: afresh
    assert placement.upper.frames == 0
    other = placement.retarget(target)  # a target switch carries the performer over
    assert other.upper is placement.upper and other.views is placement.views
