"""Publishing to real servers started here on loopback: WHIP into Janus's VideoRoom through
simple-whip-server (watched by Chromium with Debian's janus.js, MediaPipe on what it shows; Janus
restarted twice mid-stream), and RTMP into nginx's RTMP module (read back with PyAV).

Run inside a loopback-only namespace like the rest:
`unshare -n sh -c 'ip link set lo up && .venv/bin/python -m pytest -q tests/test_publish.py'`.
`.ci/publish-servers` installs the servers; without them these tests skip, saying why.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.server
import signal
import subprocess
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import av
import cv2
import numpy as np
import pytest
from media_servers import (
    ADAPTER_JS,
    JANUS_JS,
    Janus,
    NginxRtmp,
    WhipServer,
    give_janus_an_address,
    janus_missing,
    nginx_rtmp_missing,
)
from prometheus_client import generate_latest

from dancenow.realtime.bench.rtc_client import Viewer
from dancenow.realtime.bench.web import launch, wait_for
from dancenow.realtime.live import pixelstamp
from dancenow.realtime.live.slot import LatestSlot
from dancenow.realtime.serve.encoder import EncodedStream
from dancenow.realtime.serve.http import WEB_DIR
from dancenow.realtime.serve.publish_whip import WhipPublisher, until_set
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

TOKEN = "whip-token-0123456789"
PAGE_DIR = Path(__file__).parent / "janus_viewer"


@pytest.fixture(scope="module")
def sfu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Janus, WhipServer]]:
    reason = janus_missing()
    if reason:
        pytest.skip(reason)
    reason, undo = give_janus_an_address()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("sfu")
    janus = whip = None
    try:
        janus = Janus(root).start()
        whip = WhipServer(root, janus).start()
        yield janus, whip
    finally:
        for proc in (whip, janus):
            if proc is not None:
                proc.kill()
        if undo:
            subprocess.run(undo, capture_output=True)


@contextlib.contextmanager
def subscriber_page(janus: Janus) -> Iterator[str]:
    """The Janus subscriber page (tests/janus_viewer + Debian's janus.js and adapter.js) on loopback."""
    files = {"/index.html": PAGE_DIR / "index.html", "/subscriber.js": PAGE_DIR / "subscriber.js",
             "/stamp.js": WEB_DIR / "stamp.js", "/janus.js": JANUS_JS, "/adapter.js": ADAPTER_JS}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            path = files.get(self.path.split("?")[0])
            if path is None:
                self.send_error(404)
                return
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "text/html" if path.suffix == ".html" else "text/javascript")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/index.html?janus={janus.api}&room={janus.room}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _publishing(st: ServerThread) -> dict:
    return st.call(lambda s: s.status()["publish"][0])


def _janus_publishes(janus: Janus) -> bool:
    try:
        return bool(janus.publishers())
    except (urllib.error.URLError, OSError, RuntimeError):
        return False  # Janus is (re)starting


def _subscribe(browser, url: str):
    page = browser.new_page()
    page.goto(url)
    try:
        wait_for(lambda: page.evaluate("() => window.sub.framesDecoded") > 15, 30,
                 "frames in the browser subscribed through Janus")
    except TimeoutError:
        raise AssertionError(f"no frames through Janus: {page.evaluate('() => window.sub')}") from None
    return page


def _grab(page) -> np.ndarray:
    png = np.frombuffer(base64.b64decode(page.evaluate("() => window.grab()").split(",", 1)[1]), np.uint8)
    return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_a_stop_landing_as_the_whip_connection_comes_up_is_kept() -> None:
    """The connect wait must not swallow a stop: the cancel and the "connected" event in one loop
    turn (Python 3.11's asyncio.wait_for returned True there and the publisher went live)."""

    async def main() -> None:
        connected = asyncio.Event()
        task = asyncio.create_task(until_set(connected, 5.0))
        await asyncio.sleep(0)
        connected.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        late = asyncio.Event()
        assert await until_set(late, 0.05) is False  # a timeout is an answer, not an exception
        late.set()
        assert await until_set(late, 0.05) is True

    asyncio.run(main())


