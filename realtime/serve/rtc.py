"""The WebRTC side of the server: ICE settings, the generated video track, peers, offers.

One `PipelineTrack` reads the show's output slot and is fanned out to every peer through
`MediaRelay(buffered=False)`, so a slow viewer drops frames instead of delaying the others.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from fractions import Fraction

import aioice.ice
import av
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from dancenow.realtime.live.frame import LiveFrame
from dancenow.realtime.live.slot import LatestSlot
from dancenow.realtime.serve.http import HTTPProblem

VIDEO_CLOCK = 90_000
_original_host_addresses = aioice.ice.get_host_addresses


def configure_ice(loopback_only: bool, consent_interval: float, consent_failures: int) -> None:
    """Make aioice offer 127.0.0.1 and notice a vanished peer within a few seconds.

    aioice leaves loopback out of its host candidates, so on a machine with only `lo` (or for a
    browser on the same machine, bound to 127.0.0.1) there would be nothing to connect to. A
    server bound to loopback offers only loopback; one bound elsewhere offers loopback too.
    These are aioice module settings: they apply to the whole process.
    """

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        if loopback_only:
            return ["127.0.0.1"] if use_ipv4 else []
        found = _original_host_addresses(use_ipv4, use_ipv6)
        return [*found, "127.0.0.1"] if use_ipv4 and "127.0.0.1" not in found else found

    aioice.ice.get_host_addresses = host_addresses
    aioice.ice.CONSENT_INTERVAL = consent_interval
    aioice.ice.CONSENT_FAILURES = consent_failures


class PipelineTrack(MediaStreamTrack):
    """The show's newest output frames as a video track (one instance, relayed to all peers)."""

    kind = "video"

    def __init__(self, slot: LatestSlot[LiveFrame], keepalive: float = 1.0) -> None:
        super().__init__()
        self._slot = slot
        self._keepalive = keepalive
        self._after = 0
        self._start = time.monotonic()
        self._last_pts = -1
        self._last: av.VideoFrame | None = None
        self._last_sent = 0.0
        self.frames = 0
        self.idle = asyncio.Event()  # set while no recv() is waiting (the relay's reader has let go)
        self.idle.set()

    async def recv(self) -> av.VideoFrame:
        self.idle.clear()
        try:
            return await self._next()
        finally:
            self.idle.set()

    async def _next(self) -> av.VideoFrame:
        while True:
            if self.readyState != "live" or self._slot.closed:
                raise MediaStreamError
            got = await self._slot.aget(self._after, timeout=0.2)
            if got is not None:
                break
            if self._last is not None and time.monotonic() - self._last_sent > self._keepalive:
                return self._with_pts(self._last)  # nothing new: repeat so decoders stay alive
        self._after, live = got
        # convert once here rather than once per peer inside each encoder
        frame = av.VideoFrame.from_ndarray(live.image, format="rgb24").reformat(format="yuv420p")
        self._last = frame
        self.frames += 1
        return self._with_pts(frame)

    def _with_pts(self, frame: av.VideoFrame) -> av.VideoFrame:
        now = time.monotonic()
        pts = max(int((now - self._start) * VIDEO_CLOCK), self._last_pts + 1)
        self._last_pts, self._last_sent = pts, now
        frame.pts, frame.time_base = pts, Fraction(1, VIDEO_CLOCK)
        return frame


@dataclass
class Peer:
    id: str
    pc: RTCPeerConnection
    role: str  # "viewer" | "performer"
    created: float = field(default_factory=time.monotonic)
    tasks: list[asyncio.Task] = field(default_factory=list)


def vp8_first(kind: str = "video") -> list:
    """Codec preferences: VP8 (and its RTX) first, the rest as fallback (aiortc's H.264 costs ~5x)."""
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    vp8 = [c for c in codecs if c.mimeType.lower() == "video/vp8"]
    rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
    rest = [c for c in codecs if c not in vp8 and c not in rtx]
    return vp8 + rtx + rest


def check_offer(body: dict) -> str:
    """The SDP of a well-formed offer body, else HTTPProblem(400) saying what is expected."""
    sdp, typ = body.get("sdp"), body.get("type", "offer")
    if typ != "offer" or not isinstance(sdp, str):
        raise HTTPProblem(400, 'malformed offer: expected {"type": "offer", "sdp": "v=0..."}')
    if not sdp.startswith("v=0") or "\nm=video " not in sdp:
        raise HTTPProblem(400, "malformed offer: the SDP must start with v=0 and offer a video m-line")
    return sdp
