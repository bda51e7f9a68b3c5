"""Publishing the generated stream beyond this machine: what `--publish URL` means, and what the
WHIP and RTMP publishers share (their state as shown in /api/status and /metrics, the backoff
between attempts).

- `https://HOST/whip/ENDPOINT` (http for loopback tests): WHIP (RFC 9725) to an SFU or ingest
  (MediaMTX, LiveKit ingress, Janus through simple-whip-server, Cloudflare Stream, ...): the same
  VP8 packets the local viewers get, `publish_whip.py`.
- `rtmp://HOST/APP/KEY` (rtmps too): H.264 + AAC silence through PyAV's flv muxer, for Twitch,
  YouTube and any RTMP ingest, `publish_rtmp.py`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit, urlunsplit

from dancenow.errors import DanceNowError
from dancenow.realtime.live.frame import LiveFrame
from dancenow.realtime.live.slot import LatestSlot

if TYPE_CHECKING:
    from dancenow.realtime.serve.encoder import EncodedStream

WHIP_SCHEMES = ("http", "https")
RTMP_SCHEMES = ("rtmp", "rtmps")


def publish_kind(url: str) -> str:
    """"whip" or "rtmp" for a usable --publish URL; a one-line error saying what to give otherwise."""
    expected = "give https://HOST/whip/ENDPOINT (WHIP) or rtmp://HOST/APP/KEY (RTMP)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as e:
        raise DanceNowError(f"--publish {url!r} is not a URL ({e}): {expected}") from None
    if parts.scheme not in WHIP_SCHEMES + RTMP_SCHEMES:
        raise DanceNowError(f"--publish {url!r}: unknown scheme {parts.scheme or '(none)'!r}: {expected}")
    if not parts.hostname:
        raise DanceNowError(f"--publish {url!r} names no host: {expected}")
    if parts.scheme in RTMP_SCHEMES:
        if len([p for p in parts.path.split("/") if p]) < 2:
            raise DanceNowError(f"--publish {url!r}: an RTMP URL needs an application and a stream key: "
                                "rtmp://HOST/APP/KEY (e.g. rtmp://live.twitch.tv/app/YOUR_KEY)")
        return "rtmp"
    if parts.path in ("", "/"):
        raise DanceNowError(f"--publish {url!r} names no WHIP endpoint: give its full URL, https://HOST/whip/ENDPOINT")
    return "whip"


def redact(url: str) -> str:
    """The URL as shown in status and logs: no credentials, no query, an RTMP stream key hidden."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    netloc = f"[{netloc}]" if ":" in netloc else netloc
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path
    if parts.scheme in RTMP_SCHEMES:
        path = path.rstrip("/").rsplit("/", 1)[0] + "/****"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


class Backoff:
    """Waits between attempts: `initial`, times `factor` each time up to `maximum`; `reset()` after
    a session that went live."""

    def __init__(self, initial: float = 0.5, maximum: float = 8.0, factor: float = 2.0) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self._next = initial

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * self.factor, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


@dataclass
class PublishState:
    """What a publisher reports: `state` is "connecting", "live", "retrying" or "stopped"."""

    kind: str
    url: str  # redacted
    state: str = "connecting"
    sessions: int = 0  # sessions that went live
    attempts: int = 0
    frames: int = 0
    last_error: str | None = None
    retry_in: float | None = None
    live_since: float | None = None  # time.monotonic() when the current session went live
    history: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic(), state), the last ones

    def set(self, state: str, error: str | None = None) -> None:
        if error is not None:
            self.last_error = error[:300]
        if state == self.state:
            return
        self.state = state
        now = time.monotonic()
        if state == "live":
            self.sessions += 1
            self.live_since = now
        elif self.live_since is not None:
            self.live_since = None
        self.history = [*self.history[-19:], (now, state)]

    def to_dict(self) -> dict:
        up = round(time.monotonic() - self.live_since, 1) if self.live_since is not None else None
        return {"kind": self.kind, "url": self.url, "state": self.state, "sessions": self.sessions,
                "attempts": self.attempts, "frames": self.frames, "live_for_s": up,
                "retry_in_s": self.retry_in, "last_error": self.last_error}


class Publisher(Protocol):
    """What the server needs of a publisher: start it, stop it (ending its session), its status."""

    kind: str

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> dict: ...


def open_publishers(urls: tuple[str, ...], stream: EncodedStream, frames: LatestSlot[LiveFrame],
                    token: str | None, bitrate: int) -> list[Publisher]:
    """One publisher per URL: WHIP sends `stream`'s packets; RTMP encodes `frames` as H.264."""
    # imported here: both publisher modules import this one for PublishState and Backoff
    from dancenow.realtime.serve.publish_rtmp import RtmpPublisher
    from dancenow.realtime.serve.publish_whip import WhipPublisher

    return [WhipPublisher(url, stream, token) if publish_kind(url) == "whip" else RtmpPublisher(url, frames, bitrate)
            for url in urls]
