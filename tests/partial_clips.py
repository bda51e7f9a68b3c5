"""Performer clips made at test time from the shared footage: as a webcam at a desk sees them, and
as Chromium's fake camera plays them (Y4M).

A desk performer shows the head to the waist (or to the knees); a performer who steps back
comes into full view. These helpers crop or occlude a full-body clip by fractions of the frame's
height (dancer A: shoulders at 0.31, hips at 0.53, knees at 0.72, ankles at 0.88 of the height,
measured with MediaPipe on every tenth frame), so the tests need no stored footage of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dancenow.realtime.bench.desk import crop_band as cropped  # noqa: F401  (a camera that sees only a band)
from dancenow.realtime.media.reader import iter_frames, video_info
from dancenow.realtime.media.writer import VideoWriter

DESK = (96, 82, 70)  # the colour of what hides the legs in an occluded clip


def occluded(clip: Path, out: Path, bottom: Callable[[float], float], frames: int | None = None) -> Path:
    """Every frame with everything below `bottom(t)` (a fraction of the height, t in seconds)
    painted the desk's colour: a performer behind a desk, or stepping out from behind it."""
    info = video_info(clip)
    with VideoWriter(out, info.rate, info.size) as writer:
        for f in iter_frames(clip, max_frames=frames):
            image = f.image.copy()
            image[int(bottom(f.time) * image.shape[0]):] = DESK
            writer.write(image)
    return out


def empty_room(out: Path, seconds: float = 4.0, fps: int = 24, size: tuple[int, int] = (480, 640)) -> Path:
    """A test pattern (colour bars and a moving bar): a camera that sees nobody."""
    h, w = size
    bars = np.zeros((h, w, 3), np.uint8)
    colours = [(192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192)]
    for i, c in enumerate(colours):
        bars[:, i * w // len(colours):(i + 1) * w // len(colours)] = c
    with VideoWriter(out, fps, size) as writer:
        for i in range(int(seconds * fps)):
            image = bars.copy()
            y = (i * 7) % h
            image[y:y + 12] = 255
            writer.write(image)
    return out


def make_y4m(clip: Path, out: Path, fps: int = 15, width: int = 320, seconds: float = 10.0) -> Path:
    """A Y4M camera file (C420, whole-number fps) from a real clip; Chromium loops it."""
    with av.open(str(clip)) as src:
        vs = src.streams.video[0]
        height = round(vs.height * width / vs.width / 2) * 2
        with av.open(str(out), "w", format="yuv4mpegpipe") as dst:
            st = dst.add_stream("wrapped_avframe", rate=fps)
            st.width, st.height, st.pix_fmt = width, height, "yuv420p"
            for i, frame in enumerate(src.decode(vs)):
                if i >= seconds * fps:
                    break
                f = frame.reformat(width, height, "yuv420p")
                f.pts, f.time_base = i, Fraction(1, fps)
                for packet in st.encode(f):
                    dst.mux(packet)
            for packet in st.encode(None):
                dst.mux(packet)
    return out
