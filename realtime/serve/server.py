"""The WebRTC server: the generated target streamed to browsers, a browser camera as performer.

It owns a Show (source + Target + pipeline, made by `open_show`), the peers, one VP8 encoder
whose packets every peer gets (`encoder.py`), and the publishers (`--publish`: WHIP, RTMP). The
show runs while someone is connected, or always when publishing. aiortc does no trickle ICE: pages
post an offer after gathering completes and get a complete answer back.

Routes: `/` viewer page, `/perform` performer page, `/static/*` (only the files of this package's
`web/` folder), `POST /api/offer`, `POST /api/perform` (token), `POST /api/target` (token),
`POST /api/background` (token), `POST /api/bye`, `GET /api/status`, `GET /api/clock`, `GET /metrics`, `GET /healthz`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from dancenow.errors import DanceNowError
from dancenow.realtime.live.pipeline import PipelineConfig
from dancenow.realtime.live.show import Show, open_show
from dancenow.realtime.live.sources import PushSource
from dancenow.realtime.live.virtualcam import VirtualCamera
from dancenow.realtime.serve import http, memory
from dancenow.realtime.serve.config import ServeConfig
from dancenow.realtime.serve.encoder import EncodedStream
from dancenow.realtime.serve.http import HTTPProblem
from dancenow.realtime.serve.metrics import PublishCollector, StatsCollector
from dancenow.realtime.serve.publish import Publisher, open_publishers, publish_kind
from dancenow.realtime.serve.rtc import (
    Peer,
    check_offer,
    check_room,
    close_peer,
    configure_ice,
    role_counts,
    send_packets,
    track_frames,
)
from dancenow.realtime.serve.sdp import check_candidates
from dancenow.realtime.serve.studio import Studio, StudioConfig
from dancenow.targets import named_target

log = logging.getLogger(__name__)


class Server:
    """Owns the show and the peers; `start()`/`stop()` run it on the current event loop."""

    def __init__(self, cfg: ServeConfig) -> None:
        self.cfg = cfg
        self.token = cfg.token or secrets.token_urlsafe(16)
        self.peers: dict[str, Peer] = {}
        self.show: Show | None = None
        self.camera: PushSource | None = None  # a performer's browser camera, once one came
        self.stream: EncodedStream | None = None  # the one VP8 encoder, while anyone watches or we publish
        self.publishers: list[Publisher] = []
        self.virtual_camera: VirtualCamera | None = None  # --virtual-camera: the show then always runs
        self.studio = Studio(StudioConfig(root=cfg.targets), lambda r, b: self.tokens.check(r, b, self.token),
                             self._not_showing, lambda: self.show.pipeline if self.show is not None else None)
        self.tokens = http.TokenGuard()  # 20 wrong tokens in a minute from one address: 429 for a minute
        self.registry = CollectorRegistry()
        self.registry.register(StatsCollector(lambda: self.show.stats() if self.show else None, self.peer_counts))
        self.registry.register(PublishCollector(self._stream_status, lambda: [p.status() for p in self.publishers]))
        self._lock = asyncio.Lock()
        self._closing = 0  # peers left but not yet closed and collected
        self._runner: web.AppRunner | None = None
        self._monitor: asyncio.Task | None = None
        self.url = ""
        self.port = cfg.port

    @property
    def track(self) -> EncodedStream | None:
        """The encoded stream while one runs (None when nobody watches and nothing is published)."""
        return self.stream

    def _stream_status(self) -> dict | None:
        return self.stream.status() if self.stream is not None else None

    # --- lifecycle -------------------------------------------------------------------------

    async def create_app(self) -> web.Application:
        """The aiohttp application (the app factory tests hand to aiohttp's TestServer)."""
        http.quiet_bad_requests()
        app = web.Application(client_max_size=self.cfg.max_body * 4, middlewares=[self._guard])
        app.on_response_prepare.append(http.security_headers)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        app.router.add_get("/", http.page("index.html", "watch"))
        app.router.add_get("/perform", http.page("perform.html", "perform"))
        app.router.add_get("/static/{name}", http.static)
        app.router.add_get("/favicon.ico", http.no_content)
        app.router.add_post("/api/offer", self._offer_viewer)
        app.router.add_post("/api/perform", self._offer_performer)
        app.router.add_post("/api/bye", self._bye)
        app.router.add_get("/api/peer/{id}", self._peer)
        app.router.add_post("/api/target", self._target)
        app.router.add_post("/api/background", self._background)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/clock", self._clock)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self.studio.add_routes(app)
        return app

    async def start(self) -> str:
        """Load the target, bind, and serve in the background on this loop. Returns the URL."""
        app = await self.create_app()
        # at shutdown aiohttp waits for requests in flight (60 s by default): one stuck request (a bye,
        # in CI on 2 Dec) must not hold the whole server that long
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=self.cfg.close_timeout)
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
        # a WHIP session goes to an SFU elsewhere: offer the machine's addresses, not loopback alone
        whip = any(publish_kind(url) == "whip" for url in cfg.publish)
        configure_ice(http.is_loopback(cfg.host) and not whip, cfg.consent_interval, cfg.consent_failures)
        if not http.is_loopback(cfg.host):
            log.warning("serving on %s, not loopback: anyone who can reach this address can watch; "
                        "performing and switching targets still need the token", cfg.host)
        if cfg.target is None:
            raise DanceNowError("no target bundle given: pass --target BUNDLE")
        pcfg = PipelineConfig(layout=cfg.layout, stamp_pixels=cfg.stamp, calibration=cfg.calibration,
                              background=cfg.background)
        loop = asyncio.get_running_loop()
        # a file plays on and on; a camera that does not open at all fails here, at start
        self.show = await loop.run_in_executor(
            None, lambda: open_show(cfg.source, cfg.target, pcfg, backend=cfg.backend, loop=True,
                                                    size=cfg.size))
        await loop.run_in_executor(None, self.show.home.probe)
        if isinstance(self.show.home, PushSource):
            self.camera = self.show.home
        await loop.run_in_executor(None, self.studio.resume)  # a job the last server left running
        memory.settle()  # no peer yet: what is loaded now stays, and full collections become cheap
        self._monitor = asyncio.create_task(self._watch_peers(), name="dancenow-peer-monitor")
        if cfg.virtual_camera is not None:  # a camera other programs may open at any time: always on
            async with self._lock:
                await self._start_media()
            self.virtual_camera = VirtualCamera(lambda: self.show.output, self.show.target.resolution,
                                                cfg.virtual_camera)
            await loop.run_in_executor(None, self.virtual_camera.start)
        if cfg.publish:  # publishing: the show runs from the start, watched or not
            async with self._lock:
                await self._start_media()
                self.publishers = open_publishers(cfg.publish, self.stream, self.show.output, cfg.publish_token,
                                                  cfg.bitrate)
            for p in self.publishers:
                p.start()

    async def _on_cleanup(self, app: web.Application) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        publishers, self.publishers = self.publishers, []
        await asyncio.gather(*(p.stop() for p in publishers))  # WHIP sessions DELETEd
        camera, self.virtual_camera = self.virtual_camera, None
        if camera is not None:
            await asyncio.get_running_loop().run_in_executor(None, camera.stop)
        await asyncio.gather(*(self.remove_peer(pid) for pid in list(self.peers)))
        async with self._lock:
            await self._stop_media()
        if self.show is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.show.close)

    # --- media -----------------------------------------------------------------------------

    async def _start_media(self) -> None:
        """First peer (or publishing): start the show and its one encoder (call with the lock held)."""
        if self.stream is not None:
            return
        await asyncio.get_running_loop().run_in_executor(None, self.show.start)
        self.stream = EncodedStream(self.show.output, self.cfg.bitrate)
        self.stream.start()
        if not self.peers and not self._closing:  # what the show built (its tracker) lives as long as it
            memory.settle()

    async def _stop_media(self) -> None:
        """Last peer gone, nothing published, no virtual camera: stop the encoder and the show."""
        if self.stream is None or self.publishers or self.virtual_camera is not None:
            return
        stream, self.stream = self.stream, None
        await stream.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.show.stop)

    async def _pump_camera(self, track: MediaStreamTrack) -> None:
        """A performer's camera frames into the show's push source."""
        async for frame in track_frames(track):
            self.camera.push(frame.to_ndarray(format="rgb24"), time.monotonic())

    # --- peers -----------------------------------------------------------------------------

    async def add_peer(self, offer: dict, role: str) -> dict:
        check_room(self.peers, self.cfg.max_peers, role)
        sdp = check_offer(offer)
        check_candidates(sdp)
        async with self._lock:  # the first peer starts the show before its own connection exists,
            await self._start_media()  # so settling then freezes the show and not this peer
        check_room(self.peers, self.cfg.max_peers, role)  # others may have come in meanwhile
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
                assert self.stream is not None
                if role == "performer":
                    self.camera = self.camera or PushSource("browser")
                    # switching stops the old source, which joins its thread: off the event loop
                    await asyncio.get_running_loop().run_in_executor(None, self.show.switch_source, self.camera)
                peer.track = self.stream.subscribe(f"{role}-{pid}")
            send_packets(pc, peer.track, "sendrecv" if role == "performer" else "sendonly")
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
        """Close a peer and, when it was the last, stop the show. Idempotent."""
        peer = self.peers.pop(pid, None)
        if peer is None:
            return False
        self._closing += 1
        try:
            await close_peer(peer, self.cfg.close_timeout)
            memory.reclaim()  # its connection is cycles that the collector would otherwise free hours later
        finally:
            self._closing -= 1
        async with self._lock:
            if peer.role == "performer" and self.show is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.show.switch_source, None)
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

    def peer_counts(self) -> dict[str, int]:
        return role_counts(self.peers)

    def status(self) -> dict:
        """The JSON of /api/status: the show's typed stats plus the server's own figures."""
        show = self.show
        stats = show.stats().to_dict() if show is not None else {"running": False}
        stats.update(self.peer_counts(), bundle=str(show.target.bundle if show else self.cfg.target),
                     max_peers=self.cfg.max_peers, streaming=self.track is not None,
                     sent_frames=self.track.frames if self.track else 0, source_spec=self.cfg.source,
                     server_ms=time.time() * 1000.0,
                     engine_choice=show.target.engine.choice if show is not None else None,
                     background=show.background if show is not None else self.cfg.background,
                     backgrounds=list(show.target.backgrounds) if show is not None else [],
                     encoder=self._stream_status(), publish=[p.status() for p in self.publishers],
                     virtual_camera=self.virtual_camera.status() if self.virtual_camera else None)
        return stats

    async def switch_target(self, bundle: str) -> dict:
        try:  # "~nobody/x" (no such home), a name too long for the file system: found by the fuzzer
            path = named_target(bundle, self.studio.root) or Path(bundle).expanduser()  # a name, or a folder
            is_bundle = (path / "manifest.json").is_file()
        except (RuntimeError, OSError, ValueError) as e:
            raise HTTPProblem(400, f"cannot use {bundle[:200]!r} as a folder ({type(e).__name__}): "
                                   "give the bundle folder's full path") from None
        if not is_bundle:
            raise HTTPProblem(400, f"not a target bundle: {str(path)[:200]} has no manifest.json")
        try:
            target = await asyncio.get_running_loop().run_in_executor(None, self.show.switch_target, path)
        except (DanceNowError, OSError) as e:
            raise HTTPProblem(400, str(e)) from None
        log.info("switched target to %s (%s)", path, target.engine.name)
        return {"target": str(path), "backend": target.engine.name}

    def _not_showing(self, folder: Path) -> None:
        if self.show is not None and Path(self.show.target.bundle).resolve() == folder.resolve():
            raise HTTPProblem(409, "this target is on stage: switch to another one first")

    # --- HTTP handlers ---------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if http.is_loopback(self.cfg.host) and not http.loopback_host_header(request.host):
            # a page on another site reaching us through DNS rebinding sends its own host name
            return http.error(403, f"unexpected Host header {request.host!r}: open the page via 127.0.0.1")
        try:
            return await handler(request)
        except HTTPProblem as e:
            return http.error(e.status, str(e), e.headers)
        except web.HTTPRequestEntityTooLarge:
            return http.error(400, f"request too large: at most {self.cfg.max_body} bytes")

    async def _body(self, request: web.Request, json_only: bool = True) -> dict:
        return await http.json_body(request, self.cfg.max_body, json_only)

    async def _offer_viewer(self, request: web.Request) -> web.Response:
        return web.json_response(await self.add_peer(await self._body(request), "viewer"))

    async def _offer_performer(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.tokens.check(request, body, self.token)
        return web.json_response(await self.add_peer(body, "performer"))

    async def _bye(self, request: web.Request) -> web.Response:
        body = await self._body(request, json_only=False)  # sendBeacon sends text/plain
        pid = body.get("id")
        if not isinstance(pid, str):
            raise HTTPProblem(400, "bye needs the peer id the offer answered with")
        return web.json_response({"closed": await self.remove_peer(pid)})

    async def _peer(self, request: web.Request) -> web.Response:
        """Whether the server still holds this peer: a page whose connection the server dropped
        (its machine stalled past the ICE consent window) learns it at once and rejoins."""
        peer = self.peers.get(request.match_info["id"])
        if peer is None:
            raise HTTPProblem(404, "no such peer: it left or was dropped; connect again")
        return web.json_response({"role": peer.role, "state": peer.pc.connectionState})

    async def _target(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.tokens.check(request, body, self.token)
        if not isinstance(body.get("target"), str):
            raise HTTPProblem(400, 'give the bundle folder as {"target": "path/to/bundle"}')
        return web.json_response(await self.switch_target(body["target"]))

    async def _background(self, request: web.Request) -> web.Response:
        """What shows behind the person for everyone watching (the performer page's "room" switch).
        Named backgrounds only: a page does not get to pick files on this machine."""
        body = await self._body(request)
        self.tokens.check(request, body, self.token)
        name, named = body.get("background"), self.show.target.backgrounds
        if name not in named:
            raise HTTPProblem(400, f"background {str(name)[:40]!r}: this target can show {', '.join(named)} "
                                   '(as {"background": "green"}; an image file only with `dancenow serve --background`)')
        # the pipeline's lock, which a starting show holds while it warms up: off the event loop
        await asyncio.get_running_loop().run_in_executor(None, self.show.set_background, name)
        log.info("background: %s", name)
        return web.json_response({"background": name})

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status(), dumps=lambda o: json.dumps(o, default=str))

    async def _clock(self, request: web.Request) -> web.Response:
        return web.json_response({"ms": time.time() * 1000.0})

    async def _metrics(self, request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(self.registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def _healthz(self, request: web.Request) -> web.Response:
        ok = self.show is not None
        return web.json_response({"ok": ok}, status=200 if ok else 503)
