"""The target's own stance: what it shows where the performer shows nothing.

A performer at a desk shows the head to the waist; a camera pointed at an empty room shows
nobody. The target's body is always whole, so what the camera does not see comes from the
target itself: its typical standing pose (`typical_stance`, the training pose nearest the
median of all full-body poses, fitted by `prepare` and kept in its pose statistics), or for a
bundle made before that, a neutral stance built from the statistics' height and floor.

`Stance.complete` fills the body points a pose lacks by walking down the leg chains from what
is visible (a hidden knee hangs from the shown hip by the stance's own thigh), with a weight per
point so that legs fade in and out instead of popping. `Stance.at(t)` is the stance breathing
slightly, for an empty room.
"""

from __future__ import annotations

import math

import numpy as np

from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.pose import Pose

_I = sk.INDEX
L_SH, R_SH = sk.LEFT_SHOULDER, sk.RIGHT_SHOULDER
L_HIP, R_HIP = sk.LEFT_HIP, sk.RIGHT_HIP

# Each completable point and the point it hangs from, parents first.
PARENT: dict[int, int] = {
    L_HIP: L_SH, R_HIP: R_SH,
    _I["left_knee"]: L_HIP, _I["right_knee"]: R_HIP,
    _I["left_ankle"]: _I["left_knee"], _I["right_ankle"]: _I["right_knee"],
    _I["left_heel"]: _I["left_ankle"], _I["right_heel"]: _I["right_ankle"],
    _I["left_foot_index"]: _I["left_ankle"], _I["right_foot_index"]: _I["right_ankle"],
}
HIPS = (L_HIP, R_HIP)
KNEES = (_I["left_knee"], _I["right_knee"])
ANKLES = sk.ANKLE_POINTS
FEET = (_I["left_heel"], _I["right_heel"], _I["left_foot_index"], _I["right_foot_index"])
SHOWN = 0.99  # confidence given to the stance's own points


def shoulder_centre(points: np.ndarray) -> np.ndarray:
    return (points[L_SH] + points[R_SH]) / 2


def hip_centre(points: np.ndarray) -> np.ndarray:
    return (points[L_HIP] + points[R_HIP]) / 2


def _full_body(pose: Pose, visibility: float) -> bool:
    vis = pose.visible(visibility)
    return bool(pose.detected and vis[list(sk.HEAD_POINTS)].any() and vis[[L_SH, R_SH, *HIPS, *KNEES, *ANKLES]].all())


def typical_stance(poses, visibility: float = 0.5) -> list[tuple[float, float]] | None:
    """The 33 body points of the most typical full-body pose of `poses` (in their frame's pixels):
    each pose is put in body units (hip centre at 0, divided by its height) and the one nearest
    the per-point median wins. A real frame, so it is a pose the generator has seen drawn."""
    picked = [p for p in poses if _full_body(p, visibility)]
    if not picked:
        return None
    body = np.stack([p.points[:sk.NUM_BODY] for p in picked]).astype(np.float64)
    heights = np.array([p.body_height(visibility) or 1.0 for p in picked])[:, None, None]
    units = (body - np.stack([hip_centre(b) for b in body])[:, None, :]) / np.maximum(heights, 1.0)
    median = np.median(units, axis=0)
    best = int(np.argmin(np.linalg.norm(units - median, axis=2).sum(axis=1)))
    return [(round(float(x), 2), round(float(y), 2)) for x, y in body[best]]


def neutral_stance(frame_size: tuple[int, int], height: float, ankle_y: float, x: float) -> Pose:
    """A relaxed standing pose (arms down, feet a little apart) whose body height is `height`,
    ankles at `ankle_y`, hips centred on `x`: for statistics that carry no typical stance."""
    from dancenow.realtime.pose.choreography import NEUTRAL, pose_from_angles

    pose = pose_from_angles(NEUTRAL, frame_size)
    pts = pose.points[:sk.NUM_BODY]
    own_h = float(pts[list(ANKLES), 1].mean() - pts[list(sk.HEAD_POINTS), 1].min())
    s = height / own_h
    offset = np.array([x, ankle_y]) - np.array([hip_centre(pts)[0], pts[list(ANKLES), 1].max()]) * s
    return pose.transformed(s, tuple(offset))


class Stance:
    """A target's standing pose in the target's frame, and what it lends a partial pose."""

    def __init__(self, pose: Pose) -> None:
        conf = np.zeros(sk.NUM_POINTS, np.float32)
        conf[:sk.NUM_BODY] = SHOWN
        self.pose = pose.copy(confidence=conf, detected=True, extras={})
        pts = self.pose.points
        self.torso = float(np.linalg.norm(shoulder_centre(pts) - hip_centre(pts)))
        self.shoulder_width = float(np.linalg.norm(pts[L_SH] - pts[R_SH]))
        self.ankle_y = float(pts[list(ANKLES), 1].max())

    @classmethod
    def of(cls, stats) -> Stance:
        """The stance recorded in `stats` (PoseStats), or a neutral one fitted to its numbers."""
        if stats.rest:
            pts = np.zeros((sk.NUM_POINTS, 2), np.float32)
            pts[:sk.NUM_BODY] = np.asarray(stats.rest, np.float32)
            return cls(Pose(pts, np.zeros(sk.NUM_POINTS), stats.frame_size))
        return cls(neutral_stance(stats.frame_size, stats.height_median, stats.ankle_median, stats.x_center))

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.pose.frame_size

    def at(self, t: float) -> Pose:
        """The stance at time `t` seconds, breathing: the chest and head rise a little every 4 s
        and the body sways slowly from the ankles, so an empty room does not show a statue."""
        pts = self.pose.points.copy()
        body = pts[:sk.NUM_BODY]
        floor = self.ankle_y
        h = max(floor - float(body[:, 1].min()), 1.0)
        breath = 0.004 * h * (0.5 - 0.5 * math.cos(2 * math.pi * t / 4.0))
        sway = 0.006 * h * math.sin(2 * math.pi * t / 9.0)
        lift = np.clip((floor - body[:, 1]) / h, 0.0, 1.0)  # 0 at the feet, 1 at the head
        upper = np.zeros(sk.NUM_BODY)
        upper[:sk.LEFT_HIP] = 1.0  # head, shoulders, arms
        body[:, 0] += sway * lift
        body[:, 1] -= breath * upper
        return self.pose.copy(points=pts, timestamp=t)

    def complete(self, pose: Pose, weights: np.ndarray) -> Pose:
        """`pose` with each completable point i moved towards the stance's, by `weights[i]` (0: the
        performer's, 1: the stance's hung from its parent as shown); a point the pose does not
        show at all is the stance's whatever its weight. Points outside `PARENT` are untouched."""
        if not pose.detected:
            return pose
        pts, conf = pose.points.copy(), pose.confidence.copy()
        ref = self.pose.points
        seen = pose.visible(sk.MIN_CONFIDENCE)
        for i, parent in PARENT.items():
            hung = pts[parent] + (ref[i] - ref[parent])
            w = 1.0 if not seen[i] else float(weights[i])
            if w > 0.0:
                pts[i] = hung if w >= 1.0 else (1 - w) * pts[i] + w * hung
                conf[i] = max(conf[i], SHOWN * w) if seen[i] else SHOWN
        return pose.copy(points=pts, confidence=conf)
