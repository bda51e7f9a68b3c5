"""Encode once: one real libvpx encoder fed through a real LatestSlot, its packets shared by every
subscriber; keyframes for joiners, PLI and late subscribers (rate-limited); the server's viewers
over real loopback WebRTC get the shared packets and a real PLI reaches the encoder."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dancenow.errors import DanceNowError
from dancenow.realtime.live.frame import LiveFrame
from dancenow.realtime.live.slot import LatestSlot
from dancenow.realtime.serve.encoder import EncodedStream, PacketTrack, parse_bitrate
from dancenow.realtime.serve.publish import publish_kind, redact
from dancenow.realtime.serve.server import ServeConfig


class Feeder:
    """Puts a moving 256x192 picture into the slot at `fps` from a thread (a stand-in pipeline)."""

    def __init__(self, slot: LatestSlot, fps: float = 30.0) -> None:
        self.slot, self.fps, self.put = slot, fps, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        yy, xx = np.mgrid[0:256, 0:192]
        while not self._stop.is_set():
            shift = self.put * 4
            img = np.stack([(xx + shift) % 256, (yy + shift) % 256, (xx + yy) % 256], -1).astype(np.uint8)
            self.slot.put(LiveFrame(img, self.put))
            self.put += 1
            self._stop.wait(1 / self.fps)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _take(track: PacketTrack, n: int, timeout: float = 10.0) -> list:
    return [await asyncio.wait_for(track.recv(), timeout) for _ in range(n)]


def test_every_subscriber_gets_the_same_packets_encoded_once() -> None:
    async def main() -> None:
        slot = LatestSlot()
        stream = EncodedStream(slot)
        stream.start()
        with Feeder(slot):
            a, b = stream.subscribe("a"), stream.subscribe("b")
            got_a, got_b = await asyncio.gather(_take(a, 45), _take(b, 45))
            assert got_a[0].is_keyframe and got_b[0].is_keyframe
            assert [id(p) for p in got_a] == [id(p) for p in got_b]  # the very same packets
            pts = [p.pts for p in got_a]
            assert pts == sorted(pts) and got_a[0].time_base == got_b[0].time_base
            # one encode per frame, not one per subscriber
            assert stream.frames <= 47 and stream.status()["subscribers"] == 2
            late = stream.subscribe("late")  # joins mid-stream: starts at a keyframe, soon
            t0 = time.monotonic()
            first = await asyncio.wait_for(late.recv(), 5.0)
            assert first.is_keyframe and time.monotonic() - t0 < 1.0
            a.stop()
            assert a not in stream.subscribers
        await stream.stop()
        assert not stream.subscribers and not stream.running

    asyncio.run(main())


def test_keyframe_requests_are_rate_limited_and_a_stalled_subscriber_stalls_nobody() -> None:
    async def main() -> None:
        slot = LatestSlot()
        stream = EncodedStream(slot, min_keyframe_interval=0.5)
        stream.start()
        with Feeder(slot):
            fast, stalled = stream.subscribe("fast"), stream.subscribe("stalled")
            await _take(stalled, 1)  # it started receiving, then stops pulling
            keys0, t0 = stream.keyframes, time.monotonic()
            packets = []
            while time.monotonic() - t0 < 2.0:  # a lossy viewer asking for a keyframe at every packet
                packets.append(await asyncio.wait_for(fast.recv(), 2.0))
                fast.request_keyframe()
            keys = stream.keyframes - keys0
            assert len(packets) >= 40, "the fast subscriber was slowed down"
            assert 2 <= keys <= 6, f"{keys} keyframes in 2 s: the rate limit does not hold"
            assert stalled.skipped > 0  # it fell behind: dropped, not queued
            resumed = await _take(stalled, 1)
            assert resumed[0].is_keyframe  # after falling behind, it resumes on a keyframe
        await stream.stop()

    asyncio.run(main())


def test_the_last_frame_is_repeated_when_the_pipeline_pauses() -> None:
    async def main() -> None:
        slot = LatestSlot()
        stream = EncodedStream(slot, keepalive=0.3)
        stream.start()
        track = stream.subscribe("v")
        slot.put(LiveFrame(np.zeros((64, 64, 3), np.uint8), 0))
        got = await _take(track, 3, timeout=2.0)  # one new frame, then repeats
        assert got[0].is_keyframe and got[2].pts > got[1].pts > got[0].pts
        assert stream.frames == 3
        await stream.stop()

    asyncio.run(main())


def test_publish_urls_and_bitrates_are_checked_with_clear_errors() -> None:
    assert publish_kind("https://sfu.example/whip/abc") == "whip"
    assert publish_kind("http://127.0.0.1:7080/whip/endpoint/x") == "whip"
    assert publish_kind("rtmp://live.twitch.tv/app/KEY") == "rtmp"
    for url, says in (("ftp://x/y", "unknown scheme"), ("rtmp://host/live", "stream key"),
                      ("https://host", "names no WHIP endpoint"), ("https:///whip/x", "names no host"),
                      ("http://h:99999/whip", "not a URL"), ("sfu.example/whip", "unknown scheme")):
        with pytest.raises(DanceNowError, match=says):
            publish_kind(url)
    with pytest.raises(DanceNowError, match="--publish"):
        ServeConfig(target=None, publish=("rtmp://nokey",))
    assert redact("rtmp://u:pw@live.example:1935/app/secret-key") == "rtmp://live.example:1935/app/****"
    assert redact("https://sfu.example/whip/x?token=t") == "https://sfu.example/whip/x"
    assert parse_bitrate("1500k") == 1_500_000 and parse_bitrate("2M") == 2_000_000
    assert parse_bitrate("800000") == 800_000
    for bad in ("fast", "5", "1G", "-1M"):
        with pytest.raises(DanceNowError, match="--bitrate"):
            parse_bitrate(bad)
    assert ServeConfig(target=None).stamp is True
    assert ServeConfig(target=None, publish=("rtmp://h/app/k",)).stamp is False  # no blocks for an audience


def test_viewers_share_the_encoder_and_a_pli_reaches_it(live_bundle: Path) -> None:
    """Real aiortc viewers through the real server: every peer is a subscriber of the one encoder,
    VP8 only, and a PLI sent by a viewer makes the encoder send a keyframe."""
    from aiohttp.test_utils import TestClient, TestServer
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from dancenow.realtime.serve.server import Server

    async def main() -> None:
        server = Server(ServeConfig(target=live_bundle, port=0, max_peers=4))
        client = TestClient(TestServer(await server.create_app(), host="127.0.0.1"))
        await client.start_server()
        pcs = []
        try:
            for _ in range(3):
                pc = RTCPeerConnection()
                pc.addTransceiver("video", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
                r = await client.post("/api/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"})
                answer = await r.json()
                assert r.status == 200, answer
                assert "H264" not in answer["sdp"] and "VP8/90000" in answer["sdp"]  # VP8 only
                await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
                pcs.append(pc)
            tracks = [pc.getTransceivers()[0].receiver.track for pc in pcs]
            for track in tracks:
                for _ in range(10):
                    await asyncio.wait_for(track.recv(), 30)
            status = (await (await client.get("/api/status")).json())["encoder"]
            assert status["subscribers"] == 3 and status["codec"] == "VP8"
            requests, keys = server.stream.keyframe_requests, server.stream.keyframes
            receiver = pcs[0].getTransceivers()[0].receiver
            await asyncio.sleep(0.6)  # past the rate limit of the joiners' keyframes
            await receiver._send_rtcp_pli(next(iter(receiver._RTCRtpReceiver__remote_streams)))
            t0 = time.monotonic()
            # wait for both: a keyframe already due (a joiner's request) can land before the PLI is counted
            while not (server.stream.keyframe_requests > requests and server.stream.keyframes > keys) \
                    and time.monotonic() - t0 < 3:
                await asyncio.sleep(0.02)
            assert server.stream.keyframe_requests > requests and server.stream.keyframes > keys
            print(f"PLI to keyframe: {time.monotonic() - t0:.2f} s")
            metrics = await (await client.get("/metrics")).text()
            assert "dancenow_encoder_subscribers 3.0" in metrics
            r = await client.post("/api/offer", json={"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\n"
                                                      "a=rtpmap:102 H264/90000\r\n"})
            assert r.status == 400 and "VP8" in (await r.json())["error"]
        finally:
            for pc in pcs:
                await pc.close()
            await client.close()
        assert server.stream is None

    asyncio.run(main())


def test_stopping_while_frames_pour_in_always_returns() -> None:
    """Stop the stream at random moments while frames arrive every millisecond: a frame waking the
    encoder in the same loop turn as the cancel once kept its task alive and `stop` waiting (CI; the
    old code hung here in one run of three; the exact race, every time, is in test_live_units.py)."""

    async def main() -> list[float]:
        slot = LatestSlot()
        took = []
        with Feeder(slot, fps=1000.0):
            for i in range(200):
                stream = EncodedStream(slot)
                stream.start()
                await asyncio.sleep(0.002 + (i % 5) * 0.002)
                t0 = time.monotonic()
                await asyncio.wait_for(stream.stop(), 5.0)
                took.append(time.monotonic() - t0)
        return took

    took = asyncio.run(main())
    print(f"200 stops under a 1 kHz feed: slowest {max(took) * 1000:.0f} ms")
    assert max(took) < 1.0
