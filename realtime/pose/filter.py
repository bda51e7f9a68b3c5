"""A causal One Euro filter on every keypoint coordinate, and the hold-then-reset of lost poses.

The One Euro filter (Casiez, Roussel, Vogel, CHI 2012) is a low-pass filter whose cutoff rises
with speed: still joints are smoothed hard (no jitter in the label map, which the generator would
turn into flicker), fast ones lightly (little lag). It only looks at the past, so the live loop and
training data preparation can use the very same filter.

Coordinates are filtered in units of the frame height, so the parameters mean the same thing at
any camera resolution. All 75 x 2 coordinates are filtered at once with numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dancenow.realtime.pose.pose import Pose


@dataclass
class OneEuroConfig:
    """One Euro parameters (units: frame heights and seconds) and the lost-pose hold."""

    # Tuned on MediaPipe tracks (its own smoothing off) of the eight ../shared/data clips: jitter
    # cut 50-75%, lag 0.2-0.7 frames (see tests/test_filter.py).
    min_cutoff: float = 1.5  # Hz: cutoff at rest; lower = smoother still poses, more lag
    beta: float = 2.0  # cutoff growth per (frame height / s) of speed; higher = less lag when moving
    d_cutoff: float = 1.0  # Hz: cutoff of the speed estimate
    hold_seconds: float = 0.3  # keep showing the last pose this long after a missed detection
    min_confidence: float = 0.3  # a point below this restarts its filter when it comes back
    default_dt: float = 1 / 30  # used when timestamps do not advance


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuro:
    """The bare vectorised filter: arrays in, arrays out, for any fixed shape."""

    def __init__(self, config: OneEuroConfig) -> None:
        self.config = config
        self.x: np.ndarray | None = None  # filtered value
        self.dx: np.ndarray | None = None  # filtered derivative

    def __call__(self, x: np.ndarray, dt: float, restart: np.ndarray | None = None) -> np.ndarray:
        """Filtered `x`; entries where `restart` is True start afresh from their raw value."""
        x = np.asarray(x, dtype=np.float64)
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return self.x.copy()
        c = self.config
        dx = (x - self.x) / dt
        self.dx = self.dx + _alpha(c.d_cutoff, dt) * (dx - self.dx)
        cutoff = c.min_cutoff + c.beta * np.abs(self.dx)
        self.x = self.x + _alpha(cutoff, dt) * (x - self.x)
        if restart is not None and restart.any():
            self.x[restart] = x[restart]
            self.dx[restart] = 0.0
        return self.x.copy()

    def reset(self) -> None:
        self.x = self.dx = None


class PoseFilter:
    """Smooths a pose track causally; holds the last pose briefly when a detection is missed.

    `apply` returns the filtered pose. After a miss it returns the last filtered pose (marked
    `extras["held"] = True`) for `hold_seconds`, then a missing pose, and the filter restarts
    with the next detection (a returning performer does not glide in from where they left).
    """

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self._filter = OneEuro(self.config)
        self._last: Pose | None = None  # last filtered pose
        self._last_seen: float | None = None  # timestamp of the last detection
        self._valid: np.ndarray | None = None

    def apply(self, pose: Pose) -> Pose:
        c = self.config
        if not pose.detected:
            if self._last is not None and self._last_seen is not None \
                    and pose.timestamp - self._last_seen <= c.hold_seconds:
                held = self._last.copy(timestamp=pose.timestamp)
                held.extras["held"] = True
                return held
            self.reset()
            return pose
        if self._last is not None and pose.frame_size != self._last.frame_size:
            self.reset()  # a new camera or resolution: old pixels mean nothing
        h = float(pose.frame_size[0])
        dt = c.default_dt
        if self._last_seen is not None and pose.timestamp > self._last_seen:
            dt = pose.timestamp - self._last_seen
        valid = pose.confidence >= c.min_confidence
        restart = None
        if self._valid is not None:
            restart = np.repeat((valid & ~self._valid)[:, None], 2, axis=1)
        smoothed = self._filter(pose.points / h, dt, restart) * h
        self._valid = valid
        self._last_seen = pose.timestamp
        self._last = pose.copy(points=smoothed.astype(np.float32))
        return self._last.copy()

    def reset(self) -> None:
        self._filter.reset()
        self._last = self._last_seen = self._valid = None


# --- measures used to tune and test the filter --------------------------------------------------

def jitter(points: np.ndarray) -> float:
    """Mean absolute second difference of a track of points (T, K, 2): frame-to-frame shake."""
    return float(np.abs(np.diff(np.asarray(points, np.float64), n=2, axis=0)).mean())


def lag_frames(raw: np.ndarray, filtered: np.ndarray, max_lag: int = 8) -> float:
    """How many frames `filtered` trails `raw`, by cross-correlating their velocities.

    Velocities (first differences) rather than positions, so the slow drift of a body across the
    frame does not flatten the correlation peak; the peak is refined to a fraction of a frame.
    """
    a = np.diff(np.asarray(raw, np.float64), axis=0).reshape(len(raw) - 1, -1)
    b = np.diff(np.asarray(filtered, np.float64), axis=0).reshape(len(filtered) - 1, -1)
    a, b = a - a.mean(0), b - b.mean(0)
    n = len(a)
    lags = np.arange(-max_lag, max_lag + 1)
    corr = np.array([(a[: n - k] * b[k:]).sum() if k >= 0 else (a[-k:] * b[: n + k]).sum() for k in lags])
    i = int(np.argmax(corr))
    if 0 < i < len(lags) - 1:
        y0, y1, y2 = corr[i - 1], corr[i], corr[i + 1]
        denom = y0 - 2 * y1 + y2
        return float(lags[i] + (0.5 * (y0 - y2) / denom if denom else 0.0))
    return float(lags[i])
