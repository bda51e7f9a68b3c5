"""The per-frame pose record that flows from the tracker to the renderer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from dancenow.realtime.pose.skeleton import ANKLE_POINTS, HEAD_POINTS, NUM_BODY_HANDS, NUM_POINTS


@dataclass
class Pose:
    """Keypoints of one person in one frame.

    `points` are (x, y) pixels of the frame they came from, whose size is `frame_size`
    (height, width). A frame with no person is a Pose with `detected=False`, never an exception.
    """

    points: np.ndarray  # (K, 2) float32, pixels
    confidence: np.ndarray  # (K,) float32 in [0, 1]
    frame_size: tuple[int, int]  # (height, width)
    timestamp: float = 0.0
    detected: bool = True
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float32)
        confidence = np.asarray(self.confidence, dtype=np.float32)
        if points.size == 2 * NUM_BODY_HANDS and confidence.size == NUM_BODY_HANDS:
            # a track saved before the face mesh joined the layout: its face mesh is untracked
            points = np.concatenate([points.reshape(-1, 2), np.zeros((NUM_POINTS - NUM_BODY_HANDS, 2), np.float32)])
            confidence = np.concatenate([confidence.ravel(), np.zeros(NUM_POINTS - NUM_BODY_HANDS, np.float32)])
        self.points = points.reshape(NUM_POINTS, 2)
        self.confidence = confidence.reshape(NUM_POINTS)
        self.frame_size = (int(self.frame_size[0]), int(self.frame_size[1]))

    @classmethod
    def missing(cls, frame_size: tuple[int, int], timestamp: float = 0.0) -> Pose:
        return cls(np.zeros((NUM_POINTS, 2)), np.zeros(NUM_POINTS), frame_size, timestamp, detected=False)

    def copy(self, **changes) -> Pose:
        fields = dict(
            points=self.points.copy(), confidence=self.confidence.copy(), frame_size=self.frame_size,
            timestamp=self.timestamp, detected=self.detected, extras=dict(self.extras),
        )
        fields.update(changes)
        return Pose(**fields)

    def transformed(self, scale: float | tuple[float, float], offset: tuple[float, float],
                    frame_size: tuple[int, int] | None = None) -> Pose:
        """Points mapped by p * scale + offset, into a frame of `frame_size` (default: same)."""
        s = np.broadcast_to(np.asarray(scale, dtype=np.float32), (2,))
        pts = self.points * s + np.asarray(offset, dtype=np.float32)
        return self.copy(points=pts, frame_size=frame_size or self.frame_size)

    def resized(self, frame_size: tuple[int, int]) -> Pose:
        """The same pose in a frame resized (stretched) to `frame_size`."""
        h, w = self.frame_size
        return self.transformed((frame_size[1] / w, frame_size[0] / h), (0.0, 0.0), frame_size)

    def visible(self, threshold: float = 0.3) -> np.ndarray:
        """Points at or above `threshold`; never an untracked one (confidence 0, at (0, 0)), so that
        `bbox(0.0)` is the extent of every tracked point, not stretched to the frame's corner."""
        return self.detected & (self.confidence >= threshold) & (self.confidence > 0)

    def bbox(self, threshold: float = 0.3) -> tuple[float, float, float, float] | None:
        """(x0, y0, x1, y1) of the visible body and hand points, or None. The face mesh is left
        out: it lies on the head, and crops, metrics and the tracker's guard stay as they were."""
        vis = self.visible(threshold)[:NUM_BODY_HANDS]
        if not vis.any():
            return None
        p = self.points[:NUM_BODY_HANDS][vis]
        return float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())

    def body_height(self, threshold: float = 0.3) -> float | None:
        """Head (highest face point) to the mean of the ankles, in pixels; None if not visible."""
        vis = self.visible(threshold)
        head = [i for i in HEAD_POINTS if vis[i]]
        ankles = [i for i in ANKLE_POINTS if vis[i]]
        if not head or not ankles:
            return None
        return float(self.points[ankles, 1].mean() - self.points[head, 1].min())

    def to_dict(self) -> dict:
        return {
            "points": np.round(self.points, 3).tolist(), "confidence": np.round(self.confidence, 4).tolist(),
            "frame_size": list(self.frame_size), "timestamp": self.timestamp, "detected": self.detected,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Pose:
        return cls(np.array(d["points"]), np.array(d["confidence"]), tuple(d["frame_size"]),
                   float(d["timestamp"]), bool(d["detected"]))


def save_track(poses: list[Pose], path) -> None:
    """A pose track as JSON lines (one pose a line)."""
    with open(path, "w") as f:
        for p in poses:
            f.write(json.dumps(p.to_dict()) + "\n")


def load_track(path) -> list[Pose]:
    with open(path) as f:
        return [Pose.from_dict(json.loads(line)) for line in f if line.strip()]
