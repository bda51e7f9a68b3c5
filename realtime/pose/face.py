"""Where the face is: the crop that EDN's face stage refines, centred on the nose."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.skeleton import FACE_CHAINS, MESH_AT, NOSE

# EDN crops 128 px around the nose on 1024 x 512 frames: an eighth of the frame's height.
FACE_CROP_FRAC = 128 / 1024
_LIPS = [MESH_AT[m] for m in FACE_CHAINS[-2][0]]  # the outer lip line's points in the layout
FEATHER = 0.125  # the face pass's blend ramp, as a fraction of the crop's side (EDN pastes the crop hard)


def face_crop_size(height: int, frac: float = FACE_CROP_FRAC, multiple: int = 8) -> int:
    """Side of the square face crop for a frame `height` px high (a multiple of `multiple`)."""
    return max(multiple, int(round(height * frac / multiple)) * multiple)


def face_box(pose: Pose, size: tuple[int, int], crop: int, min_confidence: float = 0.3
             ) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of a `crop` x `crop` box centred on the nose, kept inside a frame of
    `size` = (height, width); None when the nose is not visible."""
    if not pose.detected or pose.confidence[NOSE] < min_confidence:
        return None
    h, w = size
    fh, fw = pose.frame_size
    cx = pose.points[NOSE, 0] * w / fw
    cy = pose.points[NOSE, 1] * h / fh
    x0 = int(round(cx - crop / 2))
    y0 = int(round(cy - crop / 2))
    x0 = min(max(0, x0), max(0, w - crop))
    y0 = min(max(0, y0), max(0, h - crop))
    return x0, y0, x0 + crop, y0 + crop


def paste_face(frame: np.ndarray, label_map: np.ndarray, box: tuple[int, int, int, int] | None,
               refine: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """`frame` with `refine(label crop, frame crop)` pasted into `box` (EDN's face pass); the frame
    itself when there is no box. `frame` is never modified. `refine` is whatever runs the face net
    (an engine's, or a checkpoint's in evaluation): this floor knows nothing of engines."""
    if box is None:
        return frame
    x0, y0, x1, y1 = box
    out = frame.copy()
    crop = frame[y0:y1, x0:x1]
    refined = refine(label_map[y0:y1, x0:x1], crop)
    w = feather(y1 - y0, x1 - x0)  # the refinement fades out towards the crop's edges: no seam
    out[y0:y1, x0:x1] = (crop + w * (refined.astype(np.float32) - crop)).round().astype(np.uint8)
    return out


@functools.lru_cache(maxsize=8)
def feather(h: int, w: int, ramp: float = FEATHER) -> np.ndarray:
    """(h, w, 1) weights: 1 inside, falling linearly to 0 over `ramp` of the side at each edge."""
    def axis(n: int) -> np.ndarray:
        d = np.minimum(np.arange(n), np.arange(n)[::-1]) + 0.5
        return np.clip(d / max(1.0, ramp * n), 0.0, 1.0).astype(np.float32)
    return (axis(h)[:, None] * axis(w)[None, :])[:, :, None]


def mouth_opening(pose: Pose) -> float | None:
    """Inner lips apart as a fraction of the face's height (forehead to chin), from the face mesh;
    None where the mesh was not found."""
    at = MESH_AT
    idx = [at[13], at[14], at[10], at[152]]
    if float(np.min(pose.confidence[idx])) <= 0:
        return None
    p = pose.points
    height = float(np.hypot(*(p[at[152]] - p[at[10]])))
    return float(np.hypot(*(p[at[14]] - p[at[13]])) / height) if height > 0 else None


def mouth_box(pose: Pose, size: tuple[int, int], pad: float = 0.35) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around the outer lips at `size` = (height, width), grown by `pad` of the
    lips' width on every side (the face stage weighs the mouth there); None without the mesh."""
    if not pose.detected or float(np.min(pose.confidence[_LIPS])) <= 0:
        return None
    h, w = size
    fh, fw = pose.frame_size
    lips = pose.points[_LIPS] * np.array([w / fw, h / fh], np.float32)
    (x0, y0), (x1, y1) = lips.min(0), lips.max(0)
    m = pad * max(1.0, float(x1 - x0))
    return int(np.floor(x0 - m)), int(np.floor(y0 - m)), int(np.ceil(x1 + m)), int(np.ceil(y1 + m))
