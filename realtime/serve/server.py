"""The WebRTC server: the generated target streamed to browsers, a browser camera as performer.

One `PipelineTrack` reads the live pipeline's output slot and is fanned out to every peer through
`MediaRelay(buffered=False)`, so a slow viewer drops frames instead of delaying the others. The
pipeline runs only while someone is connected. aiortc does no trickle ICE: pages post an offer
after gathering completes and get a complete answer back.

Routes: `/` viewer page, `/perform` performer page, `/static/*` (only the files of this package's
`web/` folder), `POST /api/offer`, `POST /api/perform` (token), `POST /api/target` (token),
`POST /api/bye`, `GET /api/status`, `GET /api/clock`, `GET /metrics`, `GET /healthz`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aioice.ice
import av
from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from dancenow.errors import DanceNowError
from dancenow.realtime.live.slot import LatestSlot

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                 ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(), geolocation=()",
}
VIDEO_CLOCK = 90_000


@dataclass
class ServeConfig:
    """What `dancenow serve` runs. Port 0 picks a free port (tests)."""

    target: Path | None = None
    source: str = "demo"
    host: str = "127.0.0.1"
    port: int = 8080
    backend: str = "auto"
    layout: str = "target"
    token: str | None = None
    max_peers: int = 8
    calibration: Path | None = None
    stamp: bool = True  # pipeline paints counter + capture time into frames: pages show glass-to-glass latency
    max_body: int = 64_000  # bytes; an SDP offer is a few kB
    consent_interval: float = 1.0  # aioice's ICE consent check period (default 5 s)
    consent_failures: int = 3  # missed checks before a vanished peer is dropped (default 6)
    connect_timeout: float = 15.0  # a peer that never connects is dropped after this long

    def __post_init__(self) -> None:
        if self.target is not None:
            self.target = Path(self.target)
        if not 0 <= self.port <= 65535:
            raise DanceNowError(f"port {self.port} is out of range: give 1-65535 (or 0 for any free port)")
        if self.max_peers < 1:
            raise DanceNowError(f"--max-peers must be at least 1, got {self.max_peers}")
        if self.token is not None and len(self.token) < 8:
            raise DanceNowError("the token is too short: give at least 8 characters, or none for a random one")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    """The pipeline's newest output frames as a video track (one instance, relayed to all peers)."""

    kind = "video"

    def __init__(self, slot: LatestSlot, keepalive: float = 1.0) -> None:
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


