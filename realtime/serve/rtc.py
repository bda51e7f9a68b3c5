"""The WebRTC side of the server: ICE settings, peers, offers, and how a sender meets the shared
encoder (`encoder.py`: every peer gets the same VP8 packets, so every peer must speak VP8).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aioice.ice
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender
from aiortc.mediastreams import MediaStreamError

from dancenow.realtime.serve import hang
from dancenow.realtime.serve.encoder import PacketTrack
from dancenow.realtime.serve.http import HTTPProblem

log = logging.getLogger(__name__)

_original_host_addresses = aioice.ice.get_host_addresses


async def track_frames(track: MediaStreamTrack) -> AsyncIterator:
    """A received track's frames until it ends (aiortc ends a track by raising MediaStreamError)."""
    while True:
        try:
            yield await track.recv()
        except MediaStreamError:
            return


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


@dataclass
class Peer:
    id: str
    pc: RTCPeerConnection
    role: str  # "viewer" | "performer"
    track: PacketTrack | None = None  # its subscription to the shared encoder
    created: float = field(default_factory=time.monotonic)
    tasks: list[asyncio.Task] = field(default_factory=list)


async def close_peer(peer: Peer, timeout: float) -> None:
    """End a peer's tasks and its connection, and take its track off the shared encoder.

    aiortc's close awaits its senders' and receivers' tasks, and waits forever for one that ended
    otherwise than by cancellation: past `timeout` the peer is let go without it, and the warning
    says where the close was stuck (the guard put in while a CI hang was unexplained; that hang
    turned out to be the encoder's, see LatestSlot.aget)."""

    async def close() -> None:
        for t in peer.tasks:
            t.cancel()
        await peer.pc.close()
        await asyncio.gather(*peer.tasks, return_exceptions=True)

    closing = asyncio.ensure_future(close())
    try:  # asyncio.wait, not wait_for: it neither cancels the close nor, on 3.11, swallows our own cancel
        done, _ = await asyncio.wait({closing}, timeout=timeout)
        if not done:
            log.warning("%s %s: its WebRTC close took over %.0f s, stuck in %s; dropped without it", peer.role,
                        peer.id, timeout, hang.awaiting(closing.get_coro()))
            closing.cancel()
            await asyncio.wait({closing}, timeout=timeout)  # a cancel it may ignore: bounded too
    finally:
        if peer.track is not None:
            peer.track.stop()  # leaves the encoder (a sender that never started does not stop it)


def vp8_only() -> list:
    """Codec preferences: VP8 and its retransmission (RTX), nothing else: the shared encoder's
    packets are VP8, so a peer that cannot take VP8 cannot be served."""
    codecs = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in codecs if c.mimeType.lower() in ("video/vp8", "video/rtx")]


def send_packets(pc: RTCPeerConnection, track: PacketTrack, direction: str = "sendonly") -> RTCRtpSender:
    """Add `track` (VP8 packets from the shared encoder) to `pc`, VP8 only, with the peer's
    keyframe requests routed to the encoder.

    The transceiver must exist before the remote offer is applied, or the codec preference is
    ignored. aiortc handles PLI/FIR by flagging its own encoder, which a sender of ready packets
    does not use: `_send_keyframe` (what aiortc 1.16 calls on PLI/FIR) is pointed at the shared
    encoder instead."""
    transceiver = pc.addTransceiver(track, direction=direction)
    transceiver.setCodecPreferences(vp8_only())
    transceiver.sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]
    return transceiver.sender


def role_counts(peers: dict[str, Peer]) -> dict[str, int]:
    roles = [p.role for p in peers.values()]
    return {"viewers": roles.count("viewer"), "performers": roles.count("performer"), "peers": len(roles)}


def check_room(peers: dict[str, Peer], max_peers: int, role: str) -> None:
    """HTTPProblem unless a peer of `role` may join now: the cap, and one performer at a time."""
    if len(peers) >= max_peers:
        raise HTTPProblem(503, f"too many peers: this server takes at most {max_peers}; try again later",
                          headers={"Retry-After": "5"})
    if role == "performer" and any(p.role == "performer" for p in peers.values()):
        raise HTTPProblem(409, "someone is already performing: wait until they leave")


def check_offer(body: dict) -> str:
    """The SDP of a well-formed offer body, else HTTPProblem(400) saying what is expected."""
    sdp, typ = body.get("sdp"), body.get("type", "offer")
    if typ != "offer" or not isinstance(sdp, str):
        raise HTTPProblem(400, 'malformed offer: expected {"type": "offer", "sdp": "v=0..."}')
    if not sdp.startswith("v=0") or "\nm=video " not in sdp:
        raise HTTPProblem(400, "malformed offer: the SDP must start with v=0 and offer a video m-line")
    if "vp8/90000" not in sdp.lower():
        raise HTTPProblem(400, "the offer has no VP8: this server sends every viewer the same VP8 stream; "
                               "use a browser with VP8 (every current one has it)")
    return sdp
