"""The one H.264 MP4 writer: `dancenow pose`, `run`, `demo` recordings and `transfer` all use it.

It writes under a temporary name and moves the file into place only when closed complete, so a
crash or Ctrl-C never leaves a broken video under the name the user asked for. Frames get
consecutive timestamps, or real ones (`t`, seconds) for live output whose rate varies. An audio
stream can be copied through from a source (`audio_template`); then the size must be given up
front, because every stream has to exist before the first packet is written.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dancenow.errors import DanceNowError


class VideoWriter:
    def __init__(self, path: str | Path, fps: float | Fraction = 30.0, size: tuple[int, int] | None = None,
                 metadata: dict | None = None, audio_template=None, live: bool = False) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise DanceNowError(f"folder {self.path.parent} does not exist: create it or choose another output")
        self.rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
        self.live = live  # low-latency encoder settings for live output
        self._tmp = self.path.with_name(f".{self.path.name}.part{self.path.suffix or '.mp4'}")
        self._c = av.open(str(self._tmp), "w", format="mp4" if self.path.suffix.lower() != ".mkv" else "matroska")
        self._c.metadata.update(metadata or {})
        self.audio = self._c.add_stream_from_template(audio_template) if audio_template is not None else None
        self._s = None
        self._last = -1
        self.frames = 0
        if size is not None:
            self._open_video(size)
        elif self.audio is not None:
            raise DanceNowError("VideoWriter: give the frame size when copying audio")

    def _open_video(self, size: tuple[int, int]) -> None:
        s = self._c.add_stream("libx264", rate=self.rate)
        s.height, s.width = size[0] // 2 * 2, size[1] // 2 * 2  # yuv420p wants even sides
        s.pix_fmt = "yuv420p"
        s.codec_context.time_base = 1 / self.rate
        s.options = {"preset": "veryfast", "tune": "zerolatency"} if self.live else {"crf": "20", "preset": "veryfast"}
        self._s = s

    def write(self, image: np.ndarray, t: float | None = None) -> None:
        """Append an RGB frame; `t` (seconds from the start) gives it its real time."""
        if self._s is None:
            self._open_video(image.shape[:2])
        pts = self._last + 1 if t is None else max(self._last + 1, int(round(t * float(self.rate))))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: self._s.height, : self._s.width]), format="rgb24")
        frame.pts, frame.time_base = pts, 1 / self.rate
        self._last = pts
        self._c.mux(self._s.encode(frame))
        self.frames += 1

    def mux_audio(self, packet) -> None:
        """Copy a packet of the source's audio stream (the one given as `audio_template`)."""
        if packet.dts is not None:
            packet.stream = self.audio
            self._c.mux(packet)

    def close(self) -> Path | None:
        """Finish the file and move it into place; None (and nothing left behind) when no frame came."""
        if self._s is not None:
            self._c.mux(self._s.encode(None))
        self._c.close()
        if not self.frames:
            self._tmp.unlink(missing_ok=True)
            return None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop what was written (an error or Ctrl-C midway)."""
        try:
            self._c.close()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
