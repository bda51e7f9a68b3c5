"""One VP8 encoder for the generated stream; every viewer and every WHIP session get its packets.

aiortc encodes once per peer connection (five 640x480 viewers saturate two cores). Here the show's
output is encoded once, and each subscriber is a `PacketTrack` that hands the same `av.Packet`s to
its RTCRtpSender, which packs them into RTP without encoding again. What that gives up: aiortc's
per-viewer bitrate adaptation (REMB). The bitrate is fixed (`bitrate`), the same for everyone.

A subscriber that joins, reports loss (PLI/FIR) or falls behind needs a keyframe: it asks, the
next frame is forced to be one (at most one forced keyframe per `min_keyframe_interval`, so a
lossy viewer cannot turn the whole stream into keyframes), and meanwhile it skips delta frames it
could not decode. The others keep receiving without a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from dancenow.errors import DanceNowError
from dancenow.realtime.live.frame import LiveFrame
from dancenow.realtime.live.slot import LatestSlot

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
TIME_BASE = Fraction(1, VIDEO_CLOCK)
DEFAULT_BITRATE = 1_000_000  # bits/s: ample for the 256-px targets, keeps the pixel stamp readable
MIN_BITRATE, MAX_BITRATE = 100_000, 20_000_000


def parse_bitrate(text: str) -> int:
    """'1500k', '2M' or '800000' (bits/s) to bits/s; a clear error otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*", str(text))
    if m is None:
        raise DanceNowError(f"--bitrate {text!r}: give bits per second like 1500k or 2M")
    bps = int(float(m.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[m.group(2).lower()])
    if not MIN_BITRATE <= bps <= MAX_BITRATE:
        raise DanceNowError(f"--bitrate {text!r} is out of range: give 100k to 20M")
    return bps


class PacketTrack(MediaStreamTrack):
    """One subscriber's view of the encoded stream: `recv()` returns `av.Packet`s (VP8).

    It holds at most `depth` packets; when its sender falls further behind, it drops them all and
    waits for the next keyframe (asking for one), so a stalled peer never delays the encoder."""

    kind = "video"

    def __init__(self, stream: EncodedStream, name: str, depth: int = 10) -> None:
        super().__init__()
        self.name = name
        self._stream = stream
        self._queue: deque[av.Packet] = deque()
        self._depth = depth
        self._ready = asyncio.Event()
        self._need_keyframe = True
        self._receiving = False  # its sender has started pulling (the peer connected)
        self.sent = 0
        self.skipped = 0  # packets dropped (behind, or waiting for a keyframe)

    def offer(self, packet: av.Packet) -> None:
        """Called by the stream for every encoded frame (on the event loop)."""
        if self._need_keyframe and not packet.is_keyframe:
            self.skipped += 1
            return
        if len(self._queue) >= self._depth:
            self.skipped += len(self._queue) + 1
            self._queue.clear()
            self._need_keyframe = True
            if self._receiving:  # not yet pulling (still connecting): ask when it starts
                self._stream.request_keyframe(f"{self.name} fell behind")
            return
        self._need_keyframe = False
        self._queue.append(packet)
        self._ready.set()

    def request_keyframe(self) -> None:
        """A PLI or FIR from this subscriber's peer."""
        self._stream.request_keyframe(f"{self.name} asked (PLI/FIR)")

    async def recv(self) -> av.Packet:
        if not self._receiving:
            self._receiving = True
            if self._need_keyframe:
                self._stream.request_keyframe(f"{self.name} started")
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        self.sent += 1
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._stream.unsubscribe(self)
        self._ready.set()  # a waiting recv() sees the end


class EncodedStream:
    """Reads the show's output slot, encodes each new frame once, fans the packet out.

    `start()` runs it as a task on the current loop; `stop()` ends it and every subscriber. A frame
    is repeated after `keepalive` s without a new one, so decoders and SFUs see a live stream."""

    def __init__(self, slot: LatestSlot[LiveFrame], bitrate: int = DEFAULT_BITRATE, keepalive: float = 1.0,
                 min_keyframe_interval: float = 0.5, keyframe_interval: float = 10.0) -> None:
        self.slot = slot
        self.bitrate = bitrate
        self.keepalive = keepalive
        self.min_keyframe_interval = min_keyframe_interval
        self.keyframe_interval = keyframe_interval  # an unasked keyframe this often (late joiners of an SFU)
        self.subscribers: set[PacketTrack] = set()
        self.frames = 0
        self.keyframes = 0
        self.keyframe_requests = 0
        self.bytes = 0
        self.encode_ms = 0.0  # mean over the last frames (exponential)
        self._codec: av.CodecContext | None = None
        self._want_keyframe = False
        self._last_keyframe = -1e9
        self._start = time.monotonic()
        self._last_pts = -1
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="dancenow-vp8")

    # --- subscribers -----------------------------------------------------------------------

    def subscribe(self, name: str) -> PacketTrack:
        """A new track for one peer; it starts at the next keyframe, which it asks for."""
        track = PacketTrack(self, name)
        self.subscribers.add(track)
        self.request_keyframe(f"{name} joined")
        return track

    def unsubscribe(self, track: PacketTrack) -> None:
        self.subscribers.discard(track)

    def request_keyframe(self, why: str = "") -> None:
        """Make a coming frame a keyframe: the next one, or the first after the rate limit."""
        self.keyframe_requests += 1
        if not self._want_keyframe:
            log.debug("keyframe requested: %s", why)
        self._want_keyframe = True

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="dancenow-encoder")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """End the encoder task and every subscriber's track (their senders finish)."""
        for track in list(self.subscribers):
            track.stop()
        self._stopping = True  # and the loop ends at its next turn even if a cancel were lost
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._pool.shutdown(wait=False)  # a frame being encoded finishes on its own; nothing reads it

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        after, image, sent = 0, None, 0.0
        while not self.slot.closed and not self._stopping:
            got = await self.slot.aget(after, timeout=0.2)
            if got is not None:
                after, live = got
                image = live.image
            elif image is None or time.monotonic() - sent < self.keepalive:
                continue  # nothing new: repeat the last frame only after `keepalive`
            sent = time.monotonic()
            try:
                packets = await loop.run_in_executor(self._pool, self._encode, image)
            except Exception as e:  # noqa: BLE001 (a broken frame must not end every viewer's stream)
                log.warning("VP8 encoding failed (%s: %s): skipping the frame, reopening the encoder",
                            type(e).__name__, e)
                self._codec = None
                continue
            for packet in packets:
                for track in list(self.subscribers):
                    track.offer(packet)

    def _encode(self, image) -> list[av.Packet]:
        t0 = time.perf_counter()
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        if self._codec is None or (self._codec.width, self._codec.height) != (frame.width, frame.height):
            self._codec = self._open(frame.width, frame.height)
            self._want_keyframe = True
        now = time.monotonic()
        due = now - self._last_keyframe >= self.keyframe_interval
        if due or (self._want_keyframe and now - self._last_keyframe >= self.min_keyframe_interval):
            frame.pict_type = av.video.frame.PictureType.I
        frame.pts = max(int((now - self._start) * VIDEO_CLOCK), self._last_pts + 1)
        frame.time_base = TIME_BASE
        self._last_pts = frame.pts
        packets = list(self._codec.encode(frame))
        for p in packets:
            p.time_base = TIME_BASE
            self.bytes += p.size
            if p.is_keyframe:
                self.keyframes += 1
                self._last_keyframe, self._want_keyframe = now, False
        self.frames += 1
        self.encode_ms = 0.9 * self.encode_ms + 0.1 * (time.perf_counter() - t0) * 1000.0
        return packets

    def _open(self, width: int, height: int) -> av.CodecContext:
        """libvpx in real-time CBR mode, as aiortc sets it up for WebRTC (no lag, one partition)."""
        codec = av.CodecContext.create("libvpx", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.time_base = TIME_BASE
        codec.bit_rate = self.bitrate
        codec.gop_size = 100_000  # keyframes when asked (and every `keyframe_interval`), not by count
        codec.qmin, codec.qmax = 2, 56
        codec.thread_count = 1 if width * height <= 640 * 480 else 2
        codec.options = {
            "deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0",
            "minrate": str(self.bitrate), "maxrate": str(self.bitrate), "bufsize": str(self.bitrate),
            "overshoot-pct": "15", "undershoot-pct": "100", "noise-sensitivity": "4",
            "partitions": "0", "static-thresh": "1",
        }
        log.info("VP8 encoder: %dx%d at %d kbit/s, shared by every viewer", width, height, self.bitrate // 1000)
        return codec

    def status(self) -> dict:
        elapsed = max(time.monotonic() - self._start, 1e-6)
        return {"codec": "VP8", "bitrate_kbps": self.bitrate // 1000, "sent_kbps": round(self.bytes * 8 / elapsed / 1000, 1),
                "frames": self.frames, "keyframes": self.keyframes, "keyframe_requests": self.keyframe_requests,
                "encode_ms": round(self.encode_ms, 2), "subscribers": len(self.subscribers)}
