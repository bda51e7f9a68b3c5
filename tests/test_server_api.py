"""The server's HTTP API and WebRTC path without a browser: aiohttp's test client for the HTTP
side, real aiortc peers over real loopback sockets for the media side, the real pipeline and the
demo bundle behind it."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCPeerConnection, RTCSessionDescription

from dancenow.errors import DanceNowError
from dancenow.realtime.live import pixelstamp
from dancenow.realtime.serve.http import SECURITY_HEADERS
from dancenow.realtime.serve.server import ServeConfig, Server

TOKEN = "test-token-0123456789"


async def _client(bundle: Path, **kw) -> tuple[Server, TestClient]:
    server = Server(ServeConfig(target=bundle, port=0, token=TOKEN, **kw))
    client = TestClient(TestServer(await server.create_app(), host="127.0.0.1"))
    await client.start_server()
    return server, client


async def _connect(client: TestClient) -> tuple[RTCPeerConnection, dict]:
    """A real aiortc viewer: recvonly offer, posted once gathered, answer applied."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    r = await client.post("/api/offer", json={"sdp": pc.localDescription.sdp, "type": "offer"})
    body = await r.json()
    if r.status != 200:
        await pc.close()
        return None, {"status": r.status, **body}  # type: ignore[return-value]
    await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
    return pc, body


async def _frames(pc: RTCPeerConnection, n: int, timeout: float = 30.0) -> list:
    track = pc.getTransceivers()[0].receiver.track
    return [await asyncio.wait_for(track.recv(), timeout) for _ in range(n)]


async def _until(check, timeout: float) -> float:
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


def test_pages_health_status_metrics_headers(live_bundle: Path) -> None:
    async def main() -> None:
        server, client = await _client(live_bundle)
        try:
            for path, ctype in (("/", "text/html"), ("/perform", "text/html"), ("/static/viewer.js", "text/javascript"),
                                ("/static/style.css", "text/css")):
                r = await client.get(path)
                assert r.status == 200 and r.content_type == ctype, path
                for k, v in SECURITY_HEADERS.items():
                    assert r.headers[k] == v
            for path in ("/static/..%2Fserver.py", "/static/server.py", "/static/nope.js", "/../pyproject.toml"):
                r = await client.get(path)
                assert r.status == 404, path
                assert "X-Content-Type-Options" in r.headers
            assert (await client.get("/healthz")).status == 200
            s = await (await client.get("/api/status")).json()
            assert s["viewers"] == 0 and s["peers"] == 0 and not s["running"] and not s["streaming"]
            assert s["bundle"] and s["backend"]
            m = await client.get("/metrics")
            assert m.status == 200 and m.content_type == "text/plain"
            assert "dancenow_viewers 0.0" in await m.text()
            r = await client.get("/", headers={"Host": "evil.example:80"})  # DNS rebinding
            assert r.status == 403
        finally:
            await client.close()

    asyncio.run(main())


