"""Real MediaPipe tracks of the ../shared/data clips, computed once per test session.

The tracker and filter tests share them (tracking is the expensive part). Windows of consecutive
frames keep video mode honest while keeping the suite fast; the street clip is tracked whole.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from dancenow.realtime.media.reader import iter_frames
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig

WINDOW = 60  # consecutive frames tracked per clip (the street clip: all of it)


@cache
def track(clip: Path, frames: int | None = WINDOW) -> tuple[Pose, ...]:
    with PoseTracker(TrackerConfig()) as tracker:
        return tuple(tracker.track(f.image, f.time) for f in iter_frames(clip, max_frames=frames))
