"""Each evaluation measure on constructed cases whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.choreography import pose_at
from dancenow.realtime.pose.figure import TARGET_STYLE, draw_figure
from dancenow.realtime.pose.pose import Pose
from dancenow.training import metrics as M

SIZE = (256, 192)


def _frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)


def test_identical_frames_score_perfectly():
    f = _frame()
    assert M.ssim(f, f) == pytest.approx(1.0)
    assert M.psnr(f, f) == M.PSNR_CAP  # infinite PSNR is capped, so means and JSON stay finite


def test_constant_offset_has_the_known_psnr():
    f = np.full((*SIZE, 3), 100, np.uint8)
    g = f + np.uint8(10)  # MSE = 100 -> PSNR = 10 log10(255^2 / 100)
    assert M.psnr(f, g) == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-6)


def test_a_shifted_frame_scores_lower_and_more_shift_scores_lower_still():
    f = draw_figure(pose_at(0.0, SIZE), SIZE, TARGET_STYLE)
    s1, s2 = np.roll(f, 2, axis=1), np.roll(f, 8, axis=1)
    assert 0 < M.ssim(f, s2) < M.ssim(f, s1) < 0.999
    assert M.psnr(f, s2) < M.psnr(f, s1) < 60


def test_ssim_works_on_tiny_crops():
    a, b = _frame(1)[:5, :6], _frame(2)[:5, :6]
    assert -1.0 <= M.ssim(a, b) < 0.5
    assert M.ssim(a, a) == pytest.approx(1.0)


def _pose(points: dict[int, tuple[float, float]], size=SIZE) -> Pose:
    pts = np.zeros((sk.NUM_POINTS, 2))
    conf = np.zeros(sk.NUM_POINTS)
    for i, xy in points.items():
        pts[i], conf[i] = xy, 1.0
    return Pose(pts, conf, size)


def test_body_box_is_the_padded_pose_box_clipped_to_the_frame():
    pose = _pose({sk.NOSE: (100, 40), sk.LEFT_ANKLE: (80, 240), sk.RIGHT_ANKLE: (120, 240)})
    # Box (80, 40)-(120, 240), height 200: pad 0.1 -> 20 px each side; bottom clipped at 256.
    assert M.body_box(pose, SIZE, pad=0.1) == (60, 20, 140, 256)
    assert M.body_box(pose, SIZE, pad=0.0) == (80, 40, 120, 240)
    # The same pose given in a frame twice as large maps back to model pixels.
    big = pose.resized((512, 384))
    assert M.body_box(big, SIZE, pad=0.0) == (80, 40, 120, 240)
    assert M.body_box(Pose.missing(SIZE), SIZE) is None


def test_keypoint_distance_per_group_in_pixels_and_body_heights():
    ref_pts = {i: (90.0 + i, 30.0 + i) for i in sk.FACE_POINTS}
    ref_pts.update({sk.LEFT_SHOULDER: (80, 70), sk.RIGHT_SHOULDER: (110, 70),
                    sk.LEFT_ANKLE: (85, 230), sk.RIGHT_ANKLE: (105, 230)})
    ref = _pose(ref_pts)
    height = ref.body_height()
    moved = ref.transformed(1.0, (3.0, 4.0))  # every point 5 px away
    d = M.keypoint_distance(moved, ref)
    assert d["body"]["px"] == pytest.approx(5.0) and d["face"]["px"] == pytest.approx(5.0)
    assert d["body"]["rel"] == pytest.approx(5.0 / height)
    assert d["hands"] is None  # no hand points in either pose
    assert M.keypoint_distance(ref, ref)["body"]["px"] == 0.0


def test_summary_counts_missed_detections():
    ref = _pose({sk.NOSE: (100, 40), sk.LEFT_ANKLE: (80, 240), sk.RIGHT_ANKLE: (120, 240)})
    s = M.summarize_pose([ref, Pose.missing(SIZE), ref.transformed(1.0, (0, 2))], [ref, ref, ref])
    assert s["missed"] == 1 and s["missed_frames"] == [1] and s["found_frac"] == pytest.approx(2 / 3)
    assert s["distance"]["body"]["px"] == pytest.approx(1.0)  # mean of 0 and 2 over found frames


def test_mediapipe_misses_an_empty_frame_and_finds_the_figure():
    """Real MediaPipe: a frame with nobody is a missed detection, the synthetic dancer is found
    close to the pose it was drawn from."""
    pose = pose_at(1.0, SIZE)
    frames = [np.full((*SIZE, 3), 255, np.uint8), draw_figure(pose, SIZE, TARGET_STYLE)]
    found = M.detect_poses(frames)
    s = M.summarize_pose(found, [pose, pose])
    assert s["missed_frames"] == [0]
    assert s["distance"]["body"]["rel"] < 0.1


def test_flicker_of_a_static_sequence_is_zero_and_of_an_alternation_is_its_step():
    f = _frame()
    assert M.flicker([f] * 5) == 0.0
    a, b = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 6, np.uint8)
    assert M.flicker([a, b, a, b]) == pytest.approx(6.0)
    assert M.flicker([a, b, a, b], pairs=[]) != M.flicker([a, b, a, b], pairs=[])  # nan: nothing to measure


def test_mean_frame_and_nearest_pose_baselines():
    frames = np.stack([np.full((4, 4, 3), v, np.uint8) for v in (0, 100, 201)])
    assert (M.mean_frame(frames) == 100).all()
    poses = [pose_at(t, SIZE) for t in (0.0, 0.7, 1.4)]
    nn = M.NearestPose(poses)
    assert nn.index(poses[1].transformed(1.0, (1.0, 0.0))) == 1
    assert nn.index(Pose.missing(SIZE)) == -1


def test_gmsd_calls_out_blur_and_colour_speckle_where_psnr_does_not():
    import cv2

    frame = draw_figure(pose_at(2.0), (256, 192))
    box = M.body_box(pose_at(2.0), (256, 192))
    real = M.crop(frame, box).copy()
    assert M.gmsd(real, real) == 0.0
    rng = np.random.default_rng(0)
    blurred = cv2.GaussianBlur(real, (0, 0), 1.5)
    dots = rng.random(real.shape[:2]) < 0.08  # green, pink and blue dots, as a GAN's speckle
    speckled = real.copy()
    speckled[dots] = rng.choice(np.array([[40, 200, 60], [230, 90, 200], [50, 80, 230]], np.uint8), dots.sum())
    brighter = np.clip(real.astype(int) + 12, 0, 255).astype(np.uint8)  # same gradients, other levels
    for bad in (blurred, speckled):
        assert M.gmsd(bad, real) > 5 * M.gmsd(brighter, real)
    # where PSNR prefers the blur to the brightness change, GMSD does not
    assert M.psnr(blurred, real) > M.psnr(brighter, real) - 3.0
    assert M.similarity(speckled, real)["gmsd"] == M.gmsd(speckled, real)