def test_a_wrong_whip_token_is_a_clear_error_and_retried(sfu: tuple[Janus, WhipServer]) -> None:
    janus, whip = sfu
    url = whip.create_endpoint("wrong-token", token=TOKEN)

    async def main() -> dict:
        stream = EncodedStream(LatestSlot())
        publisher = WhipPublisher(url, stream, token="not-the-token")
        publisher.start()
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if publisher.state.attempts >= 2:
                    break
            return publisher.status()
        finally:
            await publisher.stop()
            await stream.stop()

    status = asyncio.run(main())
    assert status["state"] == "retrying" and status["attempts"] >= 2
    assert "403" in status["last_error"] and "--publish-token" in status["last_error"]
    assert not [e for e in whip.endpoints() if e["id"] == "wrong-token" and e["enabled"]]


@pytest.mark.browser
def test_whip_to_janus_reaches_a_browser_and_survives_sfu_restarts(sfu: tuple[Janus, WhipServer],
                                                                   demo_bundle: Path) -> None:
    from playwright.sync_api import sync_playwright

    from dancenow.realtime.pose.tracker import PoseTracker

    janus, whip = sfu
    url = whip.create_endpoint("dancenow", token=TOKEN)
    cfg = ServeConfig(target=demo_bundle, port=0, publish=(url,), publish_token=TOKEN, stamp=True)
    with ServerThread(cfg) as st, subscriber_page(janus) as page_url, sync_playwright() as pw:
        wait_for(lambda: _publishing(st)["state"] == "live", 60, "the WHIP session to go live")
        wait_for(lambda: _janus_publishes(janus), 10, "Janus to list the publisher")
        metrics = generate_latest(st.call(lambda s: s.registry)).decode()
        assert 'dancenow_publish_up{kind="whip",url="' + url + '"} 1.0' in metrics

        # a local viewer, on the server's own loop, to see that restarts of the SFU never reach it
        async def open_viewer(_server):
            session = aiohttp.ClientSession()
            return await Viewer(st.url).connect(session), session

        viewer, session = st.call(open_viewer)
        browser = launch(pw)
        try:
            page = _subscribe(browser, page_url)
            frames, found = [], 0
            with PoseTracker() as tracker:
                for i in range(6):
                    frames.append(_grab(page))
                    found += tracker.track(frames[-1], i / 2).detected
                    time.sleep(0.5)
            direct_page = browser.new_page()  # the server's own viewer page, watched over the same seconds
            direct_page.goto(st.url + "/")
            wait_for(lambda: direct_page.evaluate("() => window.dancenow.stamped") > 30, 30, "the viewer page")
            time.sleep(2.0)  # both jitter buffers settle
            page.evaluate("() => window.sub.latencies.splice(0)")
            direct_page.evaluate("() => window.dancenow.latencies.splice(0)")
            time.sleep(4.0)
            through = np.median(page.evaluate("() => window.sub.latencies.splice(0)"))
            direct = np.median([s["ms"] for s in direct_page.evaluate("() => window.dancenow.latencies.splice(0)")])
            direct_page.close()
            print(f"glass-to-glass p50 in Chromium over the same 4 s: {through:.0f} ms through Janus, "
                  f"{direct:.0f} ms from the server")
            moved = max(float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(frames, frames[1:], strict=False))
            print(f"through Janus: {frames[0].shape[1]}x{frames[0].shape[0]}, person in {found}/6 frames, "
                  f"largest change between grabs {moved:.1f}")
            assert found >= 3, "MediaPipe finds no person in what the SFU's viewer receives"
            assert moved > 1.0, "the frames through Janus do not move"
            page.close()

            restarts, restart_from = [], time.monotonic()
            for sig in (signal.SIGKILL, signal.SIGTERM):  # a crash, then a clean restart
                sessions = _publishing(st)["sessions"]
                t0 = time.monotonic()
                janus.kill(sig)
                janus.start()
                up = time.monotonic() - t0
                wait_for(lambda s=sessions: _publishing(st)["sessions"] > s and _publishing(st)["state"] == "live"
                         and _janus_publishes(janus), 15, "publishing to resume after the SFU restarted")
                restarts.append((sig.name, up, time.monotonic() - t0))
            restart_to = time.monotonic()
            for name, up, took in restarts:
                print(f"Janus {name} + restart: up again after {up:.1f} s, publishing again after {took:.1f} s")
            assert all(took <= 5.0 for _, _, took in restarts), restarts
            _subscribe(browser, page_url).close()  # what is published after the restarts reaches a browser
        finally:
            browser.close()
        times = np.array(sorted(t for t, _ in st.call(lambda s: list(viewer.latencies))))
        st.call(lambda s: viewer.close(session=session))
        st.call(lambda s: session.close())
        during = times[(times >= restart_from) & (times <= restart_to)]
        gaps = np.diff(np.concatenate([[restart_from], during, [restart_to]]))
        print(f"local viewer: {len(during)} new frames in the {restart_to - restart_from:.1f} s of both SFU "
              f"restarts ({len(during) / (restart_to - restart_from):.1f} fps), largest gap {gaps.max() * 1000:.0f} ms; "
              f"over the whole test {np.diff(times).max() * 1000:.0f} ms")
        assert len(during) > 10 * (restart_to - restart_from) and gaps.max() < 0.5, "the SFU restarts reached the viewer"
    # the server stopped: its WHIP session was DELETEd, Janus has no publisher left
    assert not [e for e in whip.endpoints() if e["id"] == "dancenow" and e["enabled"]]
    assert janus.publishers() == []


