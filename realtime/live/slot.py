"""A latest-value slot: the only kind of queue between live stages.

`put` replaces what is there, so a stage that falls behind drops old items and nothing grows.
Readers ask for an item newer than the one they had (by sequence number), from threads
(`get`) or from asyncio (`aget`).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._seq = 0
        self._closed = False
        self._read = True
        self.dropped = 0  # items replaced before anyone read them

    @property
    def seq(self) -> int:
        return self._seq

    def put(self, item: T) -> int:
        with self._cond:
            if self._item is not None and not self._read:
                self.dropped += 1
            self._item = item
            self._seq += 1
            self._read = False
            self._cond.notify_all()
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
        """Like `get`, without blocking the event loop (polls a thread-safe slot cheaply)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            got = self.get(after, timeout=0)
            if got is not None or self._closed:
                return got
            if deadline is not None and loop.time() >= deadline:
                return None
            await asyncio.sleep(0.002)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
