"""A procedural person drawn from any pose: the synthetic target and the built-in demo performer.

Every body part is a shaded, tapered capsule (a cylinder with rounded ends, lit from the upper
left) drawn into a depth buffer, so limbs join smoothly and an arm in front of the torso hides
it. The head is a shaded ellipsoid with hair, ears, eyes, eyebrows, nose and mouth placed from
the pose's face points, so the face follows turns of the head. The scene is rendered at `aa`
times the size and shrunk (anti-aliasing). Its ground truth is known for any pose, which makes
it a clean training target and a clean reference for debugging.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.pose import Pose

RGB = tuple[int, int, int]
_LIGHT = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])
_I = sk.INDEX


@dataclass(frozen=True)
class FigureStyle:
    """How the person looks: clothes, skin, hair and the plain background."""

    skin: RGB = (224, 172, 138)
    hair: RGB = (58, 36, 24)
    shirt: RGB = (200, 40, 48)
    trousers: RGB = (40, 62, 120)
    shoes: RGB = (235, 235, 230)
    eyes: RGB = (60, 40, 30)
    lips: RGB = (150, 60, 60)
    background_top: RGB = (206, 214, 222)
    background_bottom: RGB = (170, 178, 188)
    floor: RGB = (150, 140, 128)
    long_sleeves: bool = False
    long_hair: bool = False
    build: float = 1.0  # limb thickness multiplier


TARGET_STYLE = FigureStyle()
PERFORMER_STYLE = FigureStyle(
    skin=(150, 104, 74), hair=(232, 200, 110), shirt=(36, 140, 90), trousers=(30, 30, 34),
    shoes=(190, 40, 40), eyes=(40, 70, 110), lips=(120, 50, 50),
    background_top=(236, 226, 200), background_bottom=(214, 200, 168), floor=(120, 110, 96),
    long_sleeves=True, long_hair=True, build=0.9,
)


class _Canvas:
    """Colour, depth and part-id buffers for z-buffered drawing."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.color = np.zeros((h, w, 3), np.float32)
        self.depth = np.full((h, w), -np.inf, np.float32)
        self.part = np.zeros((h, w), np.int16)
        self.ys, self.xs = _grid(h, w)

    def window(self, lo: np.ndarray, hi: np.ndarray) -> tuple[slice, slice] | None:
        x0, y0 = max(0, int(lo[0])), max(0, int(lo[1]))
        x1, y1 = min(self.w, int(np.ceil(hi[0])) + 1), min(self.h, int(np.ceil(hi[1])) + 1)
        if x0 >= x1 or y0 >= y1:
            return None
        return slice(y0, y1), slice(x0, x1)

    def put(self, win, mask, z, color: RGB, normal, part_id: int) -> None:
        """Write the pixels of `mask` that are nearer than what is there, shading only those."""
        d = self.depth[win]
        m = mask & (z > d)
        d[m] = z[m]
        self.color[win][m] = _shade(color, *(n[m] for n in normal))
        self.part[win][m] = part_id

    def capsule(self, a, b, ra: float, rb: float, color: RGB, z0: float, part_id: int,
                round_ends: bool = True) -> None:
        """A tapered capsule from a (radius ra) to b (radius rb), shaded as a lit cylinder."""
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        r = max(ra, rb)
        win = self.window(np.minimum(a, b) - r - 1, np.maximum(a, b) + r + 1)
        if win is None:
            return
        px, py = self.xs[win] - a[0], self.ys[win] - a[1]
        d = b - a
        ll = float(d @ d) + 1e-6
        t_raw = (px * d[0] + py * d[1]) / ll
        t = np.clip(t_raw, 0.0, 1.0)
        ox, oy = px - t * d[0], py - t * d[1]
        dist = np.sqrt(ox * ox + oy * oy)
        rad = ra + (rb - ra) * t
        mask = dist < rad
        if not round_ends:
            mask &= (t_raw >= 0) & (t_raw <= 1)
        nz = np.sqrt(np.clip(1 - (dist / np.maximum(rad, 1e-3)) ** 2, 0, 1))
        nx, ny = ox / np.maximum(rad, 1e-3), oy / np.maximum(rad, 1e-3)
        self.put(win, mask, z0 + rad * nz, color, (nx, ny, nz), part_id)

    def ellipsoid(self, c, rx: float, ry: float, angle: float, color: RGB, z0: float, part_id: int,
                  depth_scale: float = 1.0) -> None:
        c = np.asarray(c, np.float32)
        r = max(rx, ry)
        win = self.window(c - r - 1, c + r + 1)
        if win is None:
            return
        px, py = self.xs[win] - c[0], self.ys[win] - c[1]
        ca, sa = np.cos(angle), np.sin(angle)
        lx, ly = (px * ca + py * sa) / rx, (-px * sa + py * ca) / ry
        q = lx * lx + ly * ly
        mask = q < 1
        nz = np.sqrt(np.clip(1 - q, 0, 1))
        nx, ny = lx * ca - ly * sa, lx * sa + ly * ca
        self.put(win, mask, z0 + r * depth_scale * nz, color, (nx, ny, nz), part_id)


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs


