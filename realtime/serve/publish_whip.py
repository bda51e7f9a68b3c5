"""WHIP publishing (RFC 9725): the shared VP8 packets to an SFU or ingest, aiortc as the client.

One session at a time: POST an SDP offer (after ICE gathering: aiortc does no trickle) with the
bearer token, take the 201's SDP answer and Location (the session resource), send. When the
session fails it DELETEs what is left of it and tries again with exponential backoff; `stop()`
DELETEs the session, as the RFC asks, so the SFU frees it at once.

A server that vanishes without a word is noticed two ways: ICE consent failing (several seconds
with the server's consent settings), or sooner, the SFU's RTCP receiver reports stopping for
`silence` seconds after it had been sending them (Janus sends one about every second).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from dancenow.realtime.serve import http
from dancenow.realtime.serve.encoder import EncodedStream, PacketTrack
from dancenow.realtime.serve.publish import Backoff, PublishState, redact
from dancenow.realtime.serve.rtc import send_packets

log = logging.getLogger(__name__)


async def until_set(event: asyncio.Event, timeout: float) -> bool:
    """Whether `event` was set within `timeout` s. asyncio.wait, not wait_for: on Python 3.11
    wait_for returns instead of raising when our cancel (a stop) lands in the same loop turn as the
    event (the encoder's hang of 3 Dec was that race), and the publisher would go on publishing."""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return event.is_set()


class WhipError(Exception):
    """The WHIP server refused or failed the session: the message says why and what to do."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # the server's Retry-After, in seconds, when it gave one


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def _explain(status: int, body: str) -> str:
    hint = {401: "check --publish-token", 403: "check --publish-token", 404: "check the endpoint in the --publish URL",
            503: "the server is not ready; retrying"}.get(status, "retrying")
    return f"WHIP server answered {status} {body.strip()[:120]!r}: {hint}"


class WhipPublisher:
    """Keeps one WHIP session to `url` publishing `stream`'s packets while it runs."""

    kind = "whip"

    def __init__(self, url: str, stream: EncodedStream, token: str | None = None, backoff: Backoff | None = None,
                 silence: float = 2.5, request_timeout: float = 10.0) -> None:
        self.url = url
        self.stream = stream
        self.token = token
        # 0.5, 0.75, 1.1, 1.7, 2.5 ... 5 s: an SFU coming back (503 while it reconnects its parts) is met soon
        self.backoff = backoff or Backoff(0.5, 5.0, factor=1.5)
        self.silence = silence
        self.request_timeout = request_timeout
        self.state = PublishState("whip", redact(url))
        self.resource: str | None = None
        self._pc: RTCPeerConnection | None = None
        self._track: PacketTrack | None = None
        self._task: asyncio.Task | None = None
        if token and urlsplit(url).scheme == "http" and not http.is_loopback(urlsplit(url).hostname or ""):
            log.warning("publishing to %s over plain http: the bearer token travels unencrypted; use https",
                        self.state.url)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dancenow-whip")

    def status(self) -> dict:
        return {**self.state.to_dict(), "session": redact(self.resource) if self.resource else None}

    async def stop(self) -> None:
        """End the session (DELETE) and stop trying."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._end_session()
        self.state.set("stopped")
        self.state.retry_in = None

    # --- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.request_timeout)) as session:
            while True:
                self.state.attempts += 1
                self.state.retry_in = None
                try:
                    await self._publish(session)
                    ended = await self._watch()
                    self.state.set("retrying", ended)
                    log.warning("WHIP session to %s ended (%s): reconnecting", self.state.url, ended)
                    retry_after = None
                except Exception as e:  # noqa: BLE001 (HTTP, ICE, DTLS, a bad answer: all mean "try again later")
                    retry_after = getattr(e, "retry_after", None)
                    why = str(e) if isinstance(e, WhipError) else f"{type(e).__name__}: {e}".rstrip(": ")
                    if self.state.state != "retrying" or self.state.last_error != why:
                        log.warning("WHIP publishing to %s: %s", self.state.url, why)
                    self.state.set("retrying", why)
                await self._end_session()
                delay = self.backoff.next()
                if retry_after is not None:  # the server said when (RFC 9110), within our maximum
                    delay = min(retry_after, self.backoff.maximum)
                self.state.retry_in = delay
                await asyncio.sleep(delay)

    async def _publish(self, session: aiohttp.ClientSession) -> None:
        self.state.set("connecting" if self.state.state != "retrying" else "retrying")
        pc = self._pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self._connected = asyncio.Event()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("connected", "failed", "closed"):
                self._connected.set()

        self._track = self.stream.subscribe("whip")
        self._sender = send_packets(pc, self._track)
        await pc.setLocalDescription(await pc.createOffer())  # returns once ICE gathering is complete
        headers = {"Content-Type": "application/sdp"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with session.post(self.url, data=pc.localDescription.sdp, headers=headers) as r:
            body = await r.text()
            if r.status != 201:
                raise WhipError(_explain(r.status, body), _retry_after(r.headers.get("Retry-After")))
            location = r.headers.get("Location")
            if not location:
                raise WhipError("the WHIP server answered 201 without a Location header: it does not follow RFC 9725")
            self.resource = urljoin(str(r.url), location)
        if not body.startswith("v=0"):
            raise WhipError("the WHIP server's answer is not an SDP (it does not start with v=0)")
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        if not await until_set(self._connected, self.request_timeout):
            raise WhipError(f"the WebRTC connection to the WHIP server did not come up within {self.request_timeout:g} s "
                            "(ICE or DTLS)")
        if pc.connectionState != "connected":
            raise WhipError(f"the WebRTC connection to the WHIP server {pc.connectionState} (ICE or DTLS)")
        self.backoff.reset()
        self.state.set("live")
        log.info("publishing over WHIP to %s (session %s)", self.state.url, redact(self.resource))

    async def _watch(self) -> str:
        """Until the session is lost; returns why."""
        pc, last_report, self._counted = self._pc, None, 0
        while True:
            await asyncio.sleep(0.5)
            if pc.connectionState != "connected":
                return f"the connection {pc.connectionState}"
            self.state.frames += self._track.sent - self._counted
            self._counted = self._track.sent
            report = next((s for s in (await self._sender.getStats()).values() if s.type == "remote-inbound-rtp"), None)
            if report is not None:
                last_report = report.timestamp
            if last_report is not None:
                quiet = (datetime.datetime.now(datetime.timezone.utc) - last_report).total_seconds()
                if quiet > self.silence:
                    return f"no RTCP receiver report from the server for {quiet:.1f} s"

    async def _end_session(self) -> None:
        """DELETE the session resource (best effort) and close the peer connection."""
        resource, self.resource = self.resource, None
        pc, self._pc = self._pc, None
        track, self._track = self._track, None
        if resource is not None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3.0)) as s, \
                        s.delete(resource, headers=headers) as r:
                    if r.status >= 400 and r.status != 404:
                        log.info("WHIP DELETE %s answered %d", redact(resource), r.status)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                log.info("WHIP DELETE %s failed (%s): the server may be gone", redact(resource), type(e).__name__)
        if pc is not None:
            await pc.close()
        if track is not None:
            track.stop()  # a sender that never started does not stop its track itself
