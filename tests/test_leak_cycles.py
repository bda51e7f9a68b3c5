"""100 connect/disconnect cycles of real aiortc clients against the real server (ten batches of ten:
five leave cleanly with a bye and a DTLS close, five go silent with their UDP sockets closed behind
aiortc's back), then Chromium tabs whose renderer is killed (SIGKILL) mid-stream. Afterwards nothing is left
over: no peers, no asyncio tasks, no threads, no file descriptors, no UDP sockets, and RSS grew by at
most 30 MB. The show starts and stops with every batch (its first viewer starts it, its last stops it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from dancenow.realtime.bench.common import rss_mb
from dancenow.realtime.bench.rtc_client import Viewer
from dancenow.realtime.bench.web import launch, wait_for
from dancenow.realtime.serve import memory
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

pytestmark = [pytest.mark.slow, pytest.mark.browser]
BATCHES, BATCH = 10, 10
TABS = 3
MAX_RSS_GROWTH_MB = 30.0


def udp_sockets() -> int:
    """UDP sockets this process holds: its socket descriptors whose inode is in /proc/self/net/udp{,6}."""
    inodes = set()
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        try:
            with open(table) as f:
                inodes |= {line.split()[9] for line in list(f)[1:]}
        except OSError:
            pass
    held = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        held += link.startswith("socket:[") and link[8:-1] in inodes
    return held


def usage() -> dict[str, float]:
    """What the process holds. Freed heap is handed back to the system first (glibc's malloc_trim),
    so RSS counts memory still in use, not arenas that a finished show's threads left free."""
    memory.reclaim()
    return {"fds": len(os.listdir("/proc/self/fd")), "udp": udp_sockets(),
            "threads": len(os.listdir("/proc/self/task")), "rss_mb": round(rss_mb(), 1)}


async def _batch(url: str, n: int) -> list[Viewer]:
    """`n` viewers at once; each gets frames; half say bye and close, half vanish (returned: the
    client side of those is closed once the server has dropped them)."""
    async with aiohttp.ClientSession() as session:
        viewers = await asyncio.gather(*(Viewer(url, stamps=False).connect(session) for _ in range(n)))
        await asyncio.gather(*(v.wait_frames(3) for v in viewers))
        clean, abrupt = viewers[: n // 2], viewers[n // 2:]
        await asyncio.gather(*(v.close(session=session) for v in clean))
        for v in abrupt:
            v.vanish()
    return abrupt


def _idle(st: ServerThread) -> tuple[int, int, bool]:
    return st.call(lambda s: (len(s.peers), s.task_count(), s.track is not None))


def _cycles(st: ServerThread, batches: int, idle_tasks: int) -> float:
    t0 = time.monotonic()
    for _ in range(batches):
        abrupt = st.call(lambda s: _batch(s.url, BATCH), timeout=120)
        # the server notices the silent ones through ICE consent checks (3 missed at 1 s)
        wait_for(lambda: _idle(st)[0] == 0, 15, "the vanished peers to be dropped")
        st.call(lambda s, gone=abrupt: asyncio.gather(*(v.close(bye=False) for v in gone)))
        wait_for(lambda: _idle(st) == (0, idle_tasks, False), 10, "idle tasks after a batch")
        print(f"batch done at {time.monotonic() - t0:.0f} s: {usage()}", flush=True)
    return time.monotonic() - t0


def _crashed(page) -> bool:
    try:
        page.evaluate("1")
    except Exception as e:  # noqa: BLE001 - Playwright's Error: "Target crashed"
        return "crash" in str(e).lower()
    return False


def _kill_tabs(st: ServerThread) -> None:
    """Viewer tabs in Chromium, streaming, then their renderer processes killed with SIGKILL (no
    pagehide, no bye: the server must notice through ICE consent checks)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            pages = [browser.new_page() for _ in range(TABS)]
            for p in pages:
                p.goto(st.url + "/")
            for p in pages:
                wait_for(lambda p=p: p.evaluate("() => (window.dancenow.framesDecoded || 0) > 10"), 60, "decoded frames")
            assert _idle(st)[0] == TABS
            processes = browser.new_browser_cdp_session().send("SystemInfo.getProcessInfo")["processInfo"]
            for proc in processes:  # this browser's own renderers, by process id
                if proc["type"] == "renderer":
                    os.kill(proc["id"], signal.SIGKILL)
            wait_for(lambda: all(_crashed(p) for p in pages), 10, "the tabs to crash")
            wait_for(lambda: _idle(st)[0] == 0, 15, "the killed tabs' peers to be dropped")
        finally:
            browser.close()


def test_connect_disconnect_cycles_leave_nothing_behind(live_bundle: Path) -> None:
    cfg = ServeConfig(target=live_bundle, port=0, max_peers=BATCH + TABS, backend="onnxruntime")
    with ServerThread(cfg) as st:
        _cycles(st, 1, st.call(lambda s: s.task_count()))  # warm-up: thread pools, codecs, the first show start
        idle_tasks = _idle(st)[1]
        wait_for(lambda: _idle(st) == (0, idle_tasks, False), 10, "idle after the warm-up")
        before = usage()
        took = _cycles(st, BATCHES, idle_tasks)
        cycled = usage()
        _kill_tabs(st)
        wait_for(lambda: _idle(st) == (0, idle_tasks, False), 10, "idle after the killed tabs")
        after = usage()
        print(f"\n{BATCHES * BATCH} cycles ({BATCHES * BATCH // 2} clean, {BATCHES * BATCH // 2} abrupt) in "
              f"{took:.0f} s, then {TABS} killed Chromium tabs\nbefore {before}\nafter cycles {cycled}\n"
              f"after tabs {after}\nasyncio tasks at idle {idle_tasks}")
    for k in ("fds", "udp", "threads"):
        assert cycled[k] <= before[k], f"{k} leaked over the cycles: {before[k]} -> {cycled[k]}"
        assert after[k] <= before[k], f"{k} leaked by the killed tabs: {before[k]} -> {after[k]}"
    assert cycled["rss_mb"] - before["rss_mb"] <= MAX_RSS_GROWTH_MB, (before, cycled)