@functools.lru_cache(maxsize=8)
def _cached_background(h: int, w: int, style: FigureStyle, floor_y: float) -> np.ndarray:
    img = _background(h, w, style, floor_y)
    img.flags.writeable = False
    return img


def _shade(color: RGB, nx, ny, nz) -> np.ndarray:
    """Lambert + a little specular light on a surface with normal (nx, ny, nz)."""
    n = np.stack([nx, ny, nz], -1)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-6)
    lam = np.clip(n @ _LIGHT, 0, 1)
    spec = np.clip(n[..., 2] * 2 * lam - _LIGHT[2], 0, 1) ** 12
    return np.clip(np.asarray(color, np.float32) * (0.38 + 0.72 * lam)[..., None] + 40 * spec[..., None], 0, 255)


def _background(h: int, w: int, style: FigureStyle, floor_y: float) -> np.ndarray:
    top, bottom = np.asarray(style.background_top, np.float32), np.asarray(style.background_bottom, np.float32)
    f = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(top * (1 - f) + bottom * f, (h, w, 3)).copy()
    fy = int(min(h, max(0, floor_y)))
    if fy < h:
        g = np.linspace(0, 1, h - fy, dtype=np.float32)[:, None, None]
        floor = np.asarray(style.floor, np.float32)
        img[fy:] = floor * (1.0 - 0.15 * g) + 0 * img[fy:]
    return img


# Part ids (for drawing the face only where the head is visible).
_HEAD_ID, _OTHER_ID = 1, 2


