"""Where something stuck is waiting: a coroutine's chain of awaits, a loop's tasks, every thread's
stack. For the logs a hang leaves behind (a task's own stack shows only its outermost frame)."""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback
from typing import Any


def awaiting(coro: Any) -> str:
    """`outer (file.py:12) > inner (other.py:34) > ...`: where a suspended coroutine waits."""
    chain = []
    while coro is not None and len(chain) < 30:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " > ".join(chain)


def where(loop: asyncio.AbstractEventLoop) -> str:
    """Every task of `loop` with its awaits, and every thread's stack (safe to call from another
    thread: what it reads may be a moment old, good enough for a report)."""
    out = [f"task {task.get_name()}: {awaiting(task.get_coro())}" for task in asyncio.all_tasks(loop)]
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        out.append(f"thread {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame, limit=12)))
    return "\n".join(out)
