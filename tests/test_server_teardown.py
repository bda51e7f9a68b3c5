"""A peer whose WebRTC close never returns must not hold the server (seen once in CI: a performer's
bye never answered, and `stop` then waited out aiohttp's 60 s graceful shutdown on it).

The hang is injected where it was seen, the server side's `RTCPeerConnection.close`; everything
else is real: the server, its pipeline and encoder, aiortc clients over loopback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp

from dancenow.realtime.bench.rtc_client import Viewer
from dancenow.realtime.serve.server import ServeConfig, Server
from dancenow.realtime.serve.thread import ServerThread

CLOSE_TIMEOUT = 1.0


async def _join(server: Server, session: aiohttp.ClientSession) -> Viewer:
    viewer = await Viewer(server.url, stamps=False).connect(session)
    await viewer.wait_frames(3)

    pc = server.peers[viewer.id].pc
    close = pc.close

    async def wedged() -> None:
        """Never returns by itself; once given up on (cancelled) it closes for real, so the aiortc
        tasks of this test end with it rather than leak into the next test."""
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await close()
            raise

    pc.close = wedged  # type: ignore[method-assign]
    return viewer


def test_a_peer_that_never_closes_is_dropped_and_stop_is_prompt(live_bundle: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="dancenow.realtime.serve.rtc")
    st = ServerThread(ServeConfig(target=live_bundle, port=0, close_timeout=CLOSE_TIMEOUT))
    with st:
        session = st.call(lambda s: _make_session(), timeout=10)
        viewers: list[Viewer] = []
        try:
            first = st.call(lambda s: _join(s, session), timeout=60)
            viewers.append(first)
            second = st.call(lambda s: _join(s, session), timeout=60)
            viewers.append(second)
            t0 = time.monotonic()
            st.call(lambda s: first.bye(session), timeout=30)
            took = time.monotonic() - t0
            print(f"bye of a peer that never closes answered after {took:.1f} s")
            assert took < CLOSE_TIMEOUT + 3.0
            assert st.call(lambda s: list(s.peers)) == [second.id]
            assert st.call(lambda s: s.track is not None), "the other viewer lost its stream"
            got = second.frames
            st.call(lambda s: second.wait_frames(5), timeout=30)
            assert second.frames > got
            assert "dropped without it" in caplog.text and "stuck in close (rtc.py" in caplog.text
            assert "> wedged (test_server_teardown.py" in caplog.text  # the warning says where it hung
            where = st.where()  # what a call that times out logs: the tasks' awaits and the threads
            assert "task dancenow-encoder: _run (encoder.py" in where and "thread dancenow-server" in where
        finally:
            st.call(lambda s: _silence(session, *viewers), timeout=30)
        t0 = time.monotonic()
    took = time.monotonic() - t0  # the second peer still connected, its close wedged too
    print(f"stop with a peer that never closes took {took:.1f} s")
    assert took < CLOSE_TIMEOUT + 5.0
    assert caplog.text.count("dropped without it") == 2


async def _make_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()


async def _silence(session: aiohttp.ClientSession, *viewers: Viewer) -> None:
    """End the clients without a word to the server (their sockets closed first), so the server
    still holds the second peer when it stops."""
    for v in viewers:
        v.vanish()
        await v.close(bye=False)
    await session.close()
