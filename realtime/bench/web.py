"""`dancenow bench web`: what viewers really receive, with 1, 4 and 8 of them.

Starts the server in this process. In every phase one viewer is the viewer page in headless
Chromium (Debian's, driven by Playwright): the fps it decodes and the glass-to-glass latency read
back from the pixel stamps (capture time painted into each frame by the pipeline, read in the page
after decoding). The other viewers are aiortc receivers in another process (`receivers.py`): more
Chromium tabs on two cores would measure the browser, not the server. Server CPU is this process's
CPU time. Drift compares the first and the last fifth of a phase. The same helpers launch the
browser for the end-to-end tests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dancenow.errors import DanceNowError
from dancenow.host import cpu_info, describe_cpu
from dancenow.realtime.bench.common import cpu_seconds, edge_drift
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


def _open_page(browser, st: ServerThread):
    page = browser.new_page()
    page.goto(st.url + "/")
    wait_for(lambda: page.evaluate("() => (window.dancenow.stamped || 0) > 10"), 60, "stamped frames in Chromium")
    return page


def _receivers(url: str, n: int, seconds: float) -> subprocess.Popen:
    """`n` aiortc viewers in another process (receivers.py); returns once they measure."""
    proc = subprocess.Popen([sys.executable, "-m", "dancenow.realtime.bench.receivers", url, str(n), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "measuring":
        proc.kill()
        raise DanceNowError(f"the aiortc viewers did not start (said {line.strip()!r}): see the messages above")
    return proc


def _phase(browser, st: ServerThread, viewers: int, seconds: float) -> dict:
    """One Chromium page (glass-to-glass as a browser shows it) plus `viewers - 1` aiortc viewers in
    another process (fps and stamp latency of decoded frames), all measured over the same window."""
    page = _open_page(browser, st)
    proc = None
    try:
        if viewers > 1:
            proc = _receivers(st.url, viewers - 1, seconds)  # connects, settles, then measures
        else:
            time.sleep(2.0)  # as the receivers settle: jitter buffers and the encoder's rate control
        _drain(page)
        start = _decoded(page)
        t0, cpu0, enc0 = time.monotonic(), cpu_seconds(), st.call(lambda s: s.stream.frames)
        samples: list[dict] = []
        getstats_fps: list[float] = []
        while time.monotonic() - t0 < seconds:
            time.sleep(min(5.0, max(0.1, seconds - (time.monotonic() - t0))))
            samples += _drain(page)
            getstats_fps.append(float(page.evaluate("() => window.dancenow.fps || 0")))
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds() - cpu0) / elapsed
        encoded = (st.call(lambda s: s.stream.frames) - enc0) / elapsed
        chromium_fps = (_decoded(page) - start) / elapsed
        stats = st.call(lambda s: s.show.stats())
        others = json.loads(proc.communicate(timeout=60)[0].strip().splitlines()[-1]) if proc else None
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        page.close()
    summary = _summarise(samples)
    total = stats.total().p50 if stats.total() else None
    # what the WebRTC leg adds (encoder, network, browser decode) beyond capture -> output
    summary["webrtc_p50_ms"] = round(summary["latency_ms"]["p50"] - total, 1) if summary["latency_ms"] and total else None
    fps = [chromium_fps, *(others["fps"] if others else [])]
    return {"viewers": viewers, "chromium_pages": 1, "aiortc_viewers": viewers - 1, "seconds": round(elapsed, 1),
            **summary, "fps_chromium": round(chromium_fps, 2), "getstats_fps_median": round(float(np.median(getstats_fps)), 1),
            "fps_aiortc": others["fps"] if others else [], "aiortc_first_missed": others["missed_first"] if others else None,
            "aiortc_latency_p50_ms": others["latency_p50_ms"] if others else None,
            "fps_min_viewer": round(float(min(fps)), 2), "fps_mean": round(float(np.mean(fps)), 2),
            "server_cpu_cores": round(cpu, 2), "encoded_fps": round(encoded, 2), "server_fps": stats.fps,
            "pipeline": {k: v for k, v in stats.to_dict().items() if k in ("latency_ms", "frames", "dropped")}}


def _summarise(samples: list[dict]) -> dict:
    if not samples:
        return {"samples": 0, "latency_ms": None, "drift_ms": None}
    samples.sort(key=lambda s: s["t"])
    ms = [s["ms"] for s in samples]
    return {
        "samples": len(ms),
        "latency_ms": {q: round(float(np.percentile(ms, v)), 1) for q, v in (("p50", 50), ("p95", 95), ("p99", 99))},
        "drift_ms": edge_drift(ms, max(1, len(ms) // 5)),
    }


def run(bundle: Path, seconds: float = 60.0, clip: Path | str | None = None,
        viewers: tuple[int, ...] = (1, 4, 8), size: str = "auto") -> dict:
    """Stream `bundle` (source: `clip`, else the built-in demo performer) to 1, 4 and 8 viewers."""
    from playwright.sync_api import sync_playwright

    if seconds <= 0:
        raise DanceNowError(f"--seconds must be positive, got {seconds}")
    source = str(clip) if clip else "demo"
    if clip and not Path(clip).is_file():
        raise DanceNowError(f"clip not found: {clip}")
    cfg = ServeConfig(target=Path(bundle), source=source, port=0, max_peers=max(viewers) + 1, size=size)
    with ServerThread(cfg) as st, sync_playwright() as pw:
        browser = launch(pw)
        try:
            phases = [_phase(browser, st, n, seconds) for n in viewers]
        finally:
            browser.close()
        backend = st.call(lambda s: s.show.target.engine.describe())
        size_note = st.call(lambda s: s.show.target.size_note)
        bitrate = cfg.bitrate
    one, most = phases[0], phases[-1]
    ok = bool(one["latency_ms"] and one["fps_chromium"] >= TARGET_FPS and one["latency_ms"]["p50"] <= TARGET_P50_MS)
    ratios = {"viewers": [one["viewers"], most["viewers"]],
              "p50": round(most["latency_ms"]["p50"] / one["latency_ms"]["p50"], 2)
              if one["latency_ms"] and most["latency_ms"] else None,
              "cpu": round(most["server_cpu_cores"] / one["server_cpu_cores"], 2) if one["server_cpu_cores"] else None}
    return {"host": cpu_info(), "bundle": str(bundle), "source": source, "backend": backend, "size": size_note,
            "seconds_per_phase": seconds,
            "bitrate": bitrate, "phases": phases, "most_vs_one": ratios,
            "targets": {"fps_min": TARGET_FPS, "p50_max_ms": TARGET_P50_MS, "met_with_one_viewer": ok,
                        "most_viewers": {"fps_min": TARGET_FPS, "p50_ratio_max": 1.2, "cpu_ratio_max": 1.3}}}


def format_table(r: dict) -> str:
    nan = float("nan")
    lines = [f"bench web: {r['bundle']} ({r['backend']}), source {r['source']}, {r['seconds_per_phase']:.0f} s per phase, "
             f"one VP8 encoder at {r['bitrate'] // 1000} kbit/s for every viewer",
             f"host: {describe_cpu()}", f"target size: {r.get('size')}",
             f"{'viewers':>7} {'chromium':>8} {'aiortc fps':>16} {'g2g p50':>8} {'p95':>6} {'drift':>6} {'webrtc':>6} "
             f"{'aiortc p50':>10} {'server cpu':>10} {'encoded':>7} {'pipeline':>8}",
             f"{'':>7} {'fps':>8} {'min / mean':>16} {'chromium':>8}"]
    for p in r["phases"]:
        lat = p["latency_ms"] or {"p50": nan, "p95": nan}
        aio = p["fps_aiortc"]
        aio_s = f"{min(aio):.1f} / {np.mean(aio):.1f}" if aio else "-"
        drift = p["drift_ms"] if p["drift_ms"] is not None else nan
        leg = p["webrtc_p50_ms"] if p["webrtc_p50_ms"] is not None else nan
        aio_p50 = f"{p['aiortc_latency_p50_ms']:.0f}ms" if p["aiortc_latency_p50_ms"] is not None else "-"
        lines.append(f"{p['viewers']:>7} {p['fps_chromium']:>8.1f} {aio_s:>16} {lat['p50']:>6.0f}ms {lat['p95']:>4.0f}ms "
                     f"{drift:>+4.0f}ms {leg:>4.0f}ms {aio_p50:>10} {p['server_cpu_cores']:>10.2f} "
                     f"{p['encoded_fps']:>7.1f} {p['server_fps']:>8.1f}")
    m, t = r["most_vs_one"], r["targets"]
    lines.append(f"{m['viewers'][1]} vs {m['viewers'][0]} viewer(s): glass-to-glass p50 x{m['p50']}, server CPU x{m['cpu']} "
                 f"(targets: x{t['most_viewers']['p50_ratio_max']}, x{t['most_viewers']['cpu_ratio_max']}; every viewer "
                 f">= {t['most_viewers']['fps_min']:.0f} fps)")
    lines.append(f"one viewer: >= {t['fps_min']:.0f} fps and p50 <= {t['p50_max_ms']:.0f} ms: "
                 f"{'met' if t['met_with_one_viewer'] else 'NOT met'}\n"
                 "chromium = one headless Chromium page (fps from decoded-frame counts; glass-to-glass = capture -> page "
                 "after decode, from the pixel stamps);\naiortc = the other viewers, aiortc receivers in another process "
                 "that decode every frame (p50: capture -> decoded in Python, read by the first);\nwebrtc = chromium p50 minus the "
                 "pipeline's capture -> output p50; server cpu = cores used by the server's process (server, pipeline, "
                 "encoder,\nand the Playwright client that polls the page; not Chromium, not the aiortc viewers); "
                 "encoded = frames the one VP8 encoder encoded per second;\npipeline = the show's own fps figure "
                 "at the end of the phase (its rolling window)")
    return "\n".join(lines)
