"""Output layouts: the target alone, or performer | pose | target side by side."""

from __future__ import annotations

import cv2
import numpy as np

from dancenow.realtime.media.provenance import add_mark

LAYOUTS = ("target", "side-by-side")


def fit_height(image: np.ndarray, height: int) -> np.ndarray:
    """`image` scaled to `height` rows, keeping its aspect ratio (width rounded to even)."""
    h, w = image.shape[:2]
    if h == height:
        return image
    width = max(2, int(round(w * height / h / 2)) * 2)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if h > height else cv2.INTER_LINEAR)


def compose(layout: str, generated: np.ndarray, performer: np.ndarray | None = None,
            label_map: np.ndarray | None = None, mark: bool = True) -> np.ndarray:
    """The output frame for `layout`; the generated panel carries the visible synthetic mark."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    target = add_mark(generated.copy()) if mark else generated
    if layout == "target":
        return target
    h = generated.shape[0]
    panels = [fit_height(p, h) for p in (performer, label_map) if p is not None]
    return np.ascontiguousarray(np.hstack([*panels, target]))
