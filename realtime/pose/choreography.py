"""A built-in looping dance: ground-truth poses for the synthetic target and the demo performer.

The dance is procedural (joint angles are smooth periodic functions of time), so any instant has
an exact pose and the loop is seamless. Over one `PERIOD` it passes through arm waves, both arms
up, squats, side steps, torso turns, a desk performer's gestures over 5 s, the turns' second half
included (each forearm sweeping from raised outwards through straight up to level across the
chest: what a performer at a laptop does, issue 25; a target that never saw them draws such arms
hanging or melted into the torso) and a walk towards and away from the
camera (the ankles' y changes with depth), with gentle always-on harmonics so the last part of the
loop mixes moves seen earlier in new combinations (useful as a held-out tail).

Geometry: a front-facing 2.5D skeleton in "body units" (1 unit = top of head to ankle), posed by
forward kinematics, turned about the vertical axis, then projected into the frame.
"""

from __future__ import annotations

import math

import numpy as np

from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.pose import Pose

PERIOD = 25.0  # seconds of one loop of the dance (20 beats of 1.25 s: seamless)

# Body proportions in body units (top of head to ankle = about 1).
_TORSO = 0.30  # mid-hip to neck
_SHOULDER_HALF = 0.115
_HIP_HALF = 0.065
_UPPER_ARM, _FOREARM, _HAND = 0.165, 0.145, 0.055
_THIGH, _SHIN = 0.245, 0.235
_NECK = 0.105  # neck to head centre (eye level)
_HEAD_R = 0.065  # horizontal head radius (used for the face points)
_BODY_FRAC = 0.66  # body height as a fraction of the frame height at depth 0
_GROUND_FRAC = 0.90  # ankle y as a fraction of the frame height at depth 0

# Face points on a head sphere: (x, y, z) in head radii, x to the person's left (image right
# when facing the camera), y down, z towards the camera.
_FACE_LOCAL: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, 0.30, 1.0),
    "left_eye_inner": (0.15, 0.0, 0.93),
    "left_eye": (0.32, 0.0, 0.88),
    "left_eye_outer": (0.48, 0.0, 0.80),
    "right_eye_inner": (-0.15, 0.0, 0.93),
    "right_eye": (-0.32, 0.0, 0.88),
    "right_eye_outer": (-0.48, 0.0, 0.80),
    "left_ear": (0.98, 0.10, 0.05),
    "right_ear": (-0.98, 0.10, 0.05),
    "mouth_left": (0.22, 0.62, 0.85),
    "mouth_right": (-0.22, 0.62, 0.85),
}


def _bump(t: float, start: float, end: float, ramp: float = 0.8) -> float:
    """A smooth 0..1 window over [start, end] on the looping timeline (cosine ramps)."""
    t = t % PERIOD
    best = 0.0
    for shift in (-PERIOD, 0.0, PERIOD):
        x = t + shift
        if start - ramp < x < end + ramp:
            if x < start:
                w = 0.5 - 0.5 * math.cos(math.pi * (x - start + ramp) / ramp)
            elif x > end:
                w = 0.5 - 0.5 * math.cos(math.pi * (end + ramp - x) / ramp)
            else:
                w = 1.0
            best = max(best, w)
    return best


def _dir(angle: float, side: float) -> np.ndarray:
    """Unit vector at `angle` from straight down, opening outwards on `side` (+1 left, -1 right)."""
    return np.array([side * math.sin(angle), math.cos(angle)])