class HTTPProblem(Exception):
    """A client error answered as JSON {"error": message} with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _vp8_first(kind: str = "video") -> list:
    """Codec preferences: VP8 (and its RTX) first, the rest as fallback (aiortc's H.264 costs ~5x)."""
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    vp8 = [c for c in codecs if c.mimeType.lower() == "video/vp8"]
    rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
    rest = [c for c in codecs if c not in vp8 and c not in rtx]
    return vp8 + rtx + rest


class Server:
    """Owns the engine, the pipeline, the peers; `start()`/`stop()` run it on the current loop."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.token = cfg.token or secrets.token_urlsafe(16)
        self.peers: dict[str, Peer] = {}
        self.engine: Any = None
        self.pipeline: Any = None
        self.base_source: Any = None
        self.push_source: Any = None
        self.track: PipelineTrack | None = None
        self.relay: MediaRelay | None = None
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(self.status))
        self._lock = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self._monitor: asyncio.Task | None = None
        self.url = ""
        self.port = cfg.port

    # --- lifecycle -------------------------------------------------------------------------

    async def create_app(self) -> web.Application:
        """The aiohttp application (the app factory tests hand to aiohttp's TestServer)."""
        app = web.Application(client_max_size=self.cfg.max_body * 4, middlewares=[self._guard])
        app.on_response_prepare.append(_security_headers)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        app.router.add_get("/", self._page("index.html"))
        app.router.add_get("/perform", self._page("perform.html"))
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/favicon.ico", lambda r: _no_content())
        app.router.add_post("/api/offer", self._offer_viewer)
        app.router.add_post("/api/perform", self._offer_performer)
        app.router.add_post("/api/bye", self._bye)
        app.router.add_post("/api/target", self._target)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/clock", self._clock)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def start(self) -> str:
        """Load the target, bind, and serve in the background on this loop. Returns the URL."""
        app = await self.create_app()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            raise DanceNowError(f"cannot bind {self.cfg.host}:{self.cfg.port} ({e.strerror}): "
                                "pick another --port or stop what uses it") from None
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(self.cfg.host, self.cfg.host)
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        self.url = f"http://{host}:{self.port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _on_startup(self, app: web.Application) -> None:
        cfg = self.cfg
        configure_ice(is_loopback(cfg.host), cfg.consent_interval, cfg.consent_failures)
        if not is_loopback(cfg.host):
            log.warning("serving on %s, not loopback: anyone who can reach this address can watch; "
                        "performing and switching targets still need the token", cfg.host)
        if cfg.target is None:
            raise DanceNowError("no target bundle given: pass --target BUNDLE")
        from dancenow.engines import load_engine
        from dancenow.realtime.live.pipeline import Pipeline, PipelineConfig
        from dancenow.realtime.live.sources import open_source

        loop = asyncio.get_running_loop()
        self.engine = await loop.run_in_executor(None, lambda: load_engine(cfg.target, backend=cfg.backend))
        self.base_source = open_source(cfg.source, loop=True)  # a file plays on and on
        await loop.run_in_executor(None, _check_source, self.base_source)
        if cfg.source == "browser":
            self.push_source = self.base_source
        pcfg = PipelineConfig(layout=cfg.layout, stamp_pixels=cfg.stamp)
        if cfg.calibration is not None:
            pcfg.calibration = cfg.calibration
        self.pipeline = Pipeline(self.base_source, self.engine, pcfg)
        self._monitor = asyncio.create_task(self._watch_peers(), name="dancenow-peer-monitor")

    async def _on_cleanup(self, app: web.Application) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        await asyncio.gather(*(self.remove_peer(pid) for pid in list(self.peers)))
        async with self._lock:
            await self._stop_media()
        for src in {id(s): s for s in (self.base_source, self.push_source) if s is not None}.values():
            close = getattr(src, "close", None)
            if close is not None:
                close()

    # --- media -----------------------------------------------------------------------------

    async def _start_media(self) -> None:
        """First peer: start the pipeline and one relayed track (call with the lock held)."""
        if self.track is not None:
            return
        await asyncio.get_running_loop().run_in_executor(None, self.pipeline.start)
        self.track = PipelineTrack(self.pipeline.output)
        self.relay = MediaRelay()

    async def _stop_media(self) -> None:
        """Last peer gone: stop the track (ends the relay's reader) and the pipeline."""
        if self.track is None:
            return
        track, self.track, self.relay = self.track, None, None
        track.stop()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(track.idle.wait(), 1.0)
        await asyncio.sleep(0)  # the relay's reader sees the end and finishes
        await asyncio.get_running_loop().run_in_executor(None, self.pipeline.stop)

    async def _pump_camera(self, track: MediaStreamTrack) -> None:
        """A performer's camera frames into the pipeline's push source."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            self.push_source.push(frame.to_ndarray(format="rgb24"), time.monotonic())

    # --- peers -----------------------------------------------------------------------------

    async def add_peer(self, offer: dict, role: str) -> dict:
        if len(self.peers) >= self.cfg.max_peers:
            raise HTTPProblem(503, f"too many peers: this server takes at most {self.cfg.max_peers}; try again later")
        if role == "performer" and any(p.role == "performer" for p in self.peers.values()):
            raise HTTPProblem(409, "someone is already performing: wait until they leave")
        sdp = _check_offer(offer)
        pid = secrets.token_urlsafe(12)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        peer = Peer(pid, pc, role)
        self.peers[pid] = peer  # reserve the place before awaiting anything (the cap holds)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.remove_peer(pid)

        if role == "performer":
            @pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                if track.kind == "video":
                    peer.tasks.append(asyncio.create_task(self._pump_camera(track), name=f"camera-{pid}"))

        try:
            async with self._lock:
                await self._start_media()
                assert self.relay is not None and self.track is not None
                if role == "performer":
                    if self.push_source is None:
                        from dancenow.realtime.live.sources import open_source

                        self.push_source = open_source("browser")
                    if self.push_source is not self.base_source:  # stopping the old source joins a thread
                        await asyncio.get_running_loop().run_in_executor(None, self.pipeline.set_source, self.push_source)
                out = self.relay.subscribe(self.track, buffered=False)
            # the transceiver exists before the offer is applied, or codec preferences are ignored
            transceiver = pc.addTransceiver(out, direction="sendrecv" if role == "performer" else "sendonly")
            transceiver.setCodecPreferences(_vp8_first())
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                await pc.setLocalDescription(await pc.createAnswer())
            except Exception as e:
                raise HTTPProblem(400, f"malformed offer: {type(e).__name__}: {e}"[:300]) from None
        except BaseException:
            await self.remove_peer(pid)
            raise
        log.info("%s %s joined (%d peers)", role, pid, len(self.peers))
        return {"id": pid, "sdp": pc.localDescription.sdp, "type": pc.localDescription.type}

    async def remove_peer(self, pid: str) -> bool:
        """Close a peer and, when it was the last, stop the pipeline. Idempotent."""
        peer = self.peers.pop(pid, None)
        if peer is None:
            return False
        for t in peer.tasks:
            t.cancel()
        await peer.pc.close()
        await asyncio.gather(*peer.tasks, return_exceptions=True)
        async with self._lock:
            if peer.role == "performer" and self.push_source is not self.base_source and self.pipeline:
                await asyncio.get_running_loop().run_in_executor(None, self.pipeline.set_source, self.base_source)
            if not self.peers:
                await self._stop_media()
        log.info("%s %s left (%d peers)", peer.role, pid, len(self.peers))
        return True

    async def _watch_peers(self) -> None:
        """Drop peers that answered but never connected (the browser went away mid-handshake)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for pid, peer in list(self.peers.items()):
                if peer.pc.connectionState in ("new", "connecting") and now - peer.created > self.cfg.connect_timeout:
                    log.info("peer %s never connected: dropping it", pid)
                    await self.remove_peer(pid)

    def task_count(self) -> int:
        """asyncio tasks of the media machinery (aiohttp's per-connection HTTP handlers left out)."""
        return sum(1 for t in asyncio.all_tasks()
                   if not t.done() and "RequestHandler" not in getattr(t.get_coro(), "__qualname__", ""))

    def status(self) -> dict:
        stats = dict(self.pipeline.stats()) if self.pipeline is not None else {}
        roles = [p.role for p in self.peers.values()]
        stats.setdefault("backend", getattr(self.engine, "name", None))
        stats.setdefault("target", None)
        stats["bundle"] = str(getattr(self.engine, "bundle", None) or self.cfg.target)
        stats.update(
            viewers=roles.count("viewer"), performers=roles.count("performer"), peers=len(roles),
            max_peers=self.cfg.max_peers, running=bool(self.pipeline is not None and self.pipeline.running),
            streaming=self.track is not None, sent_frames=self.track.frames if self.track else 0,
            source=self.cfg.source, server_ms=time.time() * 1000.0,
        )
        return stats

    async def switch_target(self, bundle: str) -> dict:
        from dancenow.engines import load_engine

        path = Path(bundle).expanduser()
        if not (path / "manifest.json").is_file():
            raise HTTPProblem(400, f"not a target bundle: {path} has no manifest.json")
        loop = asyncio.get_running_loop()
        try:
            engine = await loop.run_in_executor(None, lambda: load_engine(path, backend=self.cfg.backend))
        except DanceNowError as e:
            raise HTTPProblem(400, str(e)) from None
        self.pipeline.set_engine(engine)
        self.engine = engine
        log.info("switched target to %s (%s)", path, getattr(engine, "name", "?"))
        return {"target": str(path), "backend": getattr(engine, "name", None)}

    # --- HTTP handlers ---------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if is_loopback(self.cfg.host) and not _loopback_host_header(request.host):
            # a page on another site reaching us through DNS rebinding sends its own host name
            return _error(403, f"unexpected Host header {request.host!r}: open the page via 127.0.0.1")
        try:
            return await handler(request)
        except HTTPProblem as e:
            return _error(e.status, str(e))
        except web.HTTPRequestEntityTooLarge:
            return _error(400, f"request too large: at most {self.cfg.max_body} bytes")

    def _page(self, name: str) -> Callable:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=(WEB_DIR / name).read_bytes(), content_type="text/html")

        return handler

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        allowed = {p.name: p for p in WEB_DIR.iterdir() if p.is_file() and p.suffix in CONTENT_TYPES}
        path = allowed.get(name)
        if path is None:
            return _error(404, "no such file")
        return web.Response(body=path.read_bytes(), content_type=CONTENT_TYPES[path.suffix])

    async def _json_body(self, request: web.Request, json_only: bool = True) -> dict:
        if request.content_length is not None and request.content_length > self.cfg.max_body:
            raise HTTPProblem(400, f"request too large: at most {self.cfg.max_body} bytes")
        if json_only and request.content_type != "application/json":
            raise HTTPProblem(400, "send JSON with Content-Type: application/json")
        raw = await request.content.read(self.cfg.max_body + 1)
        if len(raw) > self.cfg.max_body:
            raise HTTPProblem(400, f"request too large: at most {self.cfg.max_body} bytes")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise HTTPProblem(400, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise HTTPProblem(400, "the body must be a JSON object")
        return body

    def _check_token(self, request: web.Request, body: dict) -> None:
        auth = request.headers.get("Authorization", "")
        given = auth[7:].strip() if auth.lower().startswith("bearer ") else body.get("token")
        if not isinstance(given, str) or not given:
            raise HTTPProblem(403, "a token is needed: the one `dancenow serve` printed at start")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            raise HTTPProblem(403, "wrong token")

    async def _offer_viewer(self, request: web.Request) -> web.Response:
        return web.json_response(await self.add_peer(await self._json_body(request), "viewer"))

    async def _offer_performer(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        self._check_token(request, body)
        return web.json_response(await self.add_peer(body, "performer"))

    async def _bye(self, request: web.Request) -> web.Response:
        body = await self._json_body(request, json_only=False)  # sendBeacon sends text/plain
        pid = body.get("id")
        if not isinstance(pid, str):
            raise HTTPProblem(400, "bye needs the peer id the offer answered with")
        return web.json_response({"closed": await self.remove_peer(pid)})

    async def _target(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        self._check_token(request, body)
        if not isinstance(body.get("target"), str):
            raise HTTPProblem(400, 'give the bundle folder as {"target": "path/to/bundle"}')
        return web.json_response(await self.switch_target(body["target"]))

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status(), dumps=lambda o: json.dumps(o, default=str))

    async def _clock(self, request: web.Request) -> web.Response:
        return web.json_response({"ms": time.time() * 1000.0})

    async def _metrics(self, request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(self.registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def _healthz(self, request: web.Request) -> web.Response:
        ok = self.engine is not None and self.pipeline is not None
        return web.json_response({"ok": ok}, status=200 if ok else 503)


def _check_offer(body: dict) -> str:
    sdp, typ = body.get("sdp"), body.get("type", "offer")
    if typ != "offer" or not isinstance(sdp, str):
        raise HTTPProblem(400, 'malformed offer: expected {"type": "offer", "sdp": "v=0..."}')
    if not sdp.startswith("v=0") or "\nm=video " not in sdp:
        raise HTTPProblem(400, "malformed offer: the SDP must start with v=0 and offer a video m-line")
    return sdp


def _loopback_host_header(host: str | None) -> bool:
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return is_loopback(name.strip("[]"))


async def _no_content() -> web.Response:
    return web.Response(status=204)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"


class _StatsCollector:
    """Prometheus view of `Server.status()`, read at scrape time (no second copy of the figures)."""

    def __init__(self, status: Callable[[], dict]) -> None:
        self._status = status

    def collect(self):
        s = self._status()
        for key, doc in (("fps", "generated frames per second"), ("viewers", "connected viewers"),
                         ("performers", "connected performers"), ("peers", "peer connections"),
                         ("frames", "frames generated since start"), ("dropped", "frames dropped")):
            if isinstance(s.get(key), (int, float)):
                yield GaugeMetricFamily(f"dancenow_{key}", doc, value=float(s[key]))
        lat = GaugeMetricFamily("dancenow_latency_ms", "latency percentiles per stage, ms",
                                labels=["stage", "quantile"])
        for stage, q, v in _latencies(s):
            lat.add_metric([stage, q], v)
        yield lat


def _latencies(stats: dict) -> list[tuple[str, str, float]]:
    """(stage, quantile, ms) from the pipeline's stats, whatever nesting it uses."""
    out = []
    for key in ("latency_ms", "latency", "stages"):
        block = stats.get(key)
        if isinstance(block, dict):
            for stage, qs in block.items():
                if isinstance(qs, dict):
                    out += [(stage, q, float(v)) for q, v in qs.items() if isinstance(v, (int, float))]
    return out


class ServerThread:
    """A `Server` on its own event loop in a background thread (benchmarks, tests, embedding).

    `with ServerThread(cfg) as st:` starts it (and raises its startup error, if any);
    `st.call(fn)` runs `fn(server)` on the server's loop (awaiting it when it is a coroutine).
    """

    def __init__(self, cfg: ServeConfig) -> None:
        self.server = Server(cfg)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="dancenow-server", daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def token(self) -> str:
        return self.server.token

    def call(self, fn: Callable[[Server], Any], timeout: float = 30.0) -> Any:
        async def run() -> Any:
            out = fn(self.server)
            return await out if asyncio.iscoroutine(out) else out

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        try:
            self.call(lambda s: s.start(), timeout=300)
        except BaseException:
            self._shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call(lambda s: s.stop(), timeout=60)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


def _check_source(source) -> None:
    """Fail at start-up on a camera that does not open at all (the pipeline opens the source only
    while someone watches; later losses are reconnected)."""
    from dancenow.realtime.live.sources import CameraSource

    if not isinstance(source, CameraSource) or source.running:
        return
    source.start()
    try:
        source.check_ready()
    finally:
        source.stop()


def serve(cfg: ServeConfig) -> None:
    """Run the server until interrupted, printing where to watch and the token to perform."""

    async def main() -> None:
        server = Server(cfg)
        url = await server.start()
        print(f"dancenow: watch at {url}/", flush=True)
        print(f"dancenow: perform at {url}/perform#token={server.token}", flush=True)
        if cfg.token is None:
            print(f"dancenow: token (to perform and switch targets): {server.token}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()

    asyncio.run(main())
