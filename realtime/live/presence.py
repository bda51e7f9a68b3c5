"""What the target does when the performer leaves and comes back.

Lost: hold the last pose for `hold_seconds`, then ease it over `ease_seconds` to a rest pose: the
target's own stance, breathing (`stance.py`), or for a target without one the running mean of the
poses shown so far. Nobody in view from the start: the rest pose at once, never a blank label map.
Back: blend from what was on screen to the live pose over `return_seconds`, so nothing jumps.
Poses here are already in the target's frame (after normalization).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dancenow.realtime.pose.placement import smoothstep
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.stance import Stance

LIVE, HOLD, REST, RETURN = "live", "hold", "rest", "return"


@dataclass
class PresenceConfig:
    hold_seconds: float = 0.5  # show the last pose unchanged this long
    ease_seconds: float = 1.0  # then move to the rest pose over this long
    return_seconds: float = 0.35  # a returning performer is blended in over this long
    mean_seconds: float = 5.0  # time constant of the running mean that is the rest pose
    min_confidence: float = 0.3


def blend(a: Pose, b: Pose, w: float, min_confidence: float = 0.3) -> Pose:
    """(1 - w) a + w b for points visible in both; a point visible in one only is taken from it."""
    va, vb = a.confidence >= min_confidence, b.confidence >= min_confidence
    both = (va & vb)[:, None]
    pts = np.where(both, (1 - w) * a.points + w * b.points, np.where(vb[:, None], b.points, a.points))
    conf = np.where(va & vb, np.maximum(a.confidence, b.confidence), np.where(vb, b.confidence, a.confidence))
    return b.copy(points=pts.astype(np.float32), confidence=conf.astype(np.float32), detected=True)


class Presence:
    """Turns a stream of target-frame poses (some missing) into the poses to draw, and a state."""

    def __init__(self, config: PresenceConfig | None = None, stance: Stance | None = None) -> None:
        self.config = config or PresenceConfig()
        self.stance = stance  # the target's own (set again on a target switch)
        self.reset()

    def reset(self) -> None:
        self.state = REST
        self._mean_pts: np.ndarray | None = None
        self._mean_conf: np.ndarray | None = None
        self._mean_size: tuple[int, int] | None = None
        self._last_live: Pose | None = None
        self._shown: Pose | None = None
        self._lost_at: float | None = None
        self._from: Pose | None = None
        self._return_at = 0.0
        self._last_t: float | None = None

    def rest_pose(self, t: float = 0.0) -> Pose | None:
        if self.stance is not None:
            return self.stance.at(t)
        if self._mean_pts is None or self._mean_size is None:
            return None
        return Pose(self._mean_pts.copy(), self._mean_conf.copy(), self._mean_size, detected=True)

    def _update_mean(self, pose: Pose, t: float) -> None:
        if self._mean_pts is None or self._mean_size != pose.frame_size:
            self._mean_pts, self._mean_conf = pose.points.astype(np.float64), pose.confidence.astype(np.float64)
            self._mean_size = pose.frame_size
            return
        dt = 1 / 30 if self._last_t is None else min(max(t - self._last_t, 0.0), 1.0)
        a = 1.0 - np.exp(-dt / self.config.mean_seconds)
        vis = pose.confidence >= self.config.min_confidence
        self._mean_pts[vis] += a * (pose.points[vis] - self._mean_pts[vis])
        self._mean_conf += a * (pose.confidence - self._mean_conf)

    def apply(self, pose: Pose, t: float) -> tuple[Pose, str]:
        """The pose to draw at time `t` (seconds) for the incoming `pose`, and the state."""
        c = self.config
        if pose.detected and not pose.extras.get("held"):
            self._update_mean(pose, t)
            if self.state in (HOLD, REST) and self._shown is not None:
                self.state, self._from, self._return_at = RETURN, self._shown, t
            shown = pose
            if self.state == RETURN and self._from is not None:
                w = smoothstep((t - self._return_at) / c.return_seconds)
                shown = blend(self._from, pose, w, c.min_confidence) if w < 1 else pose
                if w >= 1:
                    self.state = LIVE
            else:
                self.state = LIVE
            self._last_live, self._lost_at = pose, None
        else:
            if self._last_live is None:
                self._last_t = t
                self.state = REST
                rest = self.rest_pose(t)
                if rest is None:
                    return pose, REST
                self._shown = rest.copy(timestamp=pose.timestamp)  # a performer who appears glides in from it
                return self._shown, REST
            if self._lost_at is None:
                self._lost_at = t
                self._hold_from = self._shown if self._shown is not None else self._last_live
            lost_for = t - self._lost_at
            rest = self.rest_pose(t)
            if lost_for <= c.hold_seconds or rest is None:
                self.state, shown = HOLD, self._hold_from
            else:
                w = smoothstep((lost_for - c.hold_seconds) / c.ease_seconds)
                self.state, shown = REST, blend(self._hold_from, rest, w, c.min_confidence)
            shown = shown.copy(timestamp=pose.timestamp)
        self._shown, self._last_t = shown, t
        return shown, self.state
