"""Memory over a long show: what each departed peer leaves behind is handed back when it leaves.

An aiortc peer (its connection, ICE, DTLS and SRTP state, its sender) is a web of reference
cycles, so it is freed only by the collector's full pass. In a server whose imports and models
make some 150,000 long-lived objects, Python runs that pass about once an hour (it waits for 10
middle-generation passes and for a quarter as many new long-lived objects as there are), so with
viewers joining and leaving every minute the 60-minute soak's RSS rose 1.2 MB a minute (issue 27).
Two steps: `settle` moves everything loaded so far out of the collector's sight (`gc.freeze`:
never garbage, and never walked again), which shortens a full pass; the server settles at
start-up and again each time the show starts with no peer connected, since starting it builds
MediaPipe's tracker (about 57,000 tracked objects; frozen, a full pass beside a performer walks
3,400 objects in 0.6 ms instead of 58,000 in 18 ms, Intel Xeon with AMX, and the 2-hour soak's
16,000-20,000 instead of ~70,000).
`reclaim` runs that pass when a peer has left, then asks glibc to hand back freed pages (its
per-thread arenas otherwise keep them)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import time

log = logging.getLogger(__name__)


def settle() -> int:
    """Collect once and freeze what survives (call with no peer connected or closing: a frozen
    object is never collected). What an earlier call froze is let go first, so a stopped show's
    tracker is collected rather than kept. Returns the number of objects frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@functools.lru_cache(maxsize=1)
def _trim():
    """glibc's malloc_trim, or None where the C library has none (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def reclaim() -> dict[str, float]:
    """A full collection, then the C library's free pages back to the system: unreachable objects
    found, and milliseconds taken by each step."""
    t0 = time.perf_counter()
    found = gc.collect()
    t1 = time.perf_counter()
    trim = _trim()
    if trim is not None:
        trim(0)
    t2 = time.perf_counter()
    log.debug("reclaimed %d objects in %.1f ms, trimmed in %.1f ms", found, 1e3 * (t1 - t0), 1e3 * (t2 - t1))
    return {"unreachable": found, "collect_ms": 1e3 * (t1 - t0), "trim_ms": 1e3 * (t2 - t1)}
