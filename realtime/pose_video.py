"""`dancenow pose`: a video (or camera) with its tracked landmarks beside the normalized label map.

The quickest way to see what the generator will see: the left half is the input frame with the
raw MediaPipe landmarks drawn on it, the right half the label map of the filtered, normalized
pose, drawn by the same renderer as training. The output has the input's frame count and rate.

For a file the normalization target is the clip's own statistics, fitted over the whole clip
(so the right half shows what normalization and filtering do to a track, not a body swap); a
camera has no end, so it calibrates online from a running window.
"""

from __future__ import annotations

import itertools
import logging
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dancenow.errors import DanceNowError
from dancenow.realtime.media.reader import iter_frames, video_info
from dancenow.realtime.media.writer import VideoWriter
from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.filter import OneEuroConfig, PoseFilter
from dancenow.realtime.pose.normalize import Normalizer, OnlineStats, fit_stats
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.renderer import render_label_map
from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig

log = logging.getLogger(__name__)


# --- tracking -------------------------------------------------------------------------------------

def track_video(path: str | Path, holistic: bool = False, filter_config: OneEuroConfig | None = None,
                progress: bool = True, face_mesh: bool = True) -> tuple[list[Pose], list[Pose], Fraction]:
    """Every frame's raw and filtered pose, and the frame rate (one pass, video mode). `face_mesh`
    off saves a network pass a frame when nothing draws the face's lines."""
    info = video_info(path)
    rate, total = info.rate, info.frames or None
    raw, smooth = [], []
    pose_filter = PoseFilter(filter_config)
    frames = iter_frames(path)
    first = next(frames)  # a video without frames fails here, before anything starts
    with PoseTracker(TrackerConfig(holistic=holistic, face_mesh=face_mesh)) as tracker:
        for f in tqdm(itertools.chain([first], frames), total=total, desc="tracking", unit="frame",
                      disable=not progress):
            pose = tracker.track(f.image, f.time)
            raw.append(pose)
            smooth.append(pose_filter.apply(pose))
    return raw, smooth, rate


# --- drawing --------------------------------------------------------------------------------------

def draw_landmarks(image: np.ndarray, pose: Pose, min_confidence: float = sk.MIN_CONFIDENCE) -> np.ndarray:
    """A copy of `image` with the pose's limbs, joints and hands drawn over it."""
    out = image.copy()
    if not pose.detected:
        return out
    h, w = image.shape[:2]
    pts, conf = sk.with_virtual_points(pose.points * np.array([w / pose.frame_size[1], h / pose.frame_size[0]]),
                                       pose.confidence)
    ok = conf >= min_confidence
    thick = max(1, round(h / 250))
    ip = np.round(pts).astype(int)
    for (a, b), color in zip(sk.LIMBS, sk.LIMB_COLORS, strict=True):
        if ok[a] and ok[b]:
            cv2.line(out, tuple(ip[a]), tuple(ip[b]), color.tolist(), thick, cv2.LINE_AA)
    for hand, color in ((sk.LEFT_HAND, sk.LEFT_HAND_COLOR), (sk.RIGHT_HAND, sk.RIGHT_HAND_COLOR)):
        hp, hc = ip[hand], conf[hand]
        for a, b in sk.HAND_BONES:
            if hc[a] >= min_confidence and hc[b] >= min_confidence:
                cv2.line(out, tuple(hp[a]), tuple(hp[b]), color, max(1, thick // 2), cv2.LINE_AA)
    for i in np.flatnonzero(ok[: sk.NUM_BODY]):
        cv2.circle(out, tuple(ip[i]), thick + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return out


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """`right` scaled to `left`'s height beside it, padded to even sides (H.264 4:2:0 needs them)."""
    h = left.shape[0]
    if right.shape[0] != h:
        w = max(1, round(right.shape[1] * h / right.shape[0]))
        right = cv2.resize(right, (w, h), interpolation=cv2.INTER_AREA)
    out = np.concatenate([left, right], axis=1)
    ph, pw = out.shape[0] % 2, out.shape[1] % 2
    if ph or pw:
        out = np.pad(out, ((0, ph), (0, pw), (0, 0)), constant_values=255)
    return out


# --- writing --------------------------------------------------------------------------------------

def _camera_index(spec: str) -> int | None:
    if not spec.startswith("camera:"):
        return None
    try:
        return int(spec.split(":", 1)[1])
    except ValueError:
        raise DanceNowError(f"{spec!r} is not a camera: write camera:N with N a number, e.g. camera:0") from None


def pose_video(input: str | Path, out: str | Path, holistic: bool = False,
               label_size: tuple[int, int] | None = None) -> Path:
    """Write frame-with-landmarks | normalized label map, side by side, to `out` (an .mp4)."""
    out = Path(out)
    if not out.parent.is_dir():
        raise DanceNowError(f"cannot write {out}: folder {out.parent} does not exist")
    index = _camera_index(str(input))
    if index is not None:
        return _pose_camera(index, out, holistic, label_size)

    raw, smooth, rate = track_video(input, holistic)
    normalizer = None
    try:
        stats = fit_stats(smooth)
        normalizer = Normalizer(stats, stats)
    except DanceNowError as e:
        log.warning("label maps are not normalized: %s", e)
    writer = VideoWriter(out, rate)
    try:
        frames = iter_frames(input, max_frames=len(raw))
        for f, pose, filtered in tqdm(zip(frames, raw, smooth, strict=False), total=len(raw),
                                               desc="writing", unit="frame"):
            size = label_size or f.image.shape[:2]
            norm = normalizer.apply(filtered) if normalizer else filtered
            writer.write(side_by_side(draw_landmarks(f.image, pose), render_label_map(norm, size)))
    except BaseException:
        writer.abort()
        raise
    if writer.close() is None:
        raise DanceNowError("no frames were written: the input gave no frames")
    log.info("wrote %s: %d frames at %s fps", out, writer.frames, rate)
    return out


def _pose_camera(index: int, out: Path, holistic: bool, label_size: tuple[int, int] | None) -> Path:
    """Camera until Ctrl-C; normalization calibrates from a running window as the performer moves."""
    from dancenow.realtime.live.sources import CameraSource

    camera = CameraSource(index)
    writer = VideoWriter(out, 30, live=True)
    online, pose_filter = OnlineStats(), PoseFilter()
    after, t0 = 0, time.monotonic()
    try:
        camera.start()
        camera.check_ready()
        with PoseTracker(TrackerConfig(holistic=holistic, face_mesh=True)) as tracker, tqdm(desc="camera", unit="frame") as bar:
            while True:
                got = camera.frames.get(after, timeout=1.0)
                if got is None:
                    continue
                after, cf = got
                pose = tracker.track(cf.image, cf.clock)
                filtered = pose_filter.apply(pose)
                online.update(filtered)
                stats = online.stats()
                norm = Normalizer(stats, stats).apply(filtered) if stats is not None else filtered
                writer.write(side_by_side(draw_landmarks(cf.image, pose),
                                          render_label_map(norm, label_size or cf.image.shape[:2])), cf.timestamp - t0)
                bar.update()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a camera recording ends
    finally:
        camera.close()
    if writer.close() is None:
        raise DanceNowError(f"camera {index} gave no frames: check that it is not in use by another program")
    return out