def test_rtmp_to_nginx_read_back(live_bundle: Path, tmp_path: Path) -> None:
    reason = nginx_rtmp_missing()
    if reason:
        pytest.skip(reason)
    nginx = NginxRtmp(tmp_path).start()
    try:
        cfg = ServeConfig(target=live_bundle, port=0, publish=(nginx.url("dancenow-test-key"),), stamp=True)
        with ServerThread(cfg) as st:
            wait_for(lambda: _publishing(st)["state"] == "live", 60, "the RTMP stream to go live")
            assert "dancenow-test-key" not in str(st.call(lambda s: s.status()))  # the key stays secret
            h, w = st.call(lambda s: s.show.output.peek()[1].image.shape[:2])
            arrivals, pts, size, kinds, ages = _read_rtmp(nginx.url("dancenow-test-key"), seconds=20.0)
            gaps, pts_gaps = np.diff(arrivals), np.diff(pts)
            print(f"RTMP read back: {len(arrivals)} frames in 20 s at {size[0]}x{size[1]}, {kinds}, largest gap "
                  f"{gaps.max() * 1000:.0f} ms (arrival), {pts_gaps.max() * 1000:.0f} ms (timestamps); "
                  f"glass-to-glass p50 {np.median(ages):.0f} ms (capture -> decoded by the player)")
            assert size == (w // 2 * 2, h // 2 * 2)
            assert kinds == ["h264", "aac"]
            assert len(arrivals) >= 20 * 20, "fewer than 20 fps came back"
            assert gaps.max() <= 1.0 and pts_gaps.max() <= 1.0
            nginx.kill()  # the ingest goes away and comes back: the publisher reconnects
            nginx.start()
            wait_for(lambda: _publishing(st)["sessions"] >= 2 and _publishing(st)["state"] == "live", 20,
                     "RTMP publishing to resume after nginx restarted")
    finally:
        nginx.kill()


def _read_rtmp(url: str, seconds: float) -> tuple[list[float], list[float], tuple[int, int], list[str], list[int]]:
    """Play the stream as a platform's player would: arrival times and timestamps of video frames,
    and the age of each stamped frame when decoded (ms)."""
    arrivals, pts, ages = [], [], []
    with av.open(url, timeout=10.0) as player:
        video = player.streams.video[0]
        kinds = sorted((s.codec_context.name for s in player.streams), key=lambda n: n != "h264")
        t0 = None
        for frame in player.decode(video=0):
            now = time.monotonic()
            t0 = t0 or now
            arrivals.append(now)
            pts.append(float(frame.pts * video.time_base))
            stamp = pixelstamp.decode(frame.to_ndarray(format="rgb24"))
            if stamp is not None:
                ages.append(pixelstamp.age_ms(stamp[1], time.time() * 1000.0))
            if now - t0 >= seconds:
                break
        return arrivals, pts, (video.width, video.height), kinds, ages

