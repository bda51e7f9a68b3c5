"""MediaPipe's pose landmark network on OpenVINO (landmarker.py): the ROI geometry, agreement with
MediaPipe itself on real footage, losing and finding the person again, and the tracker option."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dancenow.errors import DanceNowError
from dancenow.realtime.media.reader import iter_frames
from dancenow.realtime.pose.landmarker import ROI_SCALE, SIDE, Roi
from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig

from footage import CLIPS

DANCER_A = CLIPS / "dancer_a_yellow_top_full_body.mp4"
TAICHI = CLIPS / "taichi_man_striped_shirt_full_body.mp4"


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, -75.0, 180.0])
def test_roi_puts_the_centre_mid_crop_and_the_scale_point_straight_above(angle_deg: float) -> None:
    centre = np.array([300.0, 200.0])
    a = math.radians(angle_deg)
    scale_point = centre + 80.0 * np.array([math.sin(a), -math.cos(a)])  # "up" turned by angle_deg
    roi = Roi.aligned(centre, scale_point)
    assert roi.side == pytest.approx(2 * 80.0 * ROI_SCALE)
    np.testing.assert_allclose(roi.project(np.array([[SIDE / 2, SIDE / 2]])), [centre], atol=1e-9)
    above = np.array([[SIDE / 2, SIDE / 2 - SIDE / (2 * ROI_SCALE)]])
    np.testing.assert_allclose(roi.project(above), [scale_point], atol=1e-9)


def _frames(path, n: int) -> list[np.ndarray]:
    return [f.image for f, _ in zip(iter_frames(path), range(n), strict=False)]


@pytest.mark.data
@pytest.mark.parametrize("clip", [DANCER_A, TAICHI], ids=["dancer_a", "taichi"])
def test_openvino_landmarks_agree_with_mediapipe(clip) -> None:
    """Same network, other kernels and ROI bookkeeping: the body points stay within 3% of the body
    height of MediaPipe's own (its noise from frame to frame is about 1.5%), and MediaPipe has to
    find the person only once."""
    if not clip.is_file():
        pytest.skip(f"needs {clip} (../shared/data)")
    frames = _frames(clip, 90)
    ref = PoseTracker(TrackerConfig(threads=1))
    fast = PoseTracker(TrackerConfig(threads=1, landmarks="openvino"))
    errors = []
    for i, f in enumerate(frames):
        a, b = ref.track(f, i / 30), fast.track(f, i / 30)
        assert a.detected and b.detected, f"frame {i}"
        seen = (a.confidence[:33] > 0.5) & (b.confidence[:33] > 0.5)
        errors.append(np.linalg.norm(a.points[:33][seen] - b.points[:33][seen], axis=1).mean() / a.body_height())
    assert fast._still is not None  # MediaPipe found the person ...
    assert fast._lmk.roi is not None  # ... and the landmarker holds them
    print(f"{clip.name}: mean {np.mean(errors):.4f}, max {np.max(errors):.4f} body heights")
    assert np.mean(errors) < 0.03 and np.max(errors) < 0.08


@pytest.mark.data
def test_landmarker_lets_go_of_an_empty_frame_and_finds_the_person_again() -> None:
    if not DANCER_A.is_file():
        pytest.skip(f"needs {DANCER_A} (../shared/data)")
    frames = _frames(DANCER_A, 4)
    tracker = PoseTracker(TrackerConfig(threads=1, landmarks="openvino"))
    assert tracker.track(frames[0], 0.0).detected
    empty = np.full_like(frames[0], 90)
    assert not tracker.track(empty, 1 / 30).detected
    assert tracker._lmk.roi is None
    assert tracker.track(frames[1], 2 / 30).detected and tracker._lmk.roi is not None


def test_openvino_landmarks_refuse_what_they_cannot_do() -> None:
    with pytest.raises(DanceNowError, match="body model only"):
        PoseTracker(TrackerConfig(landmarks="openvino", segmentation=True))
    with pytest.raises(DanceNowError, match="unknown landmarks"):
        PoseTracker(TrackerConfig(landmarks="tflite"))


def test_an_isa_cap_below_avx512_chooses_what_an_avx2_host_chooses(monkeypatch) -> None:
    # Under ONEDNN_MAX_CPU_ISA=AVX2 an AMX host cannot compile bf16; the landmark networks asked for
    # it anyway and the live loop fell back to MediaPipe's own graph (42 ms a frame, not 30 fps).
    from dancenow import host
    from dancenow.realtime.pose.landmarker import default_precision

    for cap, usable in (("AVX2", False), ("avx2_vnni", False), ("AVX512_CORE_AMX", None), (None, None)):
        if cap is None:
            monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        else:
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        host.cpu_info.cache_clear()
        info = host.cpu_info()
        assert info["bf16_usable"] == (info["bf16"] if usable is None else usable), cap
        assert default_precision() == ("bf16" if info["bf16_usable"] else "f32")
    host.cpu_info.cache_clear()


def test_the_landmark_network_compiles_under_an_avx2_cap() -> None:
    import os
    import subprocess
    import sys

    code = ("from dancenow.realtime.pose.landmarker import Landmarker; l = Landmarker(1); "
            "print(l.precision)")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split()[-1] == "f32"