def draw_figure(pose: Pose, size: tuple[int, int], style: FigureStyle = TARGET_STYLE, aa: int = 2) -> np.ndarray:
    """The person in `pose`, drawn as uint8 RGB at `size` = (height, width).

    Part sizes follow the body's own scale (torso length), so the figure stays in proportion
    at any distance from the camera; a pose with no detection gives the empty background.
    """
    h, w = int(size[0]), int(size[1])
    H, W = h * aa, w * aa
    fh, fw = pose.frame_size
    pts = pose.points.astype(np.float32) * np.array([W / fw, H / fh], np.float32)
    ok = pose.detected & (pose.confidence >= 0.3)
    floor_y = 0.86 * H
    canvas = _Canvas(H, W)
    canvas.color[:] = _cached_background(H, W, style, floor_y)
    if not pose.detected or not ok[[_I["left_shoulder"], _I["right_shoulder"], _I["left_hip"], _I["right_hip"]]].all():
        return _finish(canvas.color, h, w)

    def P(name: str) -> np.ndarray:
        return pts[_I[name]]

    neck = (P("left_shoulder") + P("right_shoulder")) / 2
    mid_hip = (P("left_hip") + P("right_hip")) / 2
    unit = float(np.linalg.norm(neck - mid_hip)) / 0.30  # body units -> pixels
    bw = style.build
    up = (neck - mid_hip) / max(1e-3, float(np.linalg.norm(neck - mid_hip)))

    # A soft shadow on the floor under the feet.
    feet = [P(n) for n in ("left_ankle", "right_ankle") if ok[_I[n]]]
    if feet:
        fx = float(np.mean([f[0] for f in feet]))
        fy = float(max(f[1] for f in feet)) + 0.035 * unit
        rx, ry = 0.22 * unit, 0.035 * unit
        win = canvas.window(np.array([fx - 2 * rx, fy - 4 * ry]), np.array([fx + 2 * rx, fy + 4 * ry]))
        if win is not None:
            shadow = np.zeros(canvas.depth[win].shape, np.float32)
            cv2.ellipse(shadow, (int(fx) - win[1].start, int(fy) - win[0].start), (int(rx), int(ry)), 0, 0, 360, 1.0, -1)
            shadow = cv2.GaussianBlur(shadow, (0, 0), 0.02 * unit + 1)
            canvas.color[win] *= (1 - 0.35 * shadow)[..., None]

    def limb(a: str, b: str, ra: float, rb: float, color: RGB, z: float, round_ends: bool = True) -> None:
        if ok[_I[a]] and ok[_I[b]]:
            canvas.capsule(P(a), P(b), ra * unit * bw, rb * unit * bw, color, z * unit, _OTHER_ID, round_ends)

    # Legs and shoes.
    for s in ("left", "right"):
        limb(f"{s}_hip", f"{s}_knee", 0.062, 0.046, style.trousers, 0.0)
        limb(f"{s}_knee", f"{s}_ankle", 0.046, 0.036, style.trousers, 0.0)
        limb(f"{s}_heel", f"{s}_foot_index", 0.030, 0.026, style.shoes, 0.03)
        limb(f"{s}_ankle", f"{s}_foot_index", 0.030, 0.026, style.shoes, 0.03)
    # Pelvis, then the torso (a tapered trunk from the shoulders to the hips).
    canvas.capsule(P("left_hip"), P("right_hip"), 0.07 * unit * bw, 0.07 * unit * bw, style.trousers, 0.0, _OTHER_ID)
    shoulder_half = float(np.linalg.norm(P("left_shoulder") - P("right_shoulder"))) / 2
    hip_half = float(np.linalg.norm(P("left_hip") - P("right_hip"))) / 2
    chest = neck - up * 0.02 * unit
    canvas.capsule(chest, mid_hip - up * 0.01 * unit, shoulder_half + 0.03 * unit * bw, hip_half + 0.055 * unit * bw,
                   style.shirt, 0.0, _OTHER_ID, round_ends=False)
    canvas.capsule(P("left_shoulder"), P("right_shoulder"), 0.05 * unit * bw, 0.05 * unit * bw, style.shirt, 0.0, _OTHER_ID)
    # Neck, then the arms (a little in front of the torso's surface).
    head_c, head_up, head_angle = _head_frame(pts, ok, neck, up)
    if head_c is not None:
        canvas.capsule(neck, head_c + head_up * 0.02 * unit, 0.035 * unit * bw, 0.03 * unit * bw, style.skin, 0.0, _OTHER_ID)
    # The forearms and hands in front of the torso's surface (0.2 > its 0.15 at the middle): a
    # forearm raised across the chest (a desk performer's gesture) is seen, not hidden inside it.
    forearm = style.shirt if style.long_sleeves else style.skin
    for s in ("left", "right"):
        limb(f"{s}_shoulder", f"{s}_elbow", 0.045, 0.038, style.shirt, 0.05)
        limb(f"{s}_elbow", f"{s}_wrist", 0.035, 0.028, forearm, 0.2)
        limb(f"{s}_wrist", f"{s}_index", 0.030, 0.022, style.skin, 0.2)
        limb(f"{s}_wrist", f"{s}_thumb", 0.016, 0.012, style.skin, 0.2)
    if head_c is not None:
        _draw_head(canvas, pts, ok, head_c, head_up, head_angle, unit, style, pose.extras.get("yaw"))
    return _finish(canvas.color, h, w)


def _head_frame(pts, ok, neck, up):
    """Centre, up vector and roll angle of the head from the face points (None when unseen)."""
    eyes = [pts[i] for i in (_I["left_eye"], _I["right_eye"]) if ok[i]]
    ears = [pts[i] for i in (_I["left_ear"], _I["right_ear"]) if ok[i]]
    if not eyes and not ok[sk.NOSE]:
        return None, None, None
    if ok[_I["left_eye"]] and ok[_I["right_eye"]]:
        across = pts[_I["left_eye"]] - pts[_I["right_eye"]]
        hup = np.array([across[1], -across[0]])
        hup /= max(1e-3, float(np.linalg.norm(hup)))
    else:
        hup = up
    centre = np.mean(ears, 0) if len(ears) == 2 else np.mean(eyes or [pts[sk.NOSE]], 0)
    angle = float(np.arctan2(-hup[0], -hup[1]))
    return centre, hup, -angle


