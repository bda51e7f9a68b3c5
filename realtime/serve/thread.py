"""A `Server` on its own event loop in a background thread (benchmarks, tests, embedding)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

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
        """Every task of the server's loop and every thread, with their stacks: what a hang needs."""
        out = []
        for task in asyncio.all_tasks(self.loop):  # read from another thread: good enough for a report
            out.append(f"task {task.get_name()}: " + " > ".join(_awaiting(task.get_coro())))
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            stack = "".join(traceback.format_stack(frame, limit=12))
            out.append(f"thread {names.get(ident, ident)}\n{stack}")
        return "\n".join(out)

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


def _awaiting(coro: Any) -> list[str]:
    """Where a suspended coroutine waits, outermost first (a task's own stack shows only its top)."""
    chain = []
    while coro is not None and len(chain) < 30:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return chain
