"""HTTP and security for the server: headers, the loopback guard, JSON bodies, the token, errors.

Nothing here knows about WebRTC; `server.py` wires these into its aiohttp application.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

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


class HTTPProblem(Exception):
    """A client error answered as JSON {"error": message} with `status` (and `headers`, e.g. Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_host_header(host: str | None) -> bool:
    """Whether a Host header names this machine's loopback (a DNS-rebinding page sends its own name)."""
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return is_loopback(name.strip("[]"))


class _BadRequestLine(logging.Filter):
    """aiohttp logs every malformed request it answers 400 as an ERROR with a traceback; such a
    request is the client's mistake (and a flood of them must not flood the log): one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 500) < 500:
            first = str(exc.message).strip().splitlines()[0] if exc.message else ""
            record.msg, record.args, record.exc_info = f"bad request answered {exc.code}: %s", (first,), None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_bad_requests() -> None:
    """Install `_BadRequestLine` on aiohttp's server logger (once)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _BadRequestLine) for f in logger.filters):
        logger.addFilter(_BadRequestLine())


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


async def no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"


def page(name: str, title: str):
    """A handler serving one of the package's pages: its body put into the one shared shell.html."""
    shell = (WEB_DIR / "shell.html").read_text(encoding="utf-8")
    body = (WEB_DIR / name).read_text(encoding="utf-8")
    html = shell.replace("{title}", title).replace("{body}", body).encode()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=html, content_type="text/html")

    return handler


async def static(request: web.Request) -> web.Response:
    """Only the files of this package's web/ folder, by exact name (no paths, no traversal)."""
    allowed = {p.name: p for p in WEB_DIR.iterdir() if p.is_file() and p.suffix in CONTENT_TYPES}
    path = allowed.get(request.match_info["name"])
    if path is None:
        return error(404, "no such file")
    return web.Response(body=path.read_bytes(), content_type=CONTENT_TYPES[path.suffix])


async def json_body(request: web.Request, max_body: int, json_only: bool = True) -> dict:
    """The request's JSON object, or an HTTPProblem(400) saying what is wrong with it."""
    if request.content_length is not None and request.content_length > max_body:
        raise HTTPProblem(400, f"request too large: at most {max_body} bytes")
    if json_only and request.content_type != "application/json":
        raise HTTPProblem(400, "send JSON with Content-Type: application/json")
    raw = await request.content.read(max_body + 1)
    if len(raw) > max_body:
        raise HTTPProblem(400, f"request too large: at most {max_body} bytes")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise HTTPProblem(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HTTPProblem(400, "the body must be a JSON object")
    return body


def given_token(request: web.Request, body: dict) -> str | None:
    """The bearer token of the Authorization header, else "token" in the body; None when neither."""
    auth = request.headers.get("Authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else body.get("token")
    return given if isinstance(given, str) and given else None


def check_token(request: web.Request, body: dict, token: str) -> None:
    """The bearer token (header, or "token" in the body) must be the server's: compared in constant time."""
    given = given_token(request, body)
    if given is None:
        raise HTTPProblem(403, "a token is needed: the one `dancenow serve` printed at start")
    # surrogatepass: a header's stray bytes (or a JSON "\ud800") arrive as lone surrogates
    if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode()):
        raise HTTPProblem(403, "wrong token")


class TokenGuard:
    """Wrong tokens counted per client address: after `limit` of them within `window` seconds, that
    address is answered 429 (with Retry-After) for `block` seconds, even with the right token, so
    guessing the token from one machine takes forever. Other addresses are not affected; at most
    `max_addresses` are remembered (the oldest counts are forgotten first)."""

    def __init__(self, limit: int = 20, window: float = 60.0, block: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, max_addresses: int = 10_000) -> None:
        self.limit, self.window, self.block, self.clock = limit, window, block, clock
        self.max_addresses = max_addresses
        self._wrong: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}

    def check(self, request: web.Request, body: dict, token: str) -> None:
        """Like `check_token`, answering 429 to an address that guessed wrong too often."""
        addr, now = request.remote or "unknown", self.clock()
        until = self._blocked.get(addr)
        if until is not None and now < until:
            wait = math.ceil(until - now)
            raise HTTPProblem(429, f"too many wrong tokens from {addr}: try again in {wait} s",
                              headers={"Retry-After": str(wait)})
        self._blocked.pop(addr, None)
        try:
            check_token(request, body, token)
        except HTTPProblem:
            if given_token(request, body) is not None:  # a guess, not a page that forgot the token
                self._count(addr, now)
            raise

    def _count(self, addr: str, now: float) -> None:
        times = self._wrong.setdefault(addr, deque())
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            del self._wrong[addr]
            self._blocked[addr] = now + self.block
            log.warning("%d wrong tokens from %s within %.0f s: refusing it for %.0f s", self.limit, addr,
                        self.window, self.block)
        if len(self._wrong) + len(self._blocked) > self.max_addresses:
            self._forget(now)

    def _forget(self, now: float) -> None:
        self._blocked = {a: t for a, t in self._blocked.items() if t > now}
        self._wrong = {a: t for a, t in self._wrong.items() if t and t[-1] > now - self.window}
        for addr in list(self._wrong)[: max(0, len(self._wrong) + len(self._blocked) - self.max_addresses)]:
            del self._wrong[addr]  # dicts keep insertion order: the oldest first
