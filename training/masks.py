"""Person masks for preparation: the tracking pass's mask cache, the synthetic target's masks, and the
dilated "surely background" area that registration and the plate both need.

MediaPipe's masks come out of the same pass as the poses, so they are cached beside the pose track
(a re-prepare at another size or crop does not run MediaPipe again). A clip of a few minutes has
thousands of frames: the cache streams each mask to disk as it comes and is memory-mapped when read.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from dancenow.errors import DanceNowError

PERSON = 0.3  # a soft mask value above this counts as person when the background is cut out


class MaskCache:
    """Writes uint8 (0-255) person masks, one per frame, into a memory-mappable .npy file.

    Masks go to a raw side file as they come (nothing held in memory); `close()` puts the .npy
    header in front and moves the file into place, so the cache either is complete or is not there.
    """

    def __init__(self, path: Path, max_side: int) -> None:
        self.path = Path(path)
        self.max_side = max_side
        self.shape: tuple[int, int] | None = None
        self.count = 0
        self._raw_path = self.path.with_name(f".{self.path.name}.raw")
        self._raw = open(self._raw_path, "wb")  # closed by close() or abort()

    def add(self, mask: np.ndarray) -> None:
        """Append one frame's mask (float in [0, 1] at the frame's size)."""
        h, w = mask.shape[:2]
        if self.shape is None:
            s = min(1.0, self.max_side / max(h, w))
            self.shape = (max(1, round(h * s)), max(1, round(w * s)))
        if (h, w) != self.shape:
            mask = cv2.resize(mask, (self.shape[1], self.shape[0]), interpolation=cv2.INTER_AREA)
        self._raw.write(np.clip(mask * 255.0 + 0.5, 0, 255).astype(np.uint8).tobytes())
        self.count += 1

    def close(self) -> None:
        self._raw.close()
        if self.shape is None:
            self._raw_path.unlink(missing_ok=True)
            raise DanceNowError(f"no masks were written to {self.path}: the video held no frames")
        tmp = self.path.with_name(f".{self.path.name}.partial")
        with open(tmp, "wb") as f, open(self._raw_path, "rb") as raw:
            header = {"descr": "|u1", "fortran_order": False, "shape": (self.count, *self.shape)}
            np.lib.format.write_array_header_1_0(f, header)
            shutil.copyfileobj(raw, f, 1 << 22)
        self._raw_path.unlink()
        os.replace(tmp, self.path)

    def abort(self) -> None:
        self._raw.close()
        self._raw_path.unlink(missing_ok=True)


def load_mask_cache(path: Path, frames: int) -> np.ndarray | None:
    """The cached masks (memory-mapped, uint8 N x h x w), or None when absent or too short."""
    if not path.is_file():
        return None
    try:
        masks = np.load(path, mmap_mode="r")
    except (ValueError, OSError):
        return None
    if masks.ndim != 3 or masks.dtype != np.uint8 or len(masks) < frames:
        return None
    return masks[:frames]


def dilate_px(height: int, fraction: float) -> int:
    """A dilation radius in pixels: `fraction` of the image height, at least 1."""
    return max(1, int(round(fraction * height)))


def background(mask: np.ndarray, radius: int) -> np.ndarray:
    """Where the background surely is: outside the person mask (float in [0, 1]) grown by `radius` px.

    MediaPipe's mask misses hair, loose clothes and motion blur at the edges; the margin keeps
    those out of the plate and out of what registration matches.
    """
    person = (mask > PERSON).astype(np.uint8)
    k = 2 * radius + 1
    return cv2.dilate(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) == 0


def masks_from_plate(frames: list[np.ndarray], plate: np.ndarray, scale: float = 16.0) -> list[np.ndarray]:
    """Soft person masks of frames drawn over a known plate (the synthetic target): where and how
    strongly a frame differs from its plate. The figure's floor shadow counts as person, as it moves
    with them."""
    out = []
    ref = plate.astype(np.int16)
    close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    for f in frames:
        diff = np.abs(f.astype(np.int16) - ref).max(axis=2).astype(np.float32)
        m = np.clip(diff / scale, 0.0, 1.0)
        out.append(cv2.morphologyEx(m, cv2.MORPH_CLOSE, close).astype(np.float16))
    return out
