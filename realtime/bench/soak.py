"""`dancenow bench soak --minutes N`: does the server hold for an hour, or a show's length?

The real server on loopback with one performer (an aiortc client sending a looping clip as its
camera, as the performer page sends a webcam) and viewers (aiortc clients that decode every frame
and read its pixel stamp), all in this process. Viewers come and go as in a real show: with
`churn`, a viewer joins at the end of one minute and the oldest leaves at the end of the next
(never fewer than one). Per minute: the fps each viewer present all minute decoded, latency
p50/p99 (the performer's frame reaching the server -> the generated frame decoded by a viewer,
from the pixel stamps), the pipeline's own stages, frames dropped and missed, and the process
(process.py: RSS, CPU per thread against wall time, threads, open files, tracked objects, every
bounded structure's size) and the host (steal, clock). Beside every minute a control process
(control.py) times the same tracker and engine fresh: the host's effect shows in both, the
process's only in the pipeline. With `trace`, tracemalloc's Python heap and its biggest growth
per minute (a diagnostic run: tracing slows every allocation). At the end: drift (the median p50 of
the last `window` rows minus that of the first: one minute's p50 moves by 10-20 ms with the viewer
count and the host, so a single minute against another measures noise; a window of ten rows holds
as many 2-viewer as 3-viewer minutes), the same for the pipeline's stages and the control's, and
the RSS slope (least squares over samples every 5 s after the first `settle` minutes: start-up
allocations are not a leak).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import aiohttp
import numpy as np

from dancenow.errors import DanceNowError
from dancenow.host import describe_cpu
from dancenow.realtime.bench.common import DEFAULT_CLIP, cpu_seconds, edge_drift, host, rss_mb
from dancenow.realtime.bench.process import (
    drop_times,
    host_state,
    process_figures,
    slow_frames,
    structure_sizes,
    thread_cpu,
)
from dancenow.realtime.bench.rtc_client import Performer, Viewer
from dancenow.realtime.bench.stalls import StallProbes, explain
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

TARGET_DRIFT_MS = 5.0
TARGET_RSS_SLOPE = 0.5  # MB per minute, after the first `settle` minutes (issue 27)
QUIET_STEAL_PCT = 5.0  # a minute with more of a core stolen by the hypervisor is not a quiet host's
WINDOW = 10  # rows at each end that drift compares (a fifth of the rows in a shorter run)
SAMPLE_S = 5.0
THREADS = {"pose": "dancenow-pose", "generate": "dancenow-generate", "vp8": "dancenow-vp8_0"}  # the pipeline's


def run(bundle: Path | str, minutes: float = 30.0, clip: Path | str | None = None, interval: float = 60.0,
        viewers: int = 2, churn: bool = True, control: bool = True, trace: bool = False,
        settle: float = 5.0) -> dict:
    """Stream `bundle` for `minutes` with a performer sending `clip` (default: dancer A from
    ../shared/data, else the built-in performer) and `viewers` viewers; a row per `interval` s."""
    if minutes <= 0:
        raise DanceNowError(f"--minutes must be positive, got {minutes}")
    if clip and not Path(clip).is_file():
        raise DanceNowError(f"clip not found: {clip}")
    with tempfile.TemporaryDirectory() as tmp:
        if clip:
            clip = Path(clip)
        elif DEFAULT_CLIP.is_file():
            clip = DEFAULT_CLIP
        else:
            from dancenow.realtime.transfer import write_demo_performer

            clip = write_demo_performer(Path(tmp) / "performer.mp4", fps=15.0, size=(480, 360))
        cfg = ServeConfig(target=Path(bundle), source="browser", port=0, max_peers=viewers + 3)
        with ServerThread(cfg) as st:
            engine = st.call(lambda s: (str(s.show.target.bundle), s.show.target.engine.name,
                                        s.show.target.engine.precision, s.show.target.engine.describe()))
            probe = (engine[0], str(clip), engine[1], engine[2]) if control else None
            probes = StallProbes(Path(tmp) / "stalls.log")
            try:
                rows, rss = asyncio.run(_soak(st, clip, minutes * 60.0, interval, viewers, churn, probe, trace, probes))
            finally:
                probes.close()
    drifts = window_drifts(rows)
    drift = drifts["latency_ms"]
    steady = [(t, m) for t, m in rss if t >= settle] if minutes >= 2 * settle else rss
    slope = round(float(np.polyfit(*zip(*steady, strict=True), 1)[0]), 3) if len(steady) >= 3 else None
    late = [r["dropped"] for r in rows if r["minute"] > 1.0 + 1e-6]
    met = verdict(drift, slope, late)
    noisy = noisy_minutes(rows)
    return {"host": host(), "bundle": str(bundle), "backend": engine[3], "clip": clip.name, "minutes": minutes,
            "viewers": viewers, "churn": churn, "trace": trace, "rows": rows, "drift_ms": drift,
            "drifts_ms": drifts, "rss_slope_mb_per_min": slope, "settle_minutes": settle,
            "rss_mb": {"start": round(rss[0][1], 1), "end": round(rss[-1][1], 1)},
            "targets": {"drift_max_ms": TARGET_DRIFT_MS, "rss_slope_max_mb_per_min": TARGET_RSS_SLOPE,
                        "no_drops_after_minute_1": not any(late), "met": met,
                        "quiet_host": not noisy, "noisy_minutes": noisy,
                        "steal_max_pct": max((r.get("steal_pct") or 0.0 for r in rows), default=0.0)}}


def verdict(drift: float | None, slope: float | None, late_drops: list[int]) -> bool:
    """Issue 27's bars: the latency crept by at most TARGET_DRIFT_MS (a run that ends faster, the
    host having sped up, has not crept: the control's drift says so), the RSS slope, no drops
    after the first minute."""
    return (drift is not None and slope is not None and drift <= TARGET_DRIFT_MS and slope <= TARGET_RSS_SLOPE
            and not any(late_drops))


def noisy_minutes(rows: list[dict]) -> list[float]:
    """The rows (by their minute) in which the hypervisor stole over QUIET_STEAL_PCT of a core: the
    bars are a quiet host's, and on a busy one a drop may be the neighbour's, not the show's."""
    return [r["minute"] for r in rows if (r.get("steal_pct") or 0.0) > QUIET_STEAL_PCT]


