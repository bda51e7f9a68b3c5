"""The tracker on real footage: finds the person, follows one person in a crowd, none in a void."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dancenow.errors import DanceNowError
from dancenow.realtime.media.reader import iter_frames
from dancenow.realtime.pose.skeleton import LEFT_HIP, NUM_POINTS, RIGHT_HIP
from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig

from footage import CLIPS, STILLS, STREET
from pose_tracks import WINDOW, track

pytestmark = pytest.mark.data
CLIP_NAMES = sorted(p.name for p in CLIPS.glob("*.mp4")) if CLIPS.is_dir() else ["(no clips)"]


def hip_jumps(poses) -> np.ndarray:
    """Frame-to-frame moves of the hip centre, in body heights of the earlier frame."""
    out = []
    for a, b in zip(poses, poses[1:], strict=False):
        if a.detected and b.detected:
            ha = (a.points[LEFT_HIP] + a.points[RIGHT_HIP]) / 2
            hb = (b.points[LEFT_HIP] + b.points[RIGHT_HIP]) / 2
            box = a.bbox(0.0)
            out.append(np.linalg.norm(hb - ha) / max(a.body_height() or 0.0, box[3] - box[1]))
    return np.array(out)


@pytest.mark.parametrize("name", CLIP_NAMES)
def test_person_found_in_95_percent_of_frames(name):
    clip = CLIPS / name
    poses = track(clip, None if clip == STREET else WINDOW)
    rate = np.mean([p.detected for p in poses])
    assert rate >= 0.95, f"{name}: person found in {rate:.1%} of frames"
    first = next(p for p in poses if p.detected)
    h, w = first.frame_size
    image = next(iter_frames(clip)).image
    assert (h, w) == image.shape[:2]  # points are in the input frame's pixels
    box = first.bbox()
    assert 0 <= box[0] < box[2] <= w * 1.05 and 0 <= box[1] < box[3] <= h * 1.05
    assert np.all(np.diff([p.timestamp for p in poses]) > 0)


def test_street_track_stays_on_one_person():
    poses = track(STREET, None)
    jumps = hip_jumps(poses)
    assert len(jumps) >= 0.95 * (len(poses) - 1)
    # Measured: 0.06 body heights at most (50 fps). Switching to another pedestrian moves the
    # hip centre by a large fraction of a body height in one frame.
    assert jumps.max() < 0.15, f"hip centre jumped {jumps.max():.2f} body heights in one frame"


def test_guard_rejects_a_jump_to_someone_elsewhere(dancer_a):
    """A person who suddenly appears far away is not the tracked one until the relock delay."""
    image = next(iter_frames(dancer_a)).image
    h, w = image.shape[:2]
    canvas = np.full((h, 3 * w, 3), 255, np.uint8)
    left, right = canvas.copy(), canvas.copy()
    left[:, :w], right[:, 2 * w:] = image, image
    cfg = TrackerConfig(relock_seconds=0.5)
    with PoseTracker(cfg) as tracker:
        for i in range(5):
            assert tracker.track(left, i / 25).detected
        # MediaPipe loses the left region, re-detects the person on the right: the guard says no.
        jumped = [tracker.track(right, i / 25) for i in range(5, 10)]
        assert not any(p.detected for p in jumped) and tracker.jumps_rejected >= 1
        relocked = tracker.track(right, 4 / 25 + 0.6)  # the old person has been gone long enough
    assert relocked.detected and relocked.points[LEFT_HIP, 0] > 2 * w


def test_black_frame_and_empty_scene_are_not_detected(dancer_a):
    image = next(iter_frames(dancer_a)).image
    empty = np.ascontiguousarray(image[:40].repeat(image.shape[0] // 40, axis=0))  # wall only
    with PoseTracker() as tracker:
        black = tracker.track(np.zeros((480, 640, 3), np.uint8), 0.0)
        nobody = tracker.track(cv2.GaussianBlur(empty, (0, 0), 2), 0.1)
    for pose, size in ((black, (480, 640)), (nobody, empty.shape[:2])):
        assert not pose.detected and pose.frame_size == size
        assert pose.points.shape == (NUM_POINTS, 2) and not pose.confidence.any()


def test_still_photo_detected_at_any_size():
    still = STILLS / "woman_blue_sweater_full_body.jpg"
    image = cv2.cvtColor(cv2.imread(str(still)), cv2.COLOR_BGR2RGB)
    small = cv2.resize(image, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    found = []
    for frame in (image, small):
        with PoseTracker() as tracker:
            pose = tracker.track(frame, 0.0)
        assert pose.detected and pose.frame_size == frame.shape[:2]
        found.append(pose.points[:33] / np.array(frame.shape[1::-1]))
    # The same body found at both sizes, in each frame's own pixels.
    assert np.median(np.abs(found[0] - found[1])) < 0.02


def test_holistic_gives_75_points_with_hands_as_confidence():
    image = cv2.cvtColor(cv2.imread(str(STILLS / "iper_a_pose_man_black_tshirt.jpg")), cv2.COLOR_BGR2RGB)
    with PoseTracker(TrackerConfig(holistic=True)) as tracker:
        pose = tracker.track(image, 0.0)
    assert pose.detected and pose.points.shape == (NUM_POINTS, 2)
    hands = pose.confidence[33:]
    assert set(np.unique(hands)) <= {0.0, 1.0}
    assert hands.any(), "an A-pose with open hands should show at least one hand"


def test_bad_frame_is_a_clear_error():
    with PoseTracker() as tracker, pytest.raises(DanceNowError, match="RGB uint8"):
        tracker.track(np.zeros((10, 10), np.float32), 0.0)


@pytest.mark.parametrize("holistic", [False, True])
def test_tracker_threads_reach_mediapipe_inference(holistic):
    """MediaPipe's solutions API has no thread setting: every inference node must get ours, and
    the results must not change with the thread count."""
    image = cv2.cvtColor(cv2.imread(str(STILLS / "woman_blue_sweater_full_body.jpg")), cv2.COLOR_BGR2RGB)
    found = []
    for threads in (1, 2):
        with PoseTracker(TrackerConfig(threads=threads, holistic=holistic)) as tracker:
            given = tracker._mp.inference_threads
            pose = tracker.track(image, 0.0)
        assert len(given) >= 2 and set(given.values()) == {threads}, given  # detector and landmarks
        assert pose.detected
        found.append(pose.points[:33])
    assert np.abs(found[0] - found[1]).max() < 2.0  # pixels


def test_zero_tracker_threads_is_a_clear_error():
    with pytest.raises(DanceNowError, match="at least 1"):
        PoseTracker(TrackerConfig(threads=0))


def test_the_guard_measures_the_body_without_untracked_points() -> None:
    """Hands that are not tracked sit at (0, 0) with confidence 0: they must not stretch the body
    size the jump limit scales with (nor the re-check crop) to the frame's corner."""
    from dancenow.realtime.pose.pose import Pose
    from dancenow.realtime.pose.tracker import _body_size

    pts = np.zeros((NUM_POINTS, 2))
    conf = np.zeros(NUM_POINTS)
    pts[:33] = np.column_stack([np.linspace(600, 700, 33), np.linspace(300, 500, 33)])
    conf[:33] = 0.9
    size = _body_size(Pose(pts, conf, (720, 1280)))
    assert 200 <= size <= 210, size
