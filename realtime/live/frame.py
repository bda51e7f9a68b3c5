"""The record that leaves the live pipeline: one output frame and how it got there."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dancenow.realtime.pose.pose import Pose

# Stage stamps in pipeline order; each stage's duration is its stamp minus the previous one.
STAGES = ("capture", "pose_in", "track", "render", "gen_in", "generate", "face", "output")


@dataclass
class LiveFrame:
    """An output frame (RGB uint8, already laid out) with its capture sequence number and the
    time.monotonic() at which each stage finished (`STAGES`, from "capture" to "output")."""

    image: np.ndarray
    seq: int  # the source's frame number (gaps = frames dropped upstream)
    stamps: dict[str, float] = field(default_factory=dict)
    pose: Pose | None = None  # the performer's pose (in the performer's frame)
    label_map: np.ndarray | None = None  # what the generator saw
    drawn: Pose | None = None  # the pose drawn into the label map (target's frame)
    generated: np.ndarray | None = None  # the generator's frame before layout
    state: str = "live"  # "live" | "hold" | "rest" | "return": the performer-lost state

    @property
    def latency(self) -> float:
        """Capture to output, seconds."""
        return self.stamps.get("output", 0.0) - self.stamps.get("capture", 0.0)
