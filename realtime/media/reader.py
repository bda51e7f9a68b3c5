"""The one video file reader: PyAV, each frame's time from its pts.

Preparation, `dancenow pose`, offline transfer, the live file source and the benchmarks all read
files here, so the One Euro filter and MediaPipe's video mode see the same timestamps everywhere,
also on a variable-frame-rate phone video (where index / rate would drift from the real times).
Cameras are OpenCV's job (`realtime/live/sources.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dancenow.errors import DanceNowError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What a file says about its video stream before decoding it."""

    path: Path
    frames: int  # 0 when the container does not say
    rate: Fraction  # average frame rate (a nominal one for variable-rate files)
    size: tuple[int, int]  # (height, width)
    has_audio: bool


@dataclass(frozen=True)
class DecodedFrame:
    image: np.ndarray  # RGB uint8 H x W x 3
    time: float  # seconds from the first frame, from the pts
    index: int  # decode order, from 0


def open_video(path: str | Path) -> av.container.InputContainer:
    """An opened video file with a video stream, or a one-line DanceNowError saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise DanceNowError(f"{path}: no such file: give the path of a video file")
    if path.stat().st_size == 0:
        raise DanceNowError(f"{path} is empty: give a video file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise DanceNowError(f"{path} is not a video ({type(e).__name__}): give an .mp4/.mov/.avi/.webm file") from None
    if not container.streams.video:
        container.close()
        raise DanceNowError(f"{path} has no video stream: give a video file")
    return container


def video_rate(stream: av.video.stream.VideoStream) -> Fraction:
    return Fraction(stream.average_rate or stream.guessed_rate or 30)


def video_info(path: str | Path) -> VideoInfo:
    with open_video(path) as c:
        s = c.streams.video[0]
        return VideoInfo(Path(path), int(s.frames or 0), video_rate(s), (int(s.codec_context.height),
                         int(s.codec_context.width)), bool(c.streams.audio))


class FrameClock:
    """Seconds from the first frame, from each frame's pts; index / rate where a frame has none."""

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self.base = stream.time_base
        self.rate = video_rate(stream)
        self.first: int | None = None
        self.last = -1.0

    def __call__(self, frame: av.VideoFrame, index: int) -> float:
        if frame.pts is None or self.base is None:
            t = index / float(self.rate)
        else:
            if self.first is None:
                self.first = frame.pts
            t = float((frame.pts - self.first) * self.base)
        # decoders may hand out equal or (after an edit list) earlier pts: time never goes back
        t = max(t, self.last + 1e-6) if self.last >= 0 else max(t, 0.0)
        self.last = t
        return t


def to_rgb(frame: av.VideoFrame, fast: bool = False) -> np.ndarray:
    """The frame as RGB uint8. `fast`: 4:2:0 frames that are not marked BT.709 go through OpenCV's
    YUV converter (0.3 ms against swscale's 1.5 ms at 640x1024, within a few levels of it) -- for
    a performer's video, whose colours only reach the tracker and the side panel; a target's
    frames keep swscale's exact conversion."""
    if fast and frame.format.name == "yuv420p" and not frame.width % 2 and not frame.height % 2 \
            and frame.colorspace != 1:  # 1 = BT.709: OpenCV converts BT.601 only
        import cv2

        return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def iter_frames(path: str | Path, max_frames: int | None = None, strict: bool = False,
                fast: bool = False) -> Iterator[DecodedFrame]:
    """Every frame of a video file as RGB with its pts time (`fast`: see `to_rgb`).

    A file damaged part-way ends with a warning (`strict`: raises, for preparation, where a
    silently shortened clip would train on less than the user gave); one that yields nothing
    raises either way.
    """
    with open_video(path) as container:
        stream = container.streams.video[0]
        clock = FrameClock(stream)
        n = 0
        try:
            for frame in container.decode(stream):
                if max_frames is not None and n >= max_frames:
                    break
                yield DecodedFrame(to_rgb(frame, fast), clock(frame, n), n)
                n += 1
        except av.error.FFmpegError as e:
            if not n or strict:
                raise DanceNowError(f"{path} is damaged after {n} frames ({type(e).__name__}): "
                                    "re-encode or replace the video") from None
            log.warning("%s: decoding stopped after %d frames (%s)", path, n, e)
        if not n:
            raise DanceNowError(f"{path} has no frames: give a video with at least one frame")
