"""The face crops at the footage's own resolution, for EDN's face stage.

A 512-high frame holds the face in 64 px, its mouth's opening in 1.5-6 px; 1024-high footage holds
twice that. `prepare` cuts each frame's face box again from the decoded picture at `scale` times
the frame's size (through the same crop and registration as the frame), so that the face stage
(`FaceConfig.scale`) learns the eyes and the mouth from the pixels the camera saw, not from an
upscaled crop. Footage with fewer pixels than that is upsampled (nothing is made up, and
`prepare` says how many crops were short).
"""

from __future__ import annotations

import cv2
import numpy as np

from dancenow.errors import DanceNowError

FACES_HI = "faces_hi.npy"


def face_hi(image: np.ndarray, to_frame: np.ndarray, box: tuple[int, int, int, int] | None,
            scale: int) -> tuple[np.ndarray, bool]:
    """(crop * scale, crop * scale, 3) uint8: the decoded `image` seen through `to_frame` (3x3, its
    pixels to the frame's) at `scale` times the frame's size, cut at the frame's face `box`; and
    whether the source had the pixels for it (False: upsampled). An empty array where `box` is None."""
    if box is None:
        return np.zeros((0, 0, 3), np.uint8), True
    x0, y0, side = box[0], box[1], (box[2] - box[0]) * scale
    m = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale], [0.0, 0.0, 1.0]]) @ to_frame
    zoom = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
    if zoom < 0.95:  # shrinking: average the source first (warpAffine's INTER_AREA is a plain linear there)
        small = cv2.resize(image, (max(1, round(image.shape[1] * zoom)), max(1, round(image.shape[0] * zoom))),
                           interpolation=cv2.INTER_AREA)
        m = m @ np.diag([image.shape[1] / small.shape[1], image.shape[0] / small.shape[0], 1.0])
        image = small
    out = cv2.warpAffine(image, m[:2], (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out, zoom <= 1.05


def stack_faces(crops: list[np.ndarray], side: int) -> np.ndarray:
    """(N, side, side, 3): frames without a face hold zeros (their box is None in faces.json)."""
    out = np.zeros((len(crops), side, side, 3), np.uint8)
    for i, c in enumerate(crops):
        if c.size:
            if c.shape[:2] != (side, side):
                raise DanceNowError(f"face crop {i} is {c.shape[1]}x{c.shape[0]}, not {side}x{side}")
            out[i] = c
    return out


def upscaled_faces(frames: np.ndarray, boxes: list, scale: int) -> np.ndarray:
    """The fallback for a folder prepared without faces_hi.npy (or the synthetic dance): the frame's
    own crops, upsampled (bicubic)."""
    crops = []
    for f, b in zip(frames, boxes, strict=True):
        if b is None:
            crops.append(np.zeros((0, 0, 3), np.uint8))
            continue
        x0, y0, x1, y1 = b
        crops.append(cv2.resize(np.asarray(f[y0:y1, x0:x1]), ((x1 - x0) * scale, (y1 - y0) * scale),
                                interpolation=cv2.INTER_CUBIC))
    side = next((c.shape[0] for c in crops if c.size), 0)
    return stack_faces(crops, side)