def _angles(t: float) -> dict[str, float]:
    """The dance's degrees of freedom at time t (radians and body units)."""
    u = 2 * math.pi * (t % PERIOD) / PERIOD
    wave = _bump(t, 0.5, 4.5)  # alternating arm waves
    up = _bump(t, 5.5, 7.5)  # both arms up
    squat = _bump(t, 8.5, 11.0)  # knee bends
    step = _bump(t, 11.5, 14.0)  # side steps
    turn = _bump(t, 14.0, 16.5)  # torso turns
    gesture = _bump(t, 14.5, 19.5)  # at a desk: forearms up in front of the chest, talking with the hands
    depth = _bump(t, 20.5, 24.0)  # walk towards / away from the camera
    beat = 2 * math.pi * t / 1.25  # a move every 1.25 s (20 beats a loop)

    # Arms: shoulder angle from down (outwards) and elbow bend; always-on harmonics keep them alive.
    l_sh = 0.35 + 0.25 * math.sin(3 * u) + wave * (1.0 + 0.9 * math.sin(beat)) + up * 2.4
    r_sh = 0.35 + 0.25 * math.sin(4 * u + 1.0) + wave * (1.0 - 0.9 * math.sin(beat)) + up * 2.4
    l_el = 0.25 + wave * 0.6 * (0.5 + 0.5 * math.sin(2 * beat)) + squat * 1.2 + step * 0.5 * (0.5 + 0.5 * math.sin(beat))
    r_el = 0.25 + wave * 0.6 * (0.5 - 0.5 * math.sin(2 * beat)) + squat * 1.2 + step * 0.5 * (0.5 - 0.5 * math.sin(beat))
    l_sh += squat * 0.9 + step * 0.6 + turn * 0.5 * (1 + math.sin(beat))
    r_sh += squat * 0.9 + step * 0.6 + turn * 0.5 * (1 - math.sin(beat))
    up_wiggle = up * 0.25 * math.sin(2 * beat)
    l_sh, r_sh = min(l_sh + up_wiggle, 3.0), min(r_sh - up_wiggle, 3.0)
    l_el *= 1 - 0.8 * up
    r_el *= 1 - 0.8 * up

    # Gestures (during the torso turns too: people at a desk turn as they talk): the upper arms hang
    # near the body, each forearm sweeps from raised outwards (a wave) through straight up (pi) to
    # level across the chest, the two out of step.
    def gestured(shoulder: float, elbow: float, phase: float) -> tuple[float, float]:
        sh = 0.22 + 0.18 * math.sin(beat + phase)
        fore = 3.55 + 0.95 * math.sin(beat / 2 + 0.7 + 2 * phase)  # the forearm's angle from down
        return (1 - gesture) * shoulder + gesture * sh, (1 - gesture) * elbow + gesture * (fore - sh)

    l_sh, l_el = gestured(l_sh, l_el, 0.0)
    r_sh, r_el = gestured(r_sh, r_el, 1.0)

    knee = squat * 0.85 * (0.5 - 0.5 * math.cos(beat)) + 0.08 * (0.5 - 0.5 * math.cos(6 * u))
    knee += step * 0.15 * (0.5 - 0.5 * math.cos(2 * beat))
    stance = 0.07 + 0.02 * math.sin(5 * u) + squat * 0.05 + step * 0.08 * (0.5 - 0.5 * math.cos(beat))
    x = 0.08 * math.sin(2 * u) + step * 0.10 * math.sin(beat / 2) + 0.03 * math.sin(7 * u)
    yaw = 0.15 * math.sin(3 * u + 0.5) + turn * 0.75 * math.sin(beat / 2)
    lean = 0.06 * math.sin(5 * u) + step * 0.08 * math.sin(beat / 2)
    head_roll = 0.10 * math.sin(4 * u) + wave * 0.12 * math.sin(beat)
    z = 0.55 * math.sin(u) * (1 - depth) + depth * 0.9 * math.sin(2 * math.pi * (t - 20.5) / 3.5)
    return dict(l_sh=l_sh, r_sh=r_sh, l_el=l_el, r_el=r_el, knee=knee, stance=stance, x=x, yaw=yaw,
                lean=lean, head_roll=head_roll, z=z)


# A relaxed standing pose in the dance's degrees of freedom: arms down, feet a little apart.
NEUTRAL: dict[str, float] = dict(l_sh=0.22, r_sh=0.22, l_el=0.2, r_el=0.2, knee=0.0, stance=0.07, x=0.0, yaw=0.0,
                                 lean=0.0, head_roll=0.0, z=0.0)


def pose_at(t: float, frame_size: tuple[int, int] = (256, 192)) -> Pose:
    """The dance's pose at time `t` seconds (looping every PERIOD), in pixels of `frame_size` (h, w)."""
    pose = pose_from_angles(_angles(t), frame_size)
    pose.timestamp = float(t)
    return pose