def _draw_head(canvas: _Canvas, pts, ok, c, hup, angle, unit, style: FigureStyle, yaw) -> None:
    """Hair volume behind, ears, the skin ellipsoid with a hairline, then the facial features."""
    rx, ry = 0.068 * unit, 0.085 * unit
    centre = c - hup * 0.004 * unit
    hair_c = centre + hup * 0.018 * unit
    hair_ry = ry * (1.55 if style.long_hair else 1.02)
    hair_c2 = hair_c - hup * (0.07 * unit if style.long_hair else 0.0)
    canvas.ellipsoid(hair_c2, rx * 1.12, hair_ry, angle, style.hair, -0.06 * unit, _OTHER_ID, 0.5)
    for name in ("left_ear", "right_ear"):
        if ok[_I[name]]:
            canvas.ellipsoid(pts[_I[name]], 0.016 * unit, 0.026 * unit, angle, style.skin, -0.02 * unit, _OTHER_ID)
    # Skin, with hair over the top: pixels above the hairline (in the head's frame) take the hair colour.
    win = canvas.window(centre - ry - 2, centre + ry + 2)
    canvas.ellipsoid(centre, rx, ry, angle, style.skin, 0.0, _HEAD_ID, 0.9)
    if win is None:
        return
    px, py = canvas.xs[win] - centre[0], canvas.ys[win] - centre[1]
    along = -(px * hup[0] + py * hup[1]) / ry  # -1 at the crown, +1 at the chin
    across = (px * -hup[1] + py * hup[0]) / rx
    yaw = 0.0 if yaw is None else float(yaw)
    hairline = -0.42 + 0.12 * np.cos(np.clip(across - 0.6 * np.sin(yaw), -1.5, 1.5) * 2.0)
    fringe = (canvas.part[win] == _HEAD_ID) & (along < hairline)
    canvas.color[win][fringe] = canvas.color[win][fringe] * (np.asarray(style.hair, np.float32) / np.maximum(style.skin, 1))

    # Features are drawn into a layer and kept only where the head is the visible surface.
    layer = canvas.color[win].copy()
    off = np.array([win[1].start, win[0].start], np.float32)
    pts = pts - off
    s = 16  # fixed-point shift for sub-pixel drawing
    def fx(p) -> tuple[int, int]:
        return int(round(float(p[0]) * s)), int(round(float(p[1]) * s))
    deg = float(np.degrees(angle))
    eye_r = (int(0.015 * unit * s), int(0.009 * unit * s))
    for name in ("left_eye", "right_eye"):
        if not ok[_I[name]]:
            continue
        e = pts[_I[name]]
        cv2.ellipse(layer, fx(e), eye_r, deg, 0, 360, (245, 245, 240), -1, cv2.LINE_AA, 4)
        iris = e + np.array([0.004 * unit * np.sin(yaw), 0.0])
        cv2.circle(layer, fx(iris), int(0.0075 * unit * s), style.eyes, -1, cv2.LINE_AA, 4)
        cv2.circle(layer, fx(iris), int(0.0035 * unit * s), (15, 10, 10), -1, cv2.LINE_AA, 4)
        brow = e + hup * 0.024 * unit
        d = np.array([np.cos(angle), np.sin(angle)]) * 0.015 * unit
        cv2.line(layer, fx(brow - d), fx(brow + d), style.hair, max(1, int(0.007 * unit)), cv2.LINE_AA, 4)
    if ok[sk.NOSE]:
        n = pts[sk.NOSE]
        cv2.ellipse(layer, fx(n + hup * 0.006 * unit), (int(0.011 * unit * s), int(0.007 * unit * s)), deg, 0, 180,
                    tuple(int(v * 0.72) for v in style.skin), max(1, int(0.005 * unit)), cv2.LINE_AA, 4)
    if ok[_I["mouth_left"]] and ok[_I["mouth_right"]]:
        ml, mr = pts[_I["mouth_left"]], pts[_I["mouth_right"]]
        mc = (ml + mr) / 2
        half = float(np.linalg.norm(ml - mr)) / 2
        cv2.ellipse(layer, fx(mc), (int(half * s), int(0.012 * unit * s)), deg, 10, 170, style.lips,
                    max(1, int(0.008 * unit)), cv2.LINE_AA, 4)
    head = canvas.part[win] == _HEAD_ID
    canvas.color[win][head] = layer[head]


def _finish(img: np.ndarray, h: int, w: int) -> np.ndarray:
    if img.shape[0] != h or img.shape[1] != w:
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)
