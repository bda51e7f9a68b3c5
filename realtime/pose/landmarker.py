"""MediaPipe's own pose landmark model, run by OpenVINO on a region carried from frame to frame.

The live loop's slowest stage is MediaPipe Pose on its one core, and most of that time is its
landmark network on XNNPACK. This runs the same network (`pose_landmark_full.tflite`, as bundled
with mediapipe 0.10.21; OpenVINO reads TFLite files) with oneDNN's kernels (bf16 where the CPU has
it), and does what MediaPipe's graph does around it: crop the region of interest (ROI) with an
affine warp, read the 39 landmarks (33 body points and 2 auxiliary ones that place the next ROI),
refine them on the network's heatmap, project them back, and carry the ROI to the next frame.
The refinement nearly halves the distance to MediaPipe's own points (`tests/test_landmarker.py`);
without it the live drawn arms were a few degrees off the performer's. MediaPipe also smooths
the two ROI points over time; done here that way it lost the knees at the bottom edge of a
head-to-knees crop for 7 frames that MediaPipe kept, so the ROI is carried as found. Finding a person (the first frame, or
after the model's pose flag says they are gone) stays MediaPipe's: `PoseTracker` runs the full
solution then and `seed`s the ROI from its landmarks.

MediaPipe's conventions, as its pose_landmark graphs configure them: the input is 256x256 RGB in
[0, 1]; landmarks are in input pixels with visibility as a logit; the ROI is centred on auxiliary
point 33 (the hips), its side is twice the distance to point 34 grown by 1.25, and it is rotated so
that 33 -> 34 points up.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dancenow.errors import DanceNowError

SIDE = 256  # the model's input
NUM_LANDMARKS = 39  # 33 body + 2 auxiliary (ROI) + 4 unused
BODY = 33
ROI_SCALE = 1.25
FLAG_THRESHOLD = 0.5
REFINE_KERNEL = 7  # MediaPipe's RefineLandmarksFromHeatmapCalculator, as the pose graph sets it
REFINE_CONFIDENCE = 0.5


POSE_MODEL = "pose_landmark/pose_landmark_full.tflite"


def model_path(model: str = POSE_MODEL) -> Path:
    """A network bundled in mediapipe's wheel (`model` relative to its modules folder)."""
    import mediapipe

    path = Path(mediapipe.__file__).parent / "modules" / model
    if not path.is_file():
        raise DanceNowError(f"{path} is missing: this needs mediapipe 0.10.21, whose wheel carries the model")
    return path


@dataclass(frozen=True)
class Roi:
    """A square region of the frame: centre and side in pixels, rotation in radians."""

    cx: float
    cy: float
    side: float
    angle: float
    input: int = SIDE  # the network's input side in pixels

    @classmethod
    def aligned(cls, centre: np.ndarray, scale_point: np.ndarray) -> Roi:
        """MediaPipe's alignment: centred on `centre`, twice the distance to `scale_point` (x 1.25),
        rotated so that centre -> scale_point points up in the crop."""
        dx, dy = float(scale_point[0] - centre[0]), float(scale_point[1] - centre[1])
        angle = math.pi / 2 - math.atan2(-dy, dx)
        angle -= 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))
        return cls(float(centre[0]), float(centre[1]), 2.0 * math.hypot(dx, dy) * ROI_SCALE, angle)

    def to_frame(self) -> np.ndarray:
        """2x3 affine: crop pixel (u, v) -> frame pixel."""
        c, s, k = math.cos(self.angle), math.sin(self.angle), self.side / self.input
        return np.array([[c * k, -s * k, self.cx - self.side / 2 * (c - s)],
                         [s * k, c * k, self.cy - self.side / 2 * (s + c)]], np.float64)

    def input_tensor(self, frame: np.ndarray) -> np.ndarray:
        """The crop as MediaPipe's networks take it: 1 x input x input x 3 RGB float in [0, 1]."""
        crop = cv2.warpAffine(frame, self.to_frame(), (self.input, self.input),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)
        return (crop.astype(np.float32) * (1.0 / 255.0))[None]

    def project(self, points: np.ndarray) -> np.ndarray:
        """Crop pixels (N, 2) -> frame pixels."""
        m = self.to_frame()
        return points @ m[:, :2].T + m[:, 2]


def default_precision() -> str:
    from dancenow.host import cpu_info

    return "bf16" if cpu_info()["bf16_usable"] else "f32"


