"""The measures EDN judged its generators by, on our frames.

Image similarity (SSIM, PSNR, and GMSD: gradient magnitude similarity deviation, from OpenCV's
contrib `quality` module, no weights, so that a blur or a speckle cannot score well where SSIM
barely moves) on the whole frame, the body crop (a padded box around the input
pose: the background is static and would dominate whole-frame scores) and the face crop; pose
consistency (MediaPipe run on generated frames, keypoint distance to the input pose, missed
detections); temporal flicker; and the two baselines every number must beat (the mean training
frame, and the training frame whose pose is closest).

All frames are uint8 H x W x 3 RGB at the model resolution; poses are in model pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.pose import Pose

# PSNR of identical images is infinite; JSON has no infinity and means would be meaningless, so
# per-frame PSNR is capped here (100 dB is an error of ~0.003 grey levels).
PSNR_CAP = 100.0
MIN_CONFIDENCE = 0.3

# Keypoint groups scored separately: face dots, the rest of the body, both hands.
GROUPS: dict[str, np.ndarray] = {
    "body": np.arange(len(sk.FACE_POINTS), sk.NUM_BODY),
    "face": np.asarray(sk.FACE_POINTS),
    "hands": np.arange(sk.NUM_BODY, sk.NUM_BODY_HANDS),
}


# --- image similarity ----------------------------------------------------------------------------

def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of two RGB uint8 images (1.0 when identical)."""
    _check_pair(a, b)
    win = min(7, *a.shape[:2])
    win -= 1 - win % 2  # skimage needs an odd window no larger than the image
    return float(structural_similarity(a, b, channel_axis=2, data_range=255, win_size=win))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for 8-bit images, capped at PSNR_CAP (identical images)."""
    _check_pair(a, b)
    if np.array_equal(a, b):
        return PSNR_CAP
    return float(min(PSNR_CAP, peak_signal_noise_ratio(a, b, data_range=255)))


def gmsd(a: np.ndarray, b: np.ndarray) -> float:
    """Gradient magnitude similarity deviation (Xue et al. 2014) of `a` against the reference `b`,
    the mean over the three colour channels: 0 when identical, larger for worse (a blur or colour
    speckle changes the gradients much more than the structure SSIM measures). OpenCV's contrib
    `quality` module computes it from the formula (Prewitt gradients), no downloaded weights."""
    _check_pair(a, b)
    scores = cv2.quality.QualityGMSD_compute(np.ascontiguousarray(b), np.ascontiguousarray(a))[0]
    return float(np.mean(scores[:3]))


def background_psnr(a: np.ndarray, b: np.ndarray, person: np.ndarray, dilate: int) -> float | None:
    """PSNR over the pixels outside the person mask (> 0.5) grown by `dilate` px: how well the room
    is kept. None when the grown mask covers the whole frame."""
    _check_pair(a, b)
    grown = cv2.dilate((np.asarray(person, np.float32) > 0.5).astype(np.uint8),
                       cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1)))
    keep = grown == 0
    if not keep.any():
        return None
    err = np.mean((a[keep].astype(np.float64) - b[keep]) ** 2)
    return PSNR_CAP if err == 0 else float(min(PSNR_CAP, 10 * np.log10(255.0**2 / err)))


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"images must have the same H x W x 3 shape, got {a.shape} and {b.shape}")


# --- crops -----------------------------------------------------------------------------------------

Box = tuple[int, int, int, int]


def body_box(pose: Pose, size: tuple[int, int], pad: float = 0.1,
             min_confidence: float = MIN_CONFIDENCE) -> Box | None:
    """(x0, y0, x1, y1) around the pose's visible points, grown on every side by `pad` x the box's
    height, clipped to a frame of `size` = (H, W); None when nobody is visible."""
    p = pose if tuple(pose.frame_size) == tuple(size) else pose.resized(size)
    box = p.bbox(min_confidence)
    if box is None:
        return None
    h, w = size
    x0, y0, x1, y1 = box
    m = pad * max(y1 - y0, x1 - x0, 1.0)
    bx0, by0 = max(0, int(math.floor(x0 - m))), max(0, int(math.floor(y0 - m)))
    bx1, by1 = min(w, int(math.ceil(x1 + m))), min(h, int(math.ceil(y1 + m)))
    if bx1 - bx0 < 2 or by1 - by0 < 2:
        return None
    return bx0, by0, bx1, by1


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def similarity(a: np.ndarray, b: np.ndarray, box: Box | None = None) -> dict[str, float]:
    """{"ssim", "psnr", "gmsd"} of `a` against `b` (inside `box` when given)."""
    if box is not None:
        a, b = crop(a, box), crop(b, box)
    return {"ssim": ssim(a, b), "psnr": psnr(a, b), "gmsd": gmsd(a, b)}


# --- pose consistency ------------------------------------------------------------------------------

def keypoint_distance(found: Pose, reference: Pose, min_confidence: float = MIN_CONFIDENCE
                      ) -> dict[str, dict[str, float] | None]:
    """Mean distance from the points MediaPipe `found` in a generated frame to the `reference`
    (input) pose, per group, in pixels and as a fraction of the reference's body height.

    A point counts when the reference shows it (confidence >= min_confidence) and the detection
    has it at all (confidence > 0: MediaPipe always places all 33 body points, hands only when
    tracked); a group with no such point is None. `found` must be detected.
    """
    if not found.detected:
        raise ValueError("keypoint_distance needs a detected pose: count misses separately")
    det = found if found.frame_size == reference.frame_size else found.resized(reference.frame_size)
    height = reference.body_height(min_confidence)
    if not height:
        box = reference.bbox(min_confidence)
        height = (box[3] - box[1]) if box else None
    d = np.linalg.norm(det.points - reference.points, axis=1)
    ok = reference.visible(min_confidence) & (det.confidence > 0)
    out: dict[str, dict[str, float] | None] = {}
    for name, idx in GROUPS.items():
        m = ok[idx]
        if not m.any():
            out[name] = None
            continue
        px = float(d[idx][m].mean())
        out[name] = {"px": px, "rel": px / height if height else float("nan"), "points": int(m.sum())}
    return out


def summarize_pose(found: Sequence[Pose], reference: Sequence[Pose], min_confidence: float = MIN_CONFIDENCE
                   ) -> dict:
    """Detections over a sequence: how many frames had nobody found, and the mean keypoint
    distance per group over the frames where someone was found."""
    if len(found) != len(reference):
        raise ValueError(f"{len(found)} detections for {len(reference)} reference poses")
    missed = [i for i, p in enumerate(found) if not p.detected]
    per_group: dict[str, list[tuple[float, float]]] = {g: [] for g in GROUPS}
    for f, r in zip(found, reference, strict=True):
        if not f.detected or not r.detected:
            continue
        for g, v in keypoint_distance(f, r, min_confidence).items():
            if v is not None:
                per_group[g].append((v["px"], v["rel"]))
    n = len(found)
    dist = {g: ({"px": float(np.mean([a for a, _ in v])), "rel": float(np.nanmean([b for _, b in v])), "frames": len(v)}
                if v else None) for g, v in per_group.items()}
    return {"frames": n, "found": n - len(missed), "found_frac": (n - len(missed)) / n if n else float("nan"),
            "missed": len(missed), "missed_frames": missed, "distance": dist}


def detect_poses(frames: Iterable[np.ndarray], tracker_factory=None, fps: float = 15.0) -> list[Pose]:
    """MediaPipe on each frame of a sequence (one video-mode tracker, as live), with the face mesh."""
    if tracker_factory is None:
        from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig

        def tracker_factory():
            return PoseTracker(TrackerConfig(face_mesh=True))
    with tracker_factory() as tracker:
        return [tracker.track(np.ascontiguousarray(f), i / fps) for i, f in enumerate(frames)]


def mouth_summary(found: Sequence[Pose], real: Sequence[Pose]) -> dict:
    """How often the face mesh finds the face in `found` (poses detected on generated frames), and
    how well the mouth opening it measures follows the one measured on the real frames (Pearson
    correlation over the frames where both were found; None when the real mouth hardly moves)."""
    from dancenow.realtime.pose.face import mouth_opening

    gen = [mouth_opening(p) if p.detected else None for p in found]
    ref = [mouth_opening(p) if p.detected else None for p in real]
    both = [(g, r) for g, r in zip(gen, ref, strict=True) if g is not None and r is not None]
    corr = None
    if len(both) >= 3 and np.std([r for _, r in both]) > 0.005 and np.std([g for g, _ in both]) > 0:
        corr = float(np.corrcoef(np.asarray(both).T)[0, 1])
    found_n = sum(g is not None for g in gen)
    return {"face_found_frac": found_n / len(gen) if gen else float("nan"), "mouth_corr": corr,
            "mouth_frames": len(both)}


# --- temporal flicker ------------------------------------------------------------------------------

def flicker(frames: Sequence[np.ndarray], pairs: Iterable[int] | None = None) -> float:
    """Mean absolute difference between consecutive frames (grey levels, 0-255), over `pairs`
    (indices i of frames i, i+1; default every consecutive pair). 0 for a static sequence."""
    idx = list(range(len(frames) - 1)) if pairs is None else list(pairs)
    if not idx:
        return float("nan")
    return float(np.mean([np.abs(frames[i + 1].astype(np.int16) - frames[i].astype(np.int16)).mean() for i in idx]))


# --- baselines -------------------------------------------------------------------------------------

def mean_frame(frames: np.ndarray) -> np.ndarray:
    """The mean training frame (uint8), the first baseline."""
    acc = np.zeros(frames.shape[1:], np.float64)
    for f in frames:  # frames may be memory-mapped: no float copy of the whole set
        acc += f
    return np.clip(np.rint(acc / len(frames)), 0, 255).astype(np.uint8)


class NearestPose:
    """Nearest-neighbour retrieval, the second baseline: the training frame whose pose is closest
    (mean distance over the body and hand points visible in both poses, in model pixels). The face
    mesh's 129 points are left out: they would outvote the body's 33, and the baseline would
    change with how the face is drawn."""

    def __init__(self, poses: Sequence[Pose], min_confidence: float = MIN_CONFIDENCE):
        k = sk.NUM_BODY_HANDS
        self.points = np.stack([p.points[:k] for p in poses])  # (N, K, 2)
        self.visible = np.stack([p.visible(min_confidence)[:k] for p in poses])  # (N, K)
        self.min_confidence = min_confidence

    def index(self, pose: Pose) -> int:
        """Index of the closest training pose (-1 when `pose` shares no visible point with any)."""
        k = sk.NUM_BODY_HANDS
        vis = self.visible & pose.visible(self.min_confidence)[None, :k]
        d = np.linalg.norm(self.points - pose.points[None, :k], axis=2)
        n = vis.sum(1)
        mean = np.where(n > 0, (d * vis).sum(1) / np.maximum(n, 1), np.inf)
        i = int(np.argmin(mean))
        return i if np.isfinite(mean[i]) else -1
