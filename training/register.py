"""Hand-held footage to one steady frame: every frame registered to a reference on its background.

A generator that puts the person over one background plate needs the frames, the plate and the
poses in one steady frame, and people film targets on phones (a hand-held clip's background moves
by several pixels at model resolution). Each frame's background (outside the dilated person mask)
is registered to a reference frame, the middle kept one so the warps stay small at both ends:
background corners of the reference followed into the frame (pyramidal Lucas-Kanade, checked by
tracking back) give a RANSAC fit, robust to large shakes; OpenCV's ECC refines it on the whole
background, and may not wander more than `max_refine_px` from it (on a repetitive wall ECC alone
can slide to a wrong optimum). Where no fit exists ECC starts, coarse to fine, from the
neighbour's warp. ECC masks only its input image, so the reference's person, mapped into the
frame by the starting warp, is masked out as well.

The motion is the median displacement of background corners against the reference, before and
after; "after" follows the registered frame's own corners back to the reference, not the corners
the fit used. A clip whose background moves less than `still_px` is left alone: on a tripod,
warping could only blur.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dancenow.errors import DanceNowError
from dancenow.realtime.media.reader import iter_frames
from dancenow.realtime.pose.pose import Pose
from dancenow.training.masks import background, dilate_px

log = logging.getLogger(__name__)

MIN_POINTS = 12  # fewer matched background corners than this measure nothing
MOTIONS = {"affine": cv2.MOTION_AFFINE, "homography": cv2.MOTION_HOMOGRAPHY}


@dataclass
class RegisterConfig:
    """How frames are registered, and what counts as holding still."""

    work_side: int = 320  # long side of the grey images registration works on
    motion: str = "affine"  # ECC motion model: "affine" or "homography"
    dilate: float = 0.04  # the person mask grown by this fraction of the image height
    still_px: float = 0.5  # background motion (95th percentile, model px) below this: a still camera
    max_residual_px: float = 1.0  # a frame still moving more than this (model px) after registration is unsteady
    min_correlation: float = 0.6  # an ECC result below this correlation counts as failed
    levels: int = 3  # ECC pyramid levels (each halves the size) when no corner fit gives a start
    iterations: int = 30  # ECC iterations per level
    max_refine_px: float = 2.0  # ECC may move the corners' fit by at most this (work px) at the image corners

    def __post_init__(self) -> None:
        if self.motion not in MOTIONS:
            raise DanceNowError(f"registration motion {self.motion!r} is not one of {sorted(MOTIONS)}: use 'affine'")


@dataclass
class Registration:
    """Per kept frame, the warp from its source pixels to the reference's, and how well it holds."""

    to_ref: list[np.ndarray]  # 3x3 float64: source pixels of the frame -> source pixels of the reference
    ok: list[bool]  # False: neither the corners nor ECC registered this frame (prepare drops it)
    before: np.ndarray  # background shift against the reference before registration (work px; NaN: unmeasured)
    after: np.ndarray  # the same after registration
    reference: int  # index into the kept frames
    still: bool  # the camera held still: every warp is the identity
    work_scale: float  # work px per source px
    method: str

    def unsteady(self, model_per_source: float, limit: float) -> list[bool]:
        """Frames whose background still moves more than `limit` model px (or failed)."""
        after = self.after * model_per_source / self.work_scale
        return [not ok or bool(a > limit) for ok, a in zip(self.ok, after, strict=True)]

    def report(self, model_per_source: float) -> dict:
        """Residual background motion before and after, in model-resolution pixels."""
        k = model_per_source / self.work_scale
        others = np.arange(len(self.ok)) != self.reference
        return {"before": _summary(self.before[others] * k), "after": _summary(self.after[others & self.ok] * k)}


def _summary(x: np.ndarray) -> dict:
    x = x[np.isfinite(x)]
    if not len(x):
        return {"median": None, "p95": None, "max": None}
    return {"median": round(float(np.median(x)), 3), "p95": round(float(np.percentile(x, 95)), 3),
            "max": round(float(x.max()), 3)}