def window_drifts(rows: list[dict], window: int = WINDOW) -> dict:
    """Median of the last `window` rows minus median of the first, for the latency p50, the
    pipeline's p50 and its tracker and engine stages, and the control's tracker and engine (the
    host alone). Rows without a figure are left out; None where a side has none."""
    k = max(1, min(window, len(rows) // 5 or 1))

    def drift(get) -> float | None:
        return edge_drift([get(r) for r in rows], k, digits=2)

    def ctl(key: str):
        return lambda r: r["control"][key]["p50"] if key in (r.get("control") or {}) else None

    both = drift(ctl("track_ms")), drift(ctl("generate_ms"))
    return {"rows": k, "latency_ms": drift(lambda r: (r["latency_ms"] or {}).get("p50")),
            "pipeline_ms": drift(lambda r: r["pipeline_p50_ms"]),
            "track_ms": drift(lambda r: r["stage_p50_ms"].get("track")),
            "generate_ms": drift(lambda r: r["stage_p50_ms"].get("generate")),
            "control": None if None in both else {"track_ms": both[0], "generate_ms": both[1]}}


async def _control(probe: tuple[str, str, str, str] | None, ran: list[list[float]]) -> dict | None:
    """One control process (control.py); its result, or why there is none. `ran` gets its
    [start, end] times (end = inf while it runs): a drop then is put down to it (stalls.explain)."""
    if probe is None:
        return None
    window = [time.monotonic(), math.inf]
    ran.append(window)
    del ran[:-3]
    try:
        return await _control_process(probe)
    finally:
        window[1] = time.monotonic()  # its own window, even when the next one was appended first


async def _control_process(probe: tuple[str, str, str, str]) -> dict:
    bundle, clip, backend, precision = probe
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dancenow.realtime.bench.control", bundle, clip, "--backend", backend,
        "--precision", precision, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"OMP_NUM_THREADS": "1", **os.environ})
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:  # the row ended first: no orphan left running beside the next one
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        return {"error": (err.decode(errors="replace").strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.decode().strip().splitlines()[-1])


class _Minute:
    """The process and host counters at the start of a row, to take differences from."""

    def __init__(self) -> None:
        self.t = time.monotonic()
        self.cpu = cpu_seconds()
        self.threads = thread_cpu()
        self.host = host_state()

    def figures(self) -> dict:
        wall = max(1e-6, time.monotonic() - self.t)
        threads, hs = thread_cpu(), host_state()
        return {"cpu_cores": round((cpu_seconds() - self.cpu) / wall, 3),
                "thread_cores": {k: round((threads.get(n, 0.0) - self.threads.get(n, 0.0)) / wall, 3)
                                 for k, n in THREADS.items()},
                "steal_pct": round(100 * (hs["steal_s"] - self.host["steal_s"]) / wall, 2), "mhz": round(hs["mhz"], 0)}


async def _soak(st: ServerThread, clip: Path, seconds: float, interval: float, n: int, churn: bool,
                probe: tuple | None, trace: bool, probes: StallProbes) -> tuple[list, list]:
    loop = asyncio.get_running_loop()

    def pipeline() -> tuple[int, int, float, dict[str, float], dict[str, int], list, list]:
        """Frames out, dropped, fps, each stage's p50 (the pipeline's last 300 frames: when the
        latency drifts, these say which stage moved), the bounded structures' sizes, the recent
        drops (process.drop_times) and frames with a slow stage (process.slow_frames)."""
        stats = st.call(lambda s: s.show.stats())
        stages = {name: round(lat.p50, 1) for name, lat in stats.latency_ms.items()}
        return (stats.frames, stats.dropped, stats.fps, stages, st.call(structure_sizes), st.call(drop_times),
                st.call(slow_frames))

    async with aiohttp.ClientSession() as session:
        performer = await Performer(st.url, st.token, clip, width=360, stamps=False).connect(session)
        viewers: list[Viewer] = []
        control: asyncio.Task | None = None
        try:
            await performer.wait_frames(10, timeout=120)
            for _ in range(n):
                viewers.append(await Viewer(st.url).connect(session))
            for v in viewers:
                await v.wait_frames(10, timeout=60)
            await asyncio.sleep(2.0)  # jitter buffers and the encoders' bitrate settle
            if trace:
                tracemalloc.start(5)
            snap = tracemalloc.take_snapshot() if trace else None
            rows, rss, lat = [], [(0.0, rss_mb())], []
            t0 = start = time.monotonic()
            minute, row_no, control_ran = _Minute(), 0, []
            frames, missed = {id(v): v.frames for v in viewers}, sum(v.missed for v in viewers)
            out0, dropped0, *_ = await loop.run_in_executor(None, pipeline)
            control = asyncio.create_task(_control(probe, control_ran))
            probes.take()
            for v in viewers:
                v.take_latencies()
            while (now := time.monotonic()) - t0 < seconds:
                await asyncio.sleep(min(SAMPLE_S, t0 + seconds - now))
                now = time.monotonic()
                rss.append(((now - t0) / 60.0, rss_mb()))
                lat += [ms for v in viewers for ms in v.take_latencies()]
                if now - start < interval - 0.5 and now - t0 < seconds:
                    continue
                out, dropped, server_fps, stages, sizes, recent, slow = await loop.run_in_executor(None, pipeline)
                pipeline_p50 = stages.pop("total", None)
                whole = [v for v in viewers if id(v) in frames]
                fps = [(v.frames - frames[id(v)]) / (now - start) for v in whole]
                lost = sum(v.missed for v in viewers)
                stalls = probes.take()
                drops = [d for d in recent if start <= d[0] < now]
                slow = [f for f in slow if start <= f[1] < now]
                row = {
                    "minute": round((now - t0) / 60.0, 2), "seconds": round(now - start, 1),
                    "fps": round(float(np.mean(fps)), 2) if fps else 0.0, "fps_min": round(min(fps), 2) if fps else 0.0,
                    "server_fps": round(server_fps, 1), "viewers": len(viewers),
                    "latency_ms": {q: round(float(np.percentile(lat, v)), 1) for q, v in (("p50", 50), ("p99", 99))}
                    if lat else None,
                    "pipeline_p50_ms": round(pipeline_p50, 1) if pipeline_p50 else None, "stage_p50_ms": stages,
                    "samples": len(lat), "frames_out": out - out0, "dropped": dropped - dropped0,
                    "missed": max(0, lost - missed), "rss_mb": round(rss[-1][1], 1), **minute.figures(),
                    "drops_why": explain(drops, stalls, 1.0 / max(server_fps, 1.0), control_ran, slow),
                    "drops": [{"at_s": round(t - start, 2), "slot": slot, "since_put_ms": round(1e3 * since, 1)}
                              for t, since, slot in drops],
                    "slow_frames": [{"at_s": round(b - start, 2), "stage": stage, "ms": round(1e3 * d, 1)}
                                    for a, b, stage, d in slow][-10:],
                    "control_ran_s": [[round(a - start, 1), round(min(b, now) - start, 1)] for a, b in control_ran
                                      if b >= start],
                    "stalls": {k: {"count": len(v), "max_ms": round(1e3 * max((g for _, g in v), default=0.0), 1)}
                               for k, v in stalls.items()},
                    "process": process_figures(), "sizes": sizes,
                    "control": await control if control.done() else {"error": "still running at the row's end"}}
                if trace:
                    snap, row["python_heap"] = _heap(snap)
                rows.append(row)
                print(*([HEADER] if row_no == 0 else []), format_row(row), sep="\n", file=sys.stderr,
                      flush=True)  # progress as it comes; stdout keeps the result
                row_no += 1
                if churn:  # a viewer joins after odd rows; the oldest leaves after even ones (one stays)
                    if row_no % 2 == 1:
                        viewers.append(await Viewer(st.url).connect(session))
                    elif len(viewers) > 1:
                        await viewers.pop(0).close(session=session)
                if not control.done():
                    control.cancel()
                control = asyncio.create_task(_control(probe, control_ran))
                start, minute, lat = time.monotonic(), _Minute(), []
                frames, missed = {id(v): v.frames for v in viewers}, sum(v.missed for v in viewers)
                out0, dropped0 = out, dropped
            return rows, rss
        finally:
            if control is not None and not control.done():
                control.cancel()
            if trace:
                tracemalloc.stop()
            for peer in [*viewers, performer]:
                await peer.close(session=session)


def _heap(previous: tracemalloc.Snapshot) -> tuple[tracemalloc.Snapshot, dict]:
    """The traced Python heap now and the five source lines whose allocations grew most since `previous`."""
    snap = tracemalloc.take_snapshot()
    growth = snap.compare_to(previous, "lineno")[:5]
    current, _ = tracemalloc.get_traced_memory()
    return snap, {"mb": round(current / 2**20, 2),
                  "top_growth": [{"where": str(s.traceback[0]), "kb": round(s.size_diff / 1024, 1), "count": s.count_diff}
                                 for s in growth]}


HEADER = (f"{'minute':>6} {'view':>4} {'fps':>5} {'p50':>5} {'p99':>5} {'pipe':>5} {'drop':>4} {'why':>7} {'miss':>4} "
          f"{'rss':>6} {'cores':>5} {'pose':>5} {'gen':>5} {'steal':>5} {'MHz':>5} {'thr':>4} {'fds':>4} "
          f"{'objects':>8}  {'control track/gen':>17}  stages p50 ms")


def format_row(row: dict) -> str:
    """One row of the table (also printed to stderr as each minute ends: an hour is long to wait blind)."""
    nan = float("nan")
    lat = row["latency_ms"] or {"p50": nan, "p99": nan}
    pipe = row["pipeline_p50_ms"] or nan
    c = row.get("control") or {}
    ctl = (f"{c['track_ms']['p50']:>7.1f}/{c['generate_ms']['p50']:<6.1f}" if "track_ms" in c else
           f"{(c.get('error') or '-')[:17]:>17}")
    p, th = row.get("process") or {}, row.get("thread_cores") or {}
    why = " ".join(f"{k[0]}{n}" for k, n in (row.get("drops_why") or {}).items() if n) or "-"
    return (f"{row['minute']:>6.2f} {row.get('viewers', 0):>4} {row['fps']:>5.1f} {lat['p50']:>5.0f} {lat['p99']:>5.0f} "
            f"{pipe:>5.0f} {row['dropped']:>4} {why:>7} {row['missed']:>4} {row['rss_mb']:>6.0f} {row.get('cpu_cores', nan):>5.2f} "
            f"{th.get('pose', nan):>5.2f} {th.get('generate', nan):>5.2f} {row.get('steal_pct', nan):>5.1f} "
            f"{row.get('mhz', nan):>5.0f} {p.get('threads', 0):>4} {p.get('open_files', 0):>4} "
            f"{p.get('gc_objects', 0):>8}  {ctl:>17}  "
            + " ".join(f"{k} {v:.1f}" for k, v in (row.get("stage_p50_ms") or {}).items()))


def format_table(r: dict) -> str:
    lines = [f"bench soak: {r['bundle']} ({r['backend']}), performer clip {r['clip']}, {r['viewers']} viewers "
             f"({'joining and leaving every minute' if r.get('churn') else 'fixed'}), {r['minutes']:g} min",
             f"host: {describe_cpu()}",
             HEADER]
    for row in r["rows"]:
        lines.append(format_row(row))
        if row.get("python_heap"):
            h = row["python_heap"]
            lines.append(f"{'':>6} python heap {h['mb']:.1f} MB; grew most: "
                         + "; ".join(f"{g['where']} {g['kb']:+.0f} kB" for g in h["top_growth"][:3]))
    t = r["targets"]
    drift = "n/a" if r["drift_ms"] is None else f"{r['drift_ms']:+.1f} ms"
    d = r.get("drifts_ms") or {}
    slope = "n/a" if r["rss_slope_mb_per_min"] is None else f"{r['rss_slope_mb_per_min']:+.2f} MB/min"
    cd = d.get("control")
    ms = lambda v: "n/a" if v is None else f"{v:+.1f} ms"  # noqa: E731
    lines.append(f"drift (median p50 of the last {d.get('rows', 1)} rows - of the first) {drift}; "
                 f"the pipeline's {ms(d.get('pipeline_ms'))} (tracker {ms(d.get('track_ms'))}, engine "
                 f"{ms(d.get('generate_ms'))}); the control's over the same rows: "
                 + ("n/a" if cd is None else f"tracker {ms(cd['track_ms'])}, engine {ms(cd['generate_ms'])}"))
    lines.append(f"RSS slope after minute {r.get('settle_minutes', 0):g} {slope} ({r['rss_mb']['start']:.0f} -> "
                 f"{r['rss_mb']['end']:.0f} MB); drops after the first minute: "
                 f"{'none' if t['no_drops_after_minute_1'] else 'some'}. Targets drift <= +{t['drift_max_ms']:.0f} ms, "
                 f"slope <= {t['rss_slope_max_mb_per_min']:g} MB/min, no drops: {'met' if t['met'] else 'NOT met'}")
    if t.get("noisy_minutes"):
        lines.append(f"the host was not quiet: over {QUIET_STEAL_PCT:g} % of a core stolen by the hypervisor in "
                     f"{len(t['noisy_minutes'])} of {len(r['rows'])} rows (at most {t['steal_max_pct']:.1f} %); "
                     "the bars are a quiet host's: run again when the host is quiet")
    lines.append("(minute = end of the row; view = viewers connected; fps = frames each viewer present all minute "
                 "decoded per second; p50/p99 = performer frame at the server -> generated frame decoded by a viewer; "
                 "pipe = the pipeline's capture -> output p50; why = the drops' causes (stalls.py: h host stall, p this "
                 "process's stall, c while the control ran, s a stage over 50 ms on that frame, b a burst, u unexplained); cores = this process's CPU time per wall second, pose "
                 "and gen its two pipeline threads'; steal = the host's steal time; objects = Python objects the "
                 "collector tracks; control = a fresh process timing the same tracker and engine, ms p50)")
    return "\n".join(lines)
