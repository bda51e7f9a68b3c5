"""`dancenow bench web`: what a browser really receives, with one viewer and with three.

Starts the server in this process, opens the viewer page in headless Chromium (Debian's, driven
by Playwright) and, for `seconds` per phase, collects the fps the browser decodes (getStats) and
the glass-to-glass latency read back from the pixel stamps (capture time painted into each frame
by the server, read in the page after decoding). Drift compares the first and the last fifth of
a phase. The same helpers launch the browser for the end-to-end tests.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from dancenow.errors import DanceNowError
from dancenow.host import describe_cpu
from dancenow.realtime.bench.common import host
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

# ../shared/notes/webrtc-testing.md: loopback ICE needs --allow-loopback-in-peer-connection;
# no --disable-features (it would replace Playwright's own list).
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]
TARGET_FPS = 25.0
TARGET_P50_MS = 100.0


def chromium_executable() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise DanceNowError("Debian's chromium is not installed: apt-get install chromium")
    return exe


def launch(playwright, camera: Path | None = None):
    """Headless Chromium with a fake camera (a .y4m file, looped) when given."""
    args = list(FLAGS)
    if camera is not None:
        args.append(f"--use-file-for-fake-video-capture={Path(camera).resolve()}")
    return playwright.chromium.launch(executable_path=chromium_executable(), args=args)


def wait_for(check, timeout: float, what: str, interval: float = 0.1):
    """Poll `check()` until it returns something truthy; a clear error after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _drain(page) -> list[dict]:
    return page.evaluate("() => window.dancenow.latencies.splice(0)")


def _decoded(page) -> int:
    return int(page.evaluate("() => window.dancenow.framesDecoded || 0"))


def _phase(browser, st: ServerThread, viewers: int, seconds: float) -> dict:
    pages = [browser.new_page() for _ in range(viewers)]
    try:
        for p in pages:
            p.goto(st.url + "/")
        for p in pages:
            wait_for(lambda p=p: p.evaluate("() => (window.dancenow.stamped || 0) > 10"), 60, "stamped frames")
        time.sleep(2.0)  # let the jitter buffers and encoder bitrate settle
        for p in pages:
            _drain(p)
        start = [_decoded(p) for p in pages]
        t0, cpu0 = time.monotonic(), time.process_time()
        samples: list[dict] = []
        getstats_fps: list[float] = []
        while time.monotonic() - t0 < seconds:
            time.sleep(min(5.0, max(0.1, seconds - (time.monotonic() - t0))))
            for p in pages:
                samples += _drain(p)
                getstats_fps.append(float(p.evaluate("() => window.dancenow.fps || 0")))
        elapsed = time.monotonic() - t0
        cpu = (time.process_time() - cpu0) / elapsed
        fps = [(_decoded(p) - s) / elapsed for p, s in zip(pages, start, strict=True)]
        stats = st.call(lambda s: s.show.stats())
    finally:
        for p in pages:
            p.close()
    summary = _summarise(samples)
    total = stats.total().p50 if stats.total() else None
    # what the WebRTC leg adds (server track, VP8, network, browser decode) beyond capture -> output
    summary["webrtc_p50_ms"] = round(summary["latency_ms"]["p50"] - total, 1) if summary["latency_ms"] and total else None
    return {"viewers": viewers, "seconds": round(elapsed, 1), **summary, "fps_mean": round(float(np.mean(fps)), 2),
            "fps_min_viewer": round(float(min(fps)), 2), "getstats_fps_median": round(float(np.median(getstats_fps)), 1),
            "process_cpu_cores": round(cpu, 2), "server_fps": stats.fps,
            "pipeline": {k: v for k, v in stats.to_dict().items() if k in ("latency_ms", "frames", "dropped")}}


def _summarise(samples: list[dict]) -> dict:
    if not samples:
        return {"samples": 0, "latency_ms": None, "drift_ms": None}
    samples.sort(key=lambda s: s["t"])
    ms = np.array([s["ms"] for s in samples], float)
    fifth = max(1, len(ms) // 5)
    return {
        "samples": len(ms),
        "latency_ms": {q: round(float(np.percentile(ms, v)), 1) for q, v in (("p50", 50), ("p95", 95), ("p99", 99))},
        "drift_ms": round(float(np.median(ms[-fifth:]) - np.median(ms[:fifth])), 1),
    }


def run(bundle: Path, seconds: float = 60.0, clip: Path | str | None = None, viewers: tuple[int, ...] = (1, 3)) -> dict:
    """Stream `bundle` (source: `clip`, else the built-in demo performer) to 1 and to 3 headless viewers."""
    from playwright.sync_api import sync_playwright

    if seconds <= 0:
        raise DanceNowError(f"--seconds must be positive, got {seconds}")
    source = str(clip) if clip else "demo"
    if clip and not Path(clip).is_file():
        raise DanceNowError(f"clip not found: {clip}")
    cfg = ServeConfig(target=Path(bundle), source=source, port=0, max_peers=max(viewers) + 1)
    with ServerThread(cfg) as st, sync_playwright() as pw:
        browser = launch(pw)
        try:
            phases = [_phase(browser, st, n, seconds) for n in viewers]
        finally:
            browser.close()
        backend = st.call(lambda s: s.show.target.engine.describe())
    one = phases[0]
    ok = bool(one["latency_ms"] and one["fps_mean"] >= TARGET_FPS and one["latency_ms"]["p50"] <= TARGET_P50_MS)
    return {"host": host(), "bundle": str(bundle), "source": source, "backend": backend, "seconds_per_phase": seconds,
            "phases": phases, "targets": {"fps_min": TARGET_FPS, "p50_max_ms": TARGET_P50_MS, "met_with_one_viewer": ok}}


def format_table(r: dict) -> str:
    lines = [f"bench web: {r['bundle']} ({r['backend']}), source {r['source']}, {r['seconds_per_phase']:.0f} s per phase",
             f"host: {describe_cpu()}",
             f"{'viewers':>7} {'fps mean':>9} {'fps min':>8} {'g2g p50':>8} {'p95':>7} {'p99':>7} {'drift':>7} {'webrtc':>7} {'samples':>8} {'cpu':>5}"]
    for p in r["phases"]:
        lat = p["latency_ms"] or {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
        drift = p["drift_ms"] if p["drift_ms"] is not None else float("nan")
        leg = p["webrtc_p50_ms"] if p["webrtc_p50_ms"] is not None else float("nan")
        lines.append(f"{p['viewers']:>7} {p['fps_mean']:>9.1f} {p['fps_min_viewer']:>8.1f} {lat['p50']:>6.0f}ms "
                     f"{lat['p95']:>5.0f}ms {lat['p99']:>5.0f}ms {drift:>+5.0f}ms {leg:>5.0f}ms {p['samples']:>8} {p['process_cpu_cores']:>5.2f}")
    t = r["targets"]
    lines.append(f"target with one viewer: >= {t['fps_min']:.0f} fps and p50 <= {t['p50_max_ms']:.0f} ms: "
                 f"{'met' if t['met_with_one_viewer'] else 'NOT met'} (glass-to-glass = capture -> page after decode;\n"
                 "webrtc = its p50 minus the pipeline's capture -> output p50; cpu = cores used by this process)")
    return "\n".join(lines)
