"""HTTP and security for the server: headers, the loopback guard, JSON bodies, the token, errors.

Nothing here knows about WebRTC; `server.py` wires these into its aiohttp application.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from pathlib import Path

from aiohttp import web

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
    """A client error answered as JSON {"error": message} with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"


def page(name: str):
    """A handler serving one of the package's HTML pages."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=(WEB_DIR / name).read_bytes(), content_type="text/html")

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


def check_token(request: web.Request, body: dict, token: str) -> None:
    """The bearer token (header, or "token" in the body) must be the server's: compared in constant time."""
    auth = request.headers.get("Authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else body.get("token")
    if not isinstance(given, str) or not given:
        raise HTTPProblem(403, "a token is needed: the one `dancenow serve` printed at start")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPProblem(403, "wrong token")