def identity(n: int, reference: int = 0, work_scale: float = 1.0, measured: bool = True) -> Registration:
    """No registration: the synthetic target (no camera, no motion), or registration turned off
    (`measured=False`: the motion is unknown, reported as null)."""
    motion = np.zeros(n) if measured else np.full(n, np.nan)
    return Registration([np.eye(3) for _ in range(n)], [True] * n, motion, motion.copy(), reference, True,
                        work_scale, "none")


def corners(image: np.ndarray, bg: np.ndarray) -> np.ndarray | None:
    """Up to 300 corners of `image`'s background worth following, (K, 1, 2) float32, or None."""
    pts = cv2.goodFeaturesToTrack(image, 300, 0.01, 6, mask=bg.astype(np.uint8))
    return pts if pts is not None and len(pts) >= MIN_POINTS else None


def follow(ref: np.ndarray, image: np.ndarray, pts: np.ndarray | None, image_bg: np.ndarray,
           levels: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The reference's corners `pts` found again in `image`'s background by pyramidal Lucas-Kanade,
    kept when tracking back lands within half a pixel: matched (K, 2) points in both."""
    none = np.zeros((0, 2), np.float32)
    if pts is None:
        return none, none
    lk = dict(winSize=(21, 21), maxLevel=levels, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    fwd, st1, _ = cv2.calcOpticalFlowPyrLK(ref, image, pts, None, **lk)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(image, ref, fwd, None, **lk)
    p, q = pts.reshape(-1, 2), fwd.reshape(-1, 2)
    good = (st1.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm(back.reshape(-1, 2) - p, axis=1) < 0.5)
    h, w = image_bg.shape
    xi = np.clip(np.round(q[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(q[:, 1]).astype(int), 0, h - 1)
    good &= image_bg[yi, xi]
    return (p[good], q[good]) if good.sum() >= MIN_POINTS else (none, none)


def shift(p: np.ndarray, q: np.ndarray) -> float:
    """Median displacement of matched points; NaN when there are none (a bare wall)."""
    return float(np.median(np.linalg.norm(q - p, axis=1))) if len(p) else float("nan")


def background_shift(ref: np.ndarray, image: np.ndarray, ref_bg: np.ndarray, image_bg: np.ndarray) -> float:
    """Median displacement (px) of the reference's background corners found again in `image`'s
    background; NaN when fewer than MIN_POINTS survive (a bare wall has nothing to follow)."""
    return shift(*follow(ref, image, corners(ref, ref_bg), image_bg))


def warp(image: np.ndarray, m: np.ndarray, size: tuple[int, int], flags: int = cv2.INTER_LINEAR,
         border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    """`image` mapped by the 3x3 `m` (its pixels -> output pixels) into an output of `size` (H, W)."""
    dsize = (int(size[1]), int(size[0]))
    if np.allclose(m[2], (0.0, 0.0, 1.0)):
        return cv2.warpAffine(image, m[:2], dsize, flags=flags, borderMode=border)
    return cv2.warpPerspective(image, m, dsize, flags=flags, borderMode=border)


def resample(image: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`image` mapped by the 3x3 `m` into `size`, and where the output shows the image. A large
    reduction is done by area first (a warp alone samples, and aliases)."""
    h, w = image.shape[:2]
    k = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
    if k < 0.8:
        pw, ph = max(1, round(w * k)), max(1, round(h * k))
        image = cv2.resize(image, (pw, ph), interpolation=cv2.INTER_AREA)
        m = m @ np.diag([w / pw, h / ph, 1.0])
        h, w = ph, pw
    out = warp(image, m, size, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE)
    inside = warp(np.ones((h, w), np.uint8), m, size, cv2.INTER_NEAREST) > 0
    return out, inside


def warp_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(K, 2) points mapped by the 3x3 `m`."""
    p = np.c_[points.astype(np.float64), np.ones(len(points))] @ m.T
    return (p[:, :2] / p[:, 2:3]).astype(np.float32)


def warp_pose(pose: Pose, m: np.ndarray, frame_size: tuple[int, int]) -> Pose:
    return pose.copy(points=warp_points(pose.points, m), frame_size=frame_size)


def _scaled(m: np.ndarray, f: float) -> np.ndarray:
    """`m` for images scaled by `f` (its coordinates times f on both sides)."""
    s = np.diag([f, f, 1.0])
    return s @ m @ np.linalg.inv(s)


def _ecc(ref: np.ndarray, image: np.ndarray, mask: np.ndarray, init: np.ndarray, cfg: RegisterConfig, levels: int):
    """ECC's warp (3x3, reference pixels -> `image` pixels) and its correlation, coarse to fine."""
    motion = MOTIONS[cfg.motion]
    rows = 3 if cfg.motion == "homography" else 2
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, cfg.iterations, 1e-4)
    m, cc = init.copy(), 0.0
    for level in range(levels - 1, -1, -1):
        f = 0.5 ** level
        if f < 1:
            size = (max(8, round(ref.shape[1] * f)), max(8, round(ref.shape[0] * f)))
            r, i = (cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (ref, image))
            k = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        else:
            r, i, k = ref, image, mask.astype(np.uint8)
        w = _scaled(m, f)[:rows].astype(np.float32)
        cc, w = cv2.findTransformECC(r, i, w, motion, crit, k, 5)
        m = _scaled(np.vstack([w, [0, 0, 1]]) if rows == 2 else w.astype(np.float64), 1 / f)
    return m, float(cc)


