"""Real aiortc clients of the server, for the soak benchmark and the hardening tests.

A `Viewer` posts a receive-only offer over HTTP like the viewer page does, counts the frames it
decodes and reads their pixel stamps (latency, frames it never got); a `Performer` also sends a
looping clip as its camera, like the performer page with a webcam. They run on whatever event loop
calls them (the server's own loop in tests, a loop of their own in the soak).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from fractions import Fraction
from pathlib import Path

import aiohttp
import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from dancenow.errors import DanceNowError
from dancenow.realtime.live import pixelstamp
from dancenow.realtime.media.reader import iter_frames, video_info
from dancenow.realtime.serve.rtc import track_frames

VIDEO_CLOCK = 90_000
COUNTER_MOD = 1 << pixelstamp.COUNTER_BITS


class Refused(DanceNowError):
    """The server answered the offer with an error status (cap reached, wrong token, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"offer refused with {status}: {message}")
        self.status = status


class ClipTrack(MediaStreamTrack):
    """A video file as a camera: its frames paced at the file's rate, looping, scaled to `width`.

    Decoded on the fly through the one reader (constant memory over hours); a late sender skips
    frames as a camera would instead of falling behind."""

    kind = "video"

    def __init__(self, path: str | Path, width: int = 480) -> None:
        super().__init__()
        self.path = Path(path)
        info = video_info(self.path)  # a clear error for what is not a video
        h, w = info.size
        self.size = (int(round(h * width / w / 2)) * 2, width // 2 * 2)
        self.fps = float(info.rate)
        self._frames = None
        self._t0: float | None = None
        self._n = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._n = max(self._n, int((now - self._t0) * self.fps))  # late: skip ahead
        await asyncio.sleep(max(0.0, self._t0 + self._n / self.fps - now))
        h, w = self.size
        frame = av.VideoFrame.from_ndarray(self._next_image(), format="rgb24").reformat(w, h, "yuv420p")
        frame.pts, frame.time_base = int(self._n * VIDEO_CLOCK / self.fps), Fraction(1, VIDEO_CLOCK)
        self._n += 1
        return frame

    def _next_image(self):
        for _ in range(2):
            if self._frames is None:
                self._frames = iter_frames(self.path, fast=True)
            with contextlib.suppress(StopIteration):
                return next(self._frames).image
            self._close_file()
        raise DanceNowError(f"{self.path} has no frames: give another clip")

    def _close_file(self) -> None:
        frames, self._frames = self._frames, None
        if frames is not None:
            frames.close()

    def stop(self) -> None:
        super().stop()
        self._close_file()


class Viewer:
    """A receive-only peer: `frames` decoded, `missed` (stamp counters it never saw), latencies."""

    path = "/api/offer"
    direction = "recvonly"

    def __init__(self, url: str, token: str | None = None, stamps: bool = True) -> None:
        self.url, self.token, self.stamps = url.rstrip("/"), token, stamps
        self.pc: RTCPeerConnection | None = None
        self.id: str | None = None
        self.frames = 0
        self.missed = 0
        self.latencies: deque[tuple[float, float]] = deque(maxlen=20_000)  # (monotonic s, ms); drained by readers
        self.last_frame = 0.0
        self._counter: int | None = None
        self._task: asyncio.Task | None = None

    def _track(self) -> MediaStreamTrack | str:
        return "video"

    async def connect(self, session: aiohttp.ClientSession) -> Viewer:
        """Offer (after gathering: aiortc does no trickle ICE), post it, apply the answer, receive."""
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver(self._track(), direction=self.direction)
        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with session.post(self.url + self.path, json={"sdp": pc.localDescription.sdp, "type": "offer"},
                                headers=headers) as r:
            body = await r.json(content_type=None)
        if r.status != 200:
            await self.close(bye=False)
            raise Refused(r.status, str(body.get("error")))
        self.id = body["id"]
        await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
        receiver = next(t.receiver for t in pc.getTransceivers() if t.kind == "video")
        self._task = asyncio.create_task(self._receive(receiver.track), name="dancenow-test-viewer")
        return self

    async def _receive(self, track: MediaStreamTrack) -> None:
        async for frame in track_frames(track):
            self.frames += 1
            self.last_frame = time.monotonic()
            if self.stamps:
                self._read_stamp(frame)

    def _read_stamp(self, frame: av.VideoFrame) -> None:
        stamp = pixelstamp.decode(frame.to_ndarray(format="rgb24"))
        if stamp is None:
            return
        counter, ms = stamp
        step = None if self._counter is None else (counter - self._counter) % COUNTER_MOD
        self._counter = counter
        if step == 0:
            return  # the server repeated its last frame (keep-alive): no new latency
        if step is not None and step < COUNTER_MOD // 2:
            self.missed += step - 1
        self.latencies.append((self.last_frame, float(pixelstamp.age_ms(ms, time.time() * 1000.0))))

    def take_latencies(self) -> list[float]:
        """The latencies (ms) seen since the last call."""
        out = [ms for _, ms in self.latencies]
        self.latencies.clear()
        return out

    async def wait_frames(self, n: int, timeout: float = 30.0) -> None:
        """Until `n` more frames arrived; TimeoutError naming how many came."""
        want, deadline = self.frames + n, time.monotonic() + timeout
        while self.frames < want:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.frames - want + n} of {n} frames within {timeout:.0f} s")
            await asyncio.sleep(0.02)

    async def bye(self, session: aiohttp.ClientSession) -> None:
        """What the page's pagehide beacon does: tell the server this peer is gone."""
        if self.id is not None:
            async with session.post(self.url + "/api/bye", data=f'{{"id": "{self.id}"}}',
                                    headers={"Content-Type": "text/plain"}) as r:
                await r.read()

    def vanish(self) -> None:
        """Go silent without a word (a killed tab, a pulled cable): close this peer's UDP sockets
        behind aiortc's back; the server must notice through ICE consent checks."""
        for t in self.pc.getTransceivers() if self.pc else []:
            transport = t.receiver.transport
            if transport is not None:
                for proto in transport.transport._connection._protocols:
                    proto.transport.close()

    async def close(self, bye: bool = True, session: aiohttp.ClientSession | None = None) -> None:
        if bye and session is not None:
            with contextlib.suppress(aiohttp.ClientError):
                await self.bye(session)
        if self.pc is not None:
            await self.pc.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Performer(Viewer):
    """A peer that sends a looping clip as its camera (needs the token) and receives the result."""

    path = "/api/perform"
    direction = "sendrecv"

    def __init__(self, url: str, token: str, clip: str | Path, width: int = 480, stamps: bool = True) -> None:
        super().__init__(url, token, stamps)
        self.camera = ClipTrack(clip, width)

    def _track(self) -> MediaStreamTrack:
        return self.camera

    async def close(self, bye: bool = True, session: aiohttp.ClientSession | None = None) -> None:
        await super().close(bye, session)
        self.camera.stop()
