"""Draws a Pose as EDN's label map: the generator's only view of the body.

White canvas, limbs as ellipses blended over it (the arms last where the bundle says so), joints
as discs, hands as thin bones, and the face either as a few dark dots (the body model's 11 face
points) or, with `face_lines` and a tracked face mesh, as EDN draws it: the head's region
filled, brows, eyes, nose and lips as lines, the open mouth filled. Sizes scale with the output
height so that a 256 px and a 1024 px label map look alike. Drawing is deterministic
(fixed-point anti-aliased OpenCV primitives).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.pose import Pose
from dancenow.schema import parse

_SHIFT = 4  # sub-pixel bits for OpenCV's fixed-point drawing
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class RenderConfig:
    """Drawing settings; stored in every bundle so the live loop draws as training did."""

    limb_width: float = sk.LIMB_WIDTH_FRAC
    joint_radius: float = sk.JOINT_RADIUS_FRAC
    face_dot_radius: float = sk.FACE_DOT_RADIUS_FRAC
    hand_line: float = sk.HAND_LINE_FRAC
    limb_alpha: float = sk.LIMB_ALPHA
    min_confidence: float = sk.MIN_CONFIDENCE
    draw_face: bool = True
    draw_hands: bool = True
    # The face from the face mesh as lines (dots when the mesh is not tracked in a frame). Off in
    # bundles made before it existed, which then draw as they were trained; `prepare` turns it on.
    face_lines: bool = False
    face_line: float = sk.FACE_LINE_FRAC
    # The arms drawn after the torso and legs, so that a forearm across the chest stays whole: drawn
    # in LIMBS' order, the flanks (in greens next to the left forearm's) cut through it, and the
    # generator rendered it as a smear. Off in bundles made before it existed; `prepare` turns it on.
    arms_over_torso: bool = False

    def __post_init__(self) -> None:
        # sizes are fractions of the label map's height; a setting read from a file could be 1e9
        for name in ("limb_width", "joint_radius", "face_dot_radius", "hand_line", "limb_alpha", "min_confidence",
                     "face_line"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} {getattr(self, name)!r} must be between 0 and 1")

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict, where: str = "renderer settings") -> RenderConfig:
        """Type-checked; an unknown setting is refused (it would draw differently from training)."""
        return parse(cls, d, where, "re-export the bundle (or prepare the data) with this version")


# Indices into LIMBS in drawing order (a later limb covers an earlier one where they cross), by
# `arms_over_torso`: the skeleton's order, or the arms and hands after the torso and legs.
_LATE = (*sk.ARM_LIMBS, *sk.HAND_LIMBS)
_LIMB_ORDER = {False: tuple(range(len(sk.LIMBS))),
               True: (*(i for i in range(len(sk.LIMBS)) if i not in _LATE), *_LATE)}


def _fixed(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]) * _ONE)), int(round(float(p[1]) * _ONE))


def render_label_map(pose: Pose, size: tuple[int, int], config: RenderConfig = RenderConfig()) -> np.ndarray:
    """The label map (uint8 H x W x 3, RGB) of `pose`, drawn at `size` = (height, width).

    The pose's points are scaled from `pose.frame_size` to `size`; a pose with no detection gives
    a blank white canvas.
    """
    h, w = int(size[0]), int(size[1])
    canvas = np.full((h, w, 3), 255, dtype=np.uint8)
    if not pose.detected:
        return canvas
    fh, fw = pose.frame_size
    pts = pose.points * np.array([w / fw, h / fh], dtype=np.float32)
    pts, conf = sk.with_virtual_points(pts, pose.confidence)
    ok = conf >= config.min_confidence

    # Limbs: all drawn into one layer, then blended over the canvas in one vectorised step.
    half_width = max(1.0, config.limb_width * h / 2)
    layer = canvas.copy()
    for i in _LIMB_ORDER[config.arms_over_torso]:
        (a, b), color = sk.LIMBS[i], sk.LIMB_COLORS[i]
        if not (ok[a] and ok[b]):
            continue
        mid = (pts[a] + pts[b]) / 2
        d = pts[b] - pts[a]
        length = float(np.hypot(d[0], d[1])) / 2
        angle = math.degrees(math.atan2(float(d[1]), float(d[0])))
        poly = cv2.ellipse2Poly(_fixed(mid), (int(length * _ONE), int(half_width * _ONE)), int(round(angle)), 0, 360, 10)
        cv2.fillConvexPoly(layer, poly, color.tolist(), cv2.LINE_AA, _SHIFT)
    # The canvas is still plain white here, so blending the whole layer only changes limb pixels.
    canvas = cv2.addWeighted(canvas, 1 - config.limb_alpha, layer, config.limb_alpha, 0.0)

    radius = int(round(max(1.0, config.joint_radius * h) * _ONE))
    for j in sk.JOINTS:
        if ok[j]:
            cv2.circle(canvas, _fixed(pts[j]), radius, sk.joint_color(j).tolist(), -1, cv2.LINE_AA, _SHIFT)

    if config.draw_hands:
        thickness = max(1, int(round(config.hand_line * h)))
        for hand, color in ((sk.LEFT_HAND, sk.LEFT_HAND_COLOR), (sk.RIGHT_HAND, sk.RIGHT_HAND_COLOR)):
            hp, hc = pts[hand], conf[hand]
            for a, b in sk.HAND_BONES:
                if hc[a] >= config.min_confidence and hc[b] >= config.min_confidence:
                    cv2.line(canvas, _fixed(hp[a]), _fixed(hp[b]), color, thickness, cv2.LINE_AA, _SHIFT)

    if config.draw_face and config.face_lines and bool(np.all(conf[sk.FACE] >= config.min_confidence)):
        _draw_face_lines(canvas, pts[sk.FACE], max(1, int(round(config.face_line * h))))
    elif config.draw_face:
        face_r = int(round(max(1.0, config.face_dot_radius * h) * _ONE))
        for i in sk.FACE_POINTS:
            if ok[i]:
                cv2.circle(canvas, _fixed(pts[i]), face_r, sk.FACE_COLOR, -1, cv2.LINE_AA, _SHIFT)
    return canvas


def _draw_face_lines(canvas: np.ndarray, face: np.ndarray, thickness: int) -> None:
    """The face mesh's chains (sk.FACE_CHAINS order) onto `canvas`: the oval filled, lines, then the
    inside of the mouth filled (the last chain is the inner lips)."""
    chains, start = [], 0
    for chain, closed in sk.FACE_CHAINS:
        pts = np.round(face[start:start + len(chain)] * _ONE).astype(np.int32)
        chains.append((pts, closed))
        start += len(chain)
    cv2.fillPoly(canvas, [chains[0][0]], sk.FACE_FILL, cv2.LINE_AA, _SHIFT)
    for (pts, closed), color in zip(chains, sk.FACE_CHAIN_COLORS, strict=True):
        cv2.polylines(canvas, [pts], closed, color, thickness, cv2.LINE_AA, _SHIFT)
    # last, so that a mouth opened by less than a line's width still shows
    cv2.fillPoly(canvas, [chains[-1][0]], sk.MOUTH_FILL, cv2.LINE_AA, _SHIFT)