def register_images(gray: list[np.ndarray], bg: list[np.ndarray], cfg: RegisterConfig, model_per_work: float,
                    work_scale: float = 1.0, reference: int | None = None, name: str = "clip") -> Registration:
    """Register grey work images (with their background masks) to the middle one (or `reference`).

    Each frame starts from a RANSAC fit to the background corners it shares with the reference
    (robust to large shakes), else from its neighbour's warp; ECC refines it (precise where the
    corners are few). Warps come back in source pixels (`work_scale` = work px per source px);
    `model_per_work` converts work px to model px for the still-camera test.
    """
    n = len(gray)
    ref = n // 2 if reference is None else reference
    ref_pts = corners(gray[ref], bg[ref])
    matches = [follow(gray[ref], gray[i], ref_pts, bg[i]) for i in range(n)]
    before = np.array([0.0 if i == ref else shift(*matches[i]) for i in range(n)])
    moving = before[np.isfinite(before)] * model_per_work
    if len(moving) < n / 2:
        log.warning("%s: the background has too little to follow (few corners outside the person) in %d of %d "
                    "frames: its motion is measured on the others only", name, n - len(moving), n)
    if not len(moving) or np.percentile(moving, 95) < cfg.still_px:
        reg = identity(n, ref, work_scale)
        reg.before, reg.after, reg.method = before, before.copy(), f"ecc-{cfg.motion} (still: identity)"
        return reg
    h, w = gray[ref].shape
    to_work = [np.eye(3) for _ in range(n)]
    ok, after = [True] * n, np.zeros(n)
    ref_bg = bg[ref].astype(np.uint8)
    with tqdm(total=n - 1, desc="registering", unit="frame") as bar:
        for order in (range(ref + 1, n), range(ref - 1, -1, -1)):
            last = np.eye(3)  # the neighbour's warp: reference -> frame
            for i in order:
                fit = _fit(*matches[i], cfg.motion)
                fit = fit if fit is not None and _plausible(fit, w, h) else None
                init = last if fit is None else fit
                # ECC masks its input only: also mask the reference's person, mapped into this frame.
                mask = bg[i] & (warp(ref_bg, init, (h, w), cv2.INTER_NEAREST) > 0)
                m, refined = init, False
                try:  # from the corners' fit, ECC only refines: one level, and it may not wander off
                    found, cc = _ecc(gray[ref], gray[i], mask, init, cfg, 1 if fit is not None else cfg.levels)
                    refined = (cc >= cfg.min_correlation and _plausible(found, w, h)
                               and (fit is None or _distance(found, fit, w, h) < cfg.max_refine_px))
                    m = found if refined else init
                except cv2.error:
                    pass
                ok[i] = refined or fit is not None
                after[i] = np.nan
                if ok[i]:
                    last, to_work[i] = m, np.linalg.inv(m)
                    moved = warp(gray[i], to_work[i], (h, w))
                    seen = warp(bg[i].astype(np.uint8), to_work[i], (h, w), cv2.INTER_NEAREST) > 0
                    # measured on the frame's own corners (not those the fit used), tracked back
                    after[i] = shift(*follow(moved, gray[ref], corners(moved, seen), bg[ref], levels=2))
                bar.update()
    s = np.diag([work_scale, work_scale, 1.0])
    to_ref = [np.linalg.inv(s) @ m @ s for m in to_work]
    return Registration(to_ref, ok, before, after, ref, False, work_scale, f"ecc-{cfg.motion}")


