"""A `Server` on its own event loop in a background thread (benchmarks, tests, embedding)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any

from dancenow.realtime.serve import hang
from dancenow.realtime.serve.server import ServeConfig, Server

log = logging.getLogger(__name__)


class ServerThread:
    """`with ServerThread(cfg) as st:` starts it (and raises its startup error, if any);
    `st.call(fn)` runs `fn(server)` on the server's loop (awaiting it when it is a coroutine)."""

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

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            log.error("a call into the server took over %.0f s; where everything was:\n%s", timeout, self.where())
            raise

    def where(self) -> str:
        """Every task of the server's loop with its awaits, and every thread's stack."""
        return hang.where(self.loop)

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
