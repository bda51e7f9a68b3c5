"""A latest-value slot: the only kind of queue between live stages.

`put` replaces what is there, so a stage that falls behind drops old items and nothing grows.
Readers ask for an item newer than the one they had (by sequence number), from threads
(`get`) or from asyncio (`aget`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._seq = 0
        self._closed = False
        self._read = True
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []  # `aget`s asleep
        self.dropped = 0  # items replaced before anyone read them
        # each drop's time (time.monotonic) and the seconds since the put it replaced: diagnosis
        self.drop_times: deque[tuple[float, float]] = deque(maxlen=64)
        self._put_at = 0.0

    @property
    def seq(self) -> int:
        return self._seq

    def put(self, item: T) -> int:
        with self._cond:
            now = time.monotonic()
            if self._item is not None and not self._read:
                self.dropped += 1
                self.drop_times.append((now, now - self._put_at))
            self._put_at = now
            self._item = item
            self._seq += 1
            self._read = False
            self._cond.notify_all()
            self._wake()
            return self._seq

    def get(self, after: int = 0, timeout: float | None = None) -> tuple[int, T] | None:
        """The newest item with sequence number > `after`; None on timeout or when closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > after or self._closed, timeout):
                return None
            if self._seq <= after:
                return None
            self._read = True
            self._cond.notify_all()  # wakes `wait_taken`
            return self._seq, self._item  # type: ignore[return-value]

    def wait_taken(self, timeout: float | None = None) -> bool:
        """Block until the current item was read (or there is none, or the slot closed).

        Lossless (offline) runs call this before `put` so nothing is dropped; live runs never do.
        """
        with self._cond:
            return self._cond.wait_for(lambda: self._read or self._item is None or self._closed, timeout)

    def peek(self) -> tuple[int, T | None]:
        with self._cond:
            return self._seq, self._item

    async def aget(self, after: int = 0, timeout: float | None = None) -> tuple[int, T] | None:
        """Like `get`, without blocking the event loop: it sleeps until `put` or `close` wakes it
        (no polling: on two cores every spin is taken from the generator)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            with self._cond:
                if self._seq > after or self._closed:
                    return self.get(after, timeout=0)
                fut = loop.create_future()
                self._waiters.append((loop, fut))
            left = None if deadline is None else deadline - loop.time()
            try:
                # not asyncio.wait_for: on Python 3.11 it returns instead of raising when a cancel
                # and the wake-up land in the same loop turn, and a cancelled reader read on forever
                done, _ = await asyncio.wait({fut}, timeout=left)
            finally:
                fut.cancel()  # no-op once woken
                with self._cond:
                    if (loop, fut) in self._waiters:
                        self._waiters.remove((loop, fut))
            if not done:
                return None

    def _wake(self) -> None:
        """Wake every sleeping `aget` on its own loop (call with the lock held)."""
        waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._wake()

    @property
    def closed(self) -> bool:
        return self._closed


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
