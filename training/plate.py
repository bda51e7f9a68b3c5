"""The target's background plate: the room without the person, at the model resolution.

The generator predicts only the person (colour and alpha) and the frame is the person over this
plate, so the background no longer wobbles from frame to frame. Each plate pixel is the temporal
median of the frames in which that pixel is surely background (outside the dilated person mask,
inside the picture after registration). Where the person never moved away there is nothing to take
the median of: those pixels are filled by OpenCV's inpainting (Telea), and the filled fraction is
reported, since a large one means the plate there is a guess.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from dancenow.errors import DanceNowError
from dancenow.training.masks import background, dilate_px

log = logging.getLogger(__name__)


@dataclass
class PlateConfig:
    """How the plate is built."""

    dilate: float = 0.025  # the person mask grown by this fraction of the height (edges, hair, blur)
    max_frames: int = 240  # frames the median is taken over, evenly spaced (bounds time and memory)
    min_seen: int = 3  # a pixel seen as background in fewer frames than this is filled
    inpaint_radius: int = 5
    warn_filled: float = 0.15  # warn when more than this fraction of the plate had to be filled


@dataclass
class Plate:
    image: np.ndarray  # uint8 H x W x 3 RGB
    filled: np.ndarray  # bool H x W: inpainted (never seen as background)
    frames: int  # how many frames the median was taken over
    dilate_px: int

    @property
    def filled_fraction(self) -> float:
        return float(self.filled.mean())


def build_plate(frames: list[np.ndarray], masks: list[np.ndarray], valid: list[np.ndarray | None] | None = None,
                usable: list[bool] | None = None, cfg: PlateConfig | None = None, name: str = "clip") -> Plate:
    """The plate of `frames` (uint8 H x W x 3) with person `masks` (float H x W in [0, 1]).

    `valid` marks the pixels each frame really shows (False where registration moved the picture
    away); `usable` leaves out frames whose registration is not trusted.
    """
    cfg = cfg or PlateConfig()
    picks = [i for i in range(len(frames)) if usable is None or usable[i]]
    if not picks:
        raise DanceNowError(f"{name}: no frame is usable for the background plate (registration failed on every "
                            "frame): film on a tripod or hold the camera steadier")
    if len(picks) > cfg.max_frames:
        picks = [picks[int(j)] for j in np.linspace(0, len(picks) - 1, cfg.max_frames)]
    h, w = frames[0].shape[:2]
    radius = dilate_px(h, cfg.dilate)
    # uint16 with 256 marking "not background here": a sort puts those last, and the median is
    # taken over the first `count` entries of each pixel.
    stack = np.empty((len(picks), h, w, 3), np.uint16)
    for j, i in enumerate(tqdm(picks, desc="plate", unit="frame")):
        ok = background(np.asarray(masks[i], np.float32), radius)
        if valid is not None and valid[i] is not None:
            ok &= valid[i]
        stack[j] = frames[i]
        stack[j][~ok] = 256
    image = np.empty((h, w, 3), np.uint8)
    count = np.empty((h, w), np.int64)
    for y in range(0, h, 32):  # row bands bound the sort's memory
        band = np.sort(stack[:, y:y + 32], axis=0)
        n = (band[..., 0] < 256).sum(axis=0)
        lo, hi = np.maximum(n - 1, 0) // 2, np.maximum(n, 1) // 2
        a = np.take_along_axis(band, lo[None, ..., None].repeat(3, -1), 0)[0]
        b = np.take_along_axis(band, hi[None, ..., None].repeat(3, -1), 0)[0]
        image[y:y + 32] = np.minimum((a.astype(np.int32) + b + 1) // 2, 255)
        count[y:y + 32] = n
    filled = count < min(cfg.min_seen, len(picks))
    if filled.any():
        image[filled] = 0
        image = cv2.inpaint(image, filled.astype(np.uint8), cfg.inpaint_radius, cv2.INPAINT_TELEA)
    plate = Plate(image, filled, len(picks), radius)
    if plate.filled_fraction > cfg.warn_filled:
        log.warning("%s: the person covers %.0f%% of the background plate in every frame; that part is inpainted "
                    "(a guess): a clip where the person moves around the room gives a cleaner plate",
                    name, 100 * plate.filled_fraction)
    return plate


@dataclass
class ChangingConfig:
    """What counts as a room that changes where nobody stands."""

    level: int = 40  # a pixel off the plate by more than this (0-255, any channel)...
    often: float = 0.3  # ...on more than this share of the frames that show it as background
    min_area: float = 0.02  # a region of less than this share of the frame is left alone (shadows, noise)


def changing_room(frames: np.ndarray, masks: np.ndarray, plate: np.ndarray, radius: int,
                  cfg: ChangingConfig | None = None) -> np.ndarray:
    """Bool H x W: where the room changes with nobody there (burnt-in subtitles, a screen, people
    passing). The pose cannot tell the generator what that room shows, so it paints a guess there:
    prepare says where, and with --clean-room paints the plate in there and training learns it."""
    cfg = cfg or ChangingConfig()
    h, w = plate.shape[:2]
    seen = np.zeros((h, w), np.int32)
    off = np.zeros((h, w), np.int32)
    ref = plate.astype(np.int16)
    for i in tqdm(range(len(frames)), desc="changing room", unit="frame", leave=False):
        ok = background(np.asarray(masks[i], np.float32), radius)
        seen += ok
        off += ok & (np.abs(np.asarray(frames[i], np.int16) - ref).max(-1) > cfg.level)
    often = (off > cfg.often * seen) & (seen >= 3)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    closed = cv2.morphologyEx(often.astype(np.uint8), cv2.MORPH_CLOSE, k)  # text's strokes into one region
    stats = cv2.connectedComponentsWithStats(closed, connectivity=8)[2]
    where = np.zeros((h, w), bool)
    for x, y, bw, bh, area in stats[1:]:  # each region as its box, grown: the text's rarest strokes too
        if area >= cfg.min_area * h * w:
            where[max(0, y - radius):y + bh + radius, max(0, x - radius):x + bw + radius] = True
    return where


def describe_region(where: np.ndarray) -> str:
    """"6.1 % of the frame, rows 454-509, columns 0-287": for the warnings."""
    ys, xs = np.nonzero(where)
    return (f"{100 * where.mean():.1f} % of the frame, rows {ys.min()}-{ys.max()}, columns {xs.min()}-{xs.max()}"
            if len(ys) else "nowhere")


def over_plate(frames: np.ndarray, masks: np.ndarray, plate: np.ndarray, radius: int,
               where: np.ndarray | None = None) -> np.ndarray:
    """The frames (uint8 N x H x W x 3) with the plate wherever the background surely is (outside
    the person mask grown by `radius`, feathered over `radius`), or only inside `where` (bool H x W,
    feathered outward): what a generator that paints only the person over the plate can make.
    Against the raw frames, where a hand-held camera's room drifts from the plate, its L1 pulls the
    alpha open outside the person and the colour paints the mismatch: streaks on the room."""
    out = np.empty(frames.shape, np.uint8)
    k = 2 * radius + 1
    room = 1.0
    if where is not None:
        inside = where.astype(np.float32)
        room = np.maximum(cv2.GaussianBlur(inside, (k, k), 0), inside)[..., None]
    for i in tqdm(range(len(frames)), desc="targets over the plate", unit="frame", leave=False):
        person = (~background(np.asarray(masks[i], np.float32), radius)).astype(np.float32)
        w = cv2.GaussianBlur(person, (k, k), 0)[..., None]  # the seam fades over the margin
        w = np.maximum(w, person[..., None])  # the grown person itself stays whole
        v = (1.0 - w) * room  # how much of the plate
        out[i] = ((1.0 - v) * frames[i] + v * plate + 0.5).astype(np.uint8)
    return out