def test_bad_input_and_tokens_get_clear_errors(live_bundle: Path) -> None:
    async def main() -> None:
        server, client = await _client(live_bundle, max_body=2000)
        try:
            bad = [
                ("/api/offer", {"data": "not json", "headers": {"Content-Type": "application/json"}}),
                ("/api/offer", {"json": ["an", "array"]}),
                ("/api/offer", {"json": {"type": "answer", "sdp": "v=0"}}),
                ("/api/offer", {"json": {"type": "offer", "sdp": "hello"}}),
                ("/api/offer", {"json": {"type": "offer", "sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=garbage\r\n"}}),
                ("/api/offer", {"json": {"type": "offer", "sdp": "v=0\r\nm=video " + "x" * 5000}}),
                ("/api/offer", {"data": "{}", "headers": {"Content-Type": "text/plain"}}),
            ]
            for path, kw in bad:
                r = await client.post(path, **kw)
                assert r.status == 400, (kw, await r.text())
                assert (await r.json())["error"]
            for path in ("/api/perform", "/api/target"):
                r = await client.post(path, json={"sdp": "v=0", "target": "x"})
                assert r.status == 403 and "token" in (await r.json())["error"]
                r = await client.post(path, json={"target": "x"}, headers={"Authorization": "Bearer wrong-token-123"})
                assert r.status == 403
                r = await client.post(path, json={"target": "x", "token": "wrong-token-123"})
                assert r.status == 403
            r = await client.post("/api/target", json={"target": "/nonexistent"}, headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status == 400 and "manifest" in (await r.json())["error"]
            assert server.peers == {} and server.track is None
        finally:
            await client.close()

    asyncio.run(main())


def test_viewers_get_stamped_vp8_frames_cap_and_cleanup(live_bundle: Path) -> None:
    async def main() -> None:
        server, client = await _client(live_bundle, max_peers=2)
        idle = server.task_count()
        try:
            pc1, a1 = await _connect(client)
            pc2, a2 = await _connect(client)
            m_line = next(line for line in a1["sdp"].splitlines() if line.startswith("m=video"))
            first_pt = m_line.split()[3]
            assert f"a=rtpmap:{first_pt} VP8/90000" in a1["sdp"]  # VP8 preferred
            _, refused = await _connect(client)
            assert refused["status"] == 503 and "at most 2" in refused["error"]
            s = await (await client.get("/api/status")).json()
            assert s["viewers"] == 2 and s["running"]
            for pc in (pc1, pc2):
                frames = await _frames(pc, 15)
                stamps = [pixelstamp.decode(f.to_ndarray(format="rgb24")) for f in frames]
                counters = [s[0] for s in stamps if s is not None]
                assert len(counters) >= 12 and counters == sorted(counters)
            # a polite bye frees the place at once
            r = await client.post("/api/bye", data=f'{{"id": "{a1["id"]}"}}', headers={"Content-Type": "text/plain"})
            assert (await r.json())["closed"] is True
            await pc1.close()
            assert len(server.peers) == 1 and server.track is not None
            # the last viewer closes its connection (DTLS close): the pipeline stops, tasks go back to idle
            await pc2.close()
            await _until(lambda: not server.peers and server.task_count() <= idle, 2.0)
            assert server.track is None and not server.show.running
        finally:
            await client.close()

    asyncio.run(main())


def test_vanished_peer_is_dropped_within_seconds(live_bundle: Path) -> None:
    """A peer whose sockets just go away (no bye, no DTLS close) is noticed by ICE consent checks."""

    async def main() -> None:
        server, client = await _client(live_bundle)
        try:
            pc, _ = await _connect(client)
            await _frames(pc, 3)
            ice = pc.getTransceivers()[0].receiver.transport.transport._connection
            for proto in ice._protocols:  # silence: close the client's UDP sockets behind its back
                proto.transport.close()
            took = await _until(lambda: not server.peers and server.track is None, 10.0)
            print(f"vanished peer dropped after {took:.1f} s")
            await pc.close()
        finally:
            await client.close()

    asyncio.run(main())


def test_switch_target_keeps_viewers(live_bundle: Path, tmp_path: Path) -> None:
    other = shutil.copytree(live_bundle, tmp_path / "other")

    async def main() -> None:
        server, client = await _client(live_bundle)
        try:
            pc, _ = await _connect(client)
            await _frames(pc, 5)
            r = await client.post("/api/target", json={"target": str(other), "token": TOKEN})
            assert r.status == 200, await r.text()
            assert Path((await r.json())["target"]) == other
            await _frames(pc, 10)
            assert len(server.peers) == 1 and pc.connectionState == "connected"
            s = await (await client.get("/api/status")).json()
            assert Path(s["bundle"]).name == "other"
            await pc.close()
        finally:
            await client.close()

    asyncio.run(main())


def _green_share(frames: list) -> float:
    """The share of pixels near the key green (0, 177, 64) in decoded frames (VP8 blurs edges)."""
    import numpy as np

    rgb = np.stack([f.to_ndarray(format="rgb24") for f in frames]).astype(np.int16)
    near = np.abs(rgb - np.array([0, 177, 64])).max(axis=-1) < 40
    return float(near.mean())


def test_the_background_switch_takes_the_room_away_for_every_viewer(live_bundle: Path) -> None:
    async def main() -> None:
        server, client = await _client(live_bundle)
        try:
            pc, _ = await _connect(client)
            before = _green_share(await _frames(pc, 5))
            s = await (await client.get("/api/status")).json()
            assert s["background"] == "plate" and "green" in s["backgrounds"]
            r = await client.post("/api/background", json={"background": "green"})
            assert r.status == 403 and "token" in (await r.json())["error"]
            for bad in ("/etc/passwd", "GREEN", 3, None):
                r = await client.post("/api/background", json={"background": bad, "token": TOKEN})
                assert r.status == 400 and "can show plate, green" in (await r.json())["error"], bad
            r = await client.post("/api/background", json={"background": "green"},
                                  headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status == 200 and (await r.json()) == {"background": "green"}
            await _frames(pc, 10)  # frames already in flight
            green = _green_share(await _frames(pc, 5))
            assert before < 0.01 and green > 0.3, (before, green)
            assert (await (await client.get("/api/status")).json())["background"] == "green"
            r = await client.post("/api/background", json={"background": "plate", "token": TOKEN})
            assert r.status == 200
            await _frames(pc, 10)
            assert _green_share(await _frames(pc, 5)) < 0.01
            assert pc.connectionState == "connected"
            await pc.close()
        finally:
            await client.close()

    asyncio.run(main())


@pytest.mark.parametrize("host", ["0.0.0.0"])
def test_binding_elsewhere_warns(live_bundle: Path, host: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        server = Server(ServeConfig(target=live_bundle, host=host, port=0, token=TOKEN))
        await server.start()
        await server.stop()

    # capture at the server's own logger: earlier tests' libraries (OpenVINO, NNCF) reconfigure logging
    with caplog.at_level(logging.WARNING, logger="dancenow.realtime.serve.server"):
        asyncio.run(main())
    assert any("not loopback" in r.message for r in caplog.records)


def test_a_camera_that_does_not_exist_stops_the_server_at_start(live_bundle: Path) -> None:
    """Not a server that starts and streams nothing: a clear error before anyone connects."""
    async def main() -> None:
        with pytest.raises(DanceNowError, match=r"webcam:57: no camera .*--source demo"):
            server, client = await _client(live_bundle, source="webcam:57")
            await client.close()

    asyncio.run(main())