def pose_from_angles(a: dict[str, float], frame_size: tuple[int, int]) -> Pose:
    """The skeleton posed by the degrees of freedom `a` (see `_angles`), in pixels of `frame_size`."""
    h, w = frame_size
    pts = np.zeros((sk.NUM_POINTS, 2))
    conf = np.zeros(sk.NUM_POINTS)
    idx = sk.INDEX
    cy = math.cos(a["yaw"])

    def put(name: str, p: np.ndarray, c: float = 0.99) -> None:
        pts[idx[name]] = p
        conf[idx[name]] = c

    # Legs: ankles on the ground, knees bend forward (foreshortened) and open outwards.
    hip_y = -(_THIGH + _SHIN) * math.cos(a["knee"])
    hip_c = np.array([a["x"], hip_y])
    hip_half = _HIP_HALF * (0.75 + 0.25 * abs(math.cos(a["yaw"] * 0.5)))
    for side, name in ((1.0, "left"), (-1.0, "right")):
        hip = hip_c + np.array([side * hip_half, 0.0])
        ankle = np.array([a["x"] + side * a["stance"], 0.0])
        knee = np.array([(hip[0] + ankle[0]) / 2 + side * 0.10 * math.sin(a["knee"]), -_SHIN * math.cos(a["knee"])])
        put(f"{name}_hip", hip)
        put(f"{name}_knee", knee)
        put(f"{name}_ankle", ankle)
        put(f"{name}_heel", ankle + np.array([-side * 0.005, 0.018]))
        put(f"{name}_foot_index", ankle + np.array([side * 0.03, 0.04]))

    # Torso: leans sideways about the hips and turns (shoulders foreshorten with yaw).
    up = np.array([math.sin(a["lean"]), -math.cos(a["lean"])])
    across = np.array([-up[1], up[0]])  # towards the person's left
    neck = hip_c + up * _TORSO
    for side, name in ((1.0, "left"), (-1.0, "right")):
        shoulder = neck + across * side * _SHOULDER_HALF * cy
        arm = a["l_sh"] if side > 0 else a["r_sh"]
        bend = a["l_el"] if side > 0 else a["r_el"]
        tilt = a["lean"]
        elbow = shoulder + _dir(arm - side * tilt, side) * _UPPER_ARM
        fore = _dir(arm + bend - side * tilt, side)
        wrist = elbow + fore * _FOREARM
        perp = np.array([-fore[1], fore[0]]) * side
        put(f"{name}_shoulder", shoulder)
        put(f"{name}_elbow", elbow)
        put(f"{name}_wrist", wrist)
        put(f"{name}_index", wrist + fore * _HAND)
        put(f"{name}_pinky", wrist + fore * _HAND * 0.8 + perp * 0.018)
        put(f"{name}_thumb", wrist + fore * _HAND * 0.5 - perp * 0.022)
        hand = sk.LEFT_HAND if side > 0 else sk.RIGHT_HAND
        pts[hand] = wrist  # hands are not tracked here: confidence stays 0

    # Head: a sphere above the neck, turned with the torso (a little more) and rolled.
    head = neck + up * _NECK + np.array([0.0, -0.01])
    head_yaw = a["yaw"] * 1.2
    cr, sr = math.cos(a["head_roll"] + a["lean"]), math.sin(a["head_roll"] + a["lean"])
    cyh, syh = math.cos(head_yaw), math.sin(head_yaw)
    for name, (lx, ly, lz) in _FACE_LOCAL.items():
        x3 = lx * cyh + lz * syh
        z3 = -lx * syh + lz * cyh
        px, py = x3 * cr - ly * sr, x3 * sr + ly * cr
        c = 0.99 if z3 > -0.3 else 0.6
        put(name, head + np.array([px, py]) * _HEAD_R, c)

    # Project: depth z > 0 is nearer the camera (bigger, feet lower in the frame).
    scale = _BODY_FRAC * h * (1.0 + 0.12 * a["z"])
    ground = h * (_GROUND_FRAC + 0.035 * a["z"])
    pts = pts * scale + np.array([w / 2, ground])
    pose = Pose(pts, conf, (h, w))
    pose.extras["yaw"] = head_yaw
    pose.extras["torso_yaw"] = a["yaw"]
    return pose