def _fit(p: np.ndarray, q: np.ndarray, motion: str) -> np.ndarray | None:
    """A RANSAC fit (3x3, reference -> frame) to matched corners, or None when they do not agree."""
    if len(p) < MIN_POINTS:
        return None
    if motion == "homography":
        m, inliers = cv2.findHomography(p, q, cv2.RANSAC, 1.0)
    else:
        m, inliers = cv2.estimateAffine2D(p, q, method=cv2.RANSAC, ransacReprojThreshold=1.0)
        m = None if m is None else np.vstack([m, [0.0, 0.0, 1.0]])
    if m is None or inliers is None or inliers.sum() < MIN_POINTS:
        return None
    return m.astype(np.float64)


def _distance(a: np.ndarray, b: np.ndarray, w: int, h: int) -> float:
    """How far apart two warps put the image's corners (px)."""
    c = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    return float(np.abs(warp_points(c, a) - warp_points(c, b)).max())


def _plausible(m: np.ndarray, w: int, h: int) -> bool:
    """A hand-held camera shakes: it does not zoom by a quarter or slide half a frame between frames."""
    c = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    area = cv2.contourArea(warp_points(c, m)) / (w * h)
    return bool(0.75 < area < 1.33 and _distance(m, np.eye(3), w, h) < 0.5 * max(w, h))


def work_image(image: np.ndarray, mask: np.ndarray, cfg: RegisterConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """What registration looks at: the RGB frame in grey at `work_side`, its background (outside the
    dilated person `mask`, float in [0, 1] at any size), and the work px per source px."""
    h, w = image.shape[:2]
    scale = min(1.0, cfg.work_side / max(h, w))
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    gray = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
    m = cv2.resize(np.asarray(mask, np.float32), size, interpolation=cv2.INTER_AREA)
    return gray, background(m, dilate_px(size[1], cfg.dilate)), scale


def register_video(path: Path, kept: list[int], masks: np.ndarray, cfg: RegisterConfig,
                   model_per_source: float) -> Registration:
    """Register the `kept` frames of a video, whose person masks (uint8, any size) are `masks`."""
    gray, bg = [], []
    keep = set(kept)
    scale = 1.0
    for f in tqdm(iter_frames(path, max(kept) + 1, strict=True), total=max(kept) + 1, desc="reading background",
                  unit="frame"):
        if f.index in keep:
            g, b, scale = work_image(f.image, np.asarray(masks[f.index], np.float32) / 255.0, cfg)
            gray.append(g)
            bg.append(b)
    return register_images(gray, bg, cfg, model_per_source / scale, scale, name=Path(path).name)
