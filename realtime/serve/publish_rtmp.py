"""RTMP publishing: the generated frames as H.264 + AAC silence in FLV, through PyAV, to any RTMP
ingest (Twitch, YouTube, nginx-rtmp, ...).

RTMP ingests want H.264, not the VP8 the viewers get, so this is a second encoder (libx264,
`veryfast`, zero latency, a keyframe every 2 s as the platforms ask) at a constant frame rate: a
ticker takes the newest output frame at each tick (repeating it when the pipeline is slower, so
the platform sees a steady stream). Platforms want an audio track too; it is silence.
Network writes block, so all of it runs in a thread of its own. A broken connection is reopened
with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from fractions import Fraction

import av
import numpy as np

from dancenow.realtime.live.frame import LiveFrame
from dancenow.realtime.live.slot import LatestSlot
from dancenow.realtime.serve.publish import Backoff, PublishState, redact

log = logging.getLogger(__name__)

AUDIO_RATE = 44_100
AUDIO_SAMPLES = 1024  # one AAC frame


class FrameSizeChanged(Exception):
    """The output's size changed (another target): the stream is reopened at the new size."""


class RtmpPublisher:
    """Publishes the newest frames of `slot` to `url` while it runs (`start()` / `stop()`)."""

    kind = "rtmp"

    def __init__(self, url: str, slot: LatestSlot[LiveFrame], bitrate: int = 2_000_000, fps: int = 30,
                 backoff: Backoff | None = None, timeout: float = 5.0) -> None:
        self.url = url
        self.slot = slot
        self.bitrate = bitrate
        self.fps = fps
        self.backoff = backoff or Backoff(0.5, 8.0)
        self.timeout = timeout
        self.state = PublishState("rtmp", redact(url))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dancenow-rtmp", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def status(self) -> dict:
        return self.state.to_dict()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 15.0)
        self.state.set("stopped")
        self.state.retry_in = None

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            image = self._wait_image()
            if image is None:
                continue
            self.state.attempts += 1
            self.state.retry_in = None
            try:
                self._session(image)
                continue  # stopped, or the size changed: reopen at once
            except FrameSizeChanged:
                log.info("RTMP: the output size changed: reopening the stream")
                continue
            except (av.FFmpegError, OSError, ValueError) as e:
                why = f"{type(e).__name__}: {e}"
                if self.state.last_error != why:
                    log.warning("RTMP publishing to %s: %s", self.state.url, why)
                self.state.set("retrying", why)
            delay = self.backoff.next()
            self.state.retry_in = delay
            self._stop.wait(delay)

    def _wait_image(self) -> np.ndarray | None:
        got = self.slot.get(0, timeout=0.5)
        return None if got is None else got[1].image

    def _session(self, first: np.ndarray) -> None:
        h, w = (first.shape[0] // 2 * 2, first.shape[1] // 2 * 2)  # H.264 4:2:0 needs even sizes
        self.state.set("connecting" if self.state.state != "retrying" else "retrying")
        out = av.open(self.url, "w", format="flv", timeout=self.timeout)
        try:
            video = out.add_stream("libx264", rate=self.fps)
            video.width, video.height, video.pix_fmt = w, h, "yuv420p"
            video.bit_rate = self.bitrate
            video.codec_context.gop_size = 2 * self.fps
            video.codec_context.max_b_frames = 0
            video.codec_context.thread_count = 1
            video.codec_context.options = {"preset": "veryfast", "tune": "zerolatency"}
            audio = out.add_stream("aac", rate=AUDIO_RATE)
            audio.layout = "stereo"
            audio.bit_rate = 64_000
            self._stream(out, video, audio, (h, w))
        finally:
            with contextlib.suppress(av.FFmpegError, OSError, ValueError):
                out.close()

    def _stream(self, out, video, audio, size: tuple[int, int]) -> None:
        silence = np.zeros((2, AUDIO_SAMPLES), np.float32)
        t0, tick, samples, seq, frame = time.monotonic(), 0, 0, -1, None
        went_live = False
        while not self._stop.is_set():
            wait = t0 + tick / self.fps - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
            elif wait < -1.0:  # writes stalled for a second: skip ahead instead of bursting
                tick = int((time.monotonic() - t0) * self.fps)
            now_seq, live = self.slot.peek()
            if live is not None and (now_seq != seq or frame is None):
                seq = now_seq
                if (live.image.shape[0] // 2 * 2, live.image.shape[1] // 2 * 2) != size:
                    raise FrameSizeChanged
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(live.image[:size[0], :size[1]]), format="rgb24")
            frame.pts, frame.time_base = tick, Fraction(1, self.fps)
            for packet in video.encode(frame):
                out.mux(packet)
            while samples <= (tick + 1) * AUDIO_RATE / self.fps:
                a = av.AudioFrame.from_ndarray(silence, format="fltp", layout="stereo")
                a.sample_rate, a.pts, a.time_base = AUDIO_RATE, samples, Fraction(1, AUDIO_RATE)
                for packet in audio.encode(a):
                    out.mux(packet)
                samples += AUDIO_SAMPLES
            tick += 1
            self.state.frames += 1
            if not went_live:
                went_live = True
                self.backoff.reset()
                self.state.set("live")
                log.info("publishing over RTMP to %s (%dx%d, %d fps)", self.state.url, size[1], size[0], self.fps)