@functools.lru_cache(maxsize=8)
def compiled(model: str, threads: int, precision: str):
    """One compiled `model` per (threads, precision) for the process: a live show starts a tracker
    for every run, and compiling afresh each time cost startup time and left memory behind."""
    import openvino as ov

    core = ov.Core()
    try:
        return core.compile_model(core.read_model(str(model_path(model))), "CPU", {
            "INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False})
    except Exception as e:  # OpenVINO raises RuntimeError subclasses
        raise DanceNowError(f"OpenVINO cannot compile MediaPipe's {model} ({type(e).__name__}: "
                            f"{str(e).strip()[:200]}): track with landmarks='mediapipe'") from None


def refine_from_heatmap(points: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """`points` (N, 2, input pixels) moved to the sigmoid-weighted mean of the heatmap cells
    within `REFINE_KERNEL` of each, where the heatmap is confident there (its max at least
    `REFINE_CONFIDENCE`): MediaPipe's graph does this to every landmark before projecting it,
    and without it the points lie twice as far from MediaPipe's own. Kept as MediaPipe computes
    it: a cell's index, not its centre; truncation to the cell; the window cut at the edges."""
    hm_h, hm_w, n = heatmap.shape
    n = min(n, len(points))
    half = (REFINE_KERNEL - 1) // 2
    col = (points[:n, 0] / SIDE * hm_w).astype(np.int64)  # truncation, as C++'s int()
    row = (points[:n, 1] / SIDE * hm_h).astype(np.int64)
    inside = (col >= 0) & (col < hm_w) & (row >= 0) & (row < hm_h)
    steps = np.arange(-half, half + 1)
    rows = np.clip(row, 0, hm_h - 1)[:, None] + steps  # (n, k) heatmap rows and columns
    cols = np.clip(col, 0, hm_w - 1)[:, None] + steps
    in_window = ((rows >= 0) & (rows < hm_h))[:, :, None] & ((cols >= 0) & (cols < hm_w))[:, None, :]
    raw = heatmap[np.clip(rows, 0, hm_h - 1)[:, :, None], np.clip(cols, 0, hm_w - 1)[:, None, :],
                  np.arange(n)[:, None, None]].astype(np.float32)  # (n, k, k): only the windows
    w = (0.5 + 0.5 * np.tanh(0.5 * raw)) * in_window  # the sigmoid; the window cut at the edges
    total = w.sum(axis=(1, 2))
    ok = inside & (total > 0) & (w.max(axis=(1, 2)) >= REFINE_CONFIDENCE)
    out = points.copy()
    safe = np.where(total > 0, total, 1.0)
    x = (w * cols[:, None, :]).sum(axis=(1, 2)) / safe / hm_w * SIDE
    y = (w * rows[:, :, None]).sum(axis=(1, 2)) / safe / hm_h * SIDE
    out[:n][ok] = np.stack([x, y], axis=1)[ok]
    return out


class Landmarker:
    """The landmark network on one ROI per frame. Not thread-safe: one per tracker (they share
    the compiled model, each with its own infer request)."""

    def __init__(self, threads: int = 1, precision: str | None = None) -> None:
        precision = precision or default_precision()
        model = compiled(POSE_MODEL, int(threads), precision)
        self.precision = precision
        self._request = model.create_infer_request()
        outputs = {o.get_any_name(): o for o in model.outputs}
        shapes = {name: tuple(o.get_partial_shape().to_shape()) for name, o in outputs.items()}
        self._landmarks = next(o for n, o in outputs.items() if shapes[n] == (1, NUM_LANDMARKS * 5))
        self._flag = next(o for n, o in outputs.items() if shapes[n] == (1, 1))
        self._heatmap = next(o for n, o in outputs.items() if shapes[n][-1] == NUM_LANDMARKS and len(shapes[n]) == 4)
        self.roi: Roi | None = None

    def seed(self, points: np.ndarray, confidence: np.ndarray, min_confidence: float = 0.5) -> None:
        """Start from a full MediaPipe result (33 points in frame pixels): the hips' midpoint as
        the centre, and a scale point above it that puts every confident point inside the ROI."""
        hips = points[[23, 24]].mean(0)
        shoulders = points[[11, 12]].mean(0)
        up = shoulders - hips
        norm = float(np.hypot(*up))
        if norm < 1e-3:
            self.roi = None
            return
        seen = points[confidence >= min_confidence]
        reach = float(np.max(np.hypot(*(seen - hips).T))) if len(seen) else 2.0 * norm
        self.roi = Roi.aligned(hips, hips + up / norm * max(reach, norm))

    def track(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The 33 body points (frame pixels) and visibilities in `frame`, or None when there is
        no ROI or the model's pose flag says the person is gone (the ROI is then dropped)."""
        roi = self.roi
        if roi is None:
            return None
        out = self._request.infer({0: roi.input_tensor(frame)})
        if float(np.asarray(out[self._flag]).ravel()[0]) < FLAG_THRESHOLD:
            self.roi = None
            return None
        lm = np.asarray(out[self._landmarks], np.float32).reshape(NUM_LANDMARKS, 5)
        refined = refine_from_heatmap(lm[:, :2], np.asarray(out[self._heatmap])[0])
        points = roi.project(refined.astype(np.float64)).astype(np.float32)
        self.roi = Roi.aligned(points[BODY], points[BODY + 1])
        visibility = 1.0 / (1.0 + np.exp(-lm[:BODY, 3]))
        return points[:BODY], visibility.astype(np.float32)

    def reset(self) -> None:
        self.roi = None
