"""`dancenow bench soak --minutes N`: does the server hold for half an hour?

The real server on loopback with one performer (an aiortc client sending a looping clip as its
camera, as the performer page sends a webcam) and two viewers (aiortc clients that decode every
frame and read its pixel stamp), all in this process. Per minute: the fps each viewer decodes,
latency p50/p99 (the performer's frame reaching the server -> the generated frame decoded by a
viewer, from the pixel stamps), frames the pipeline dropped (latest wins), frames a viewer never
got, and the process's RSS. At the end: drift (the last minute's p50 minus the first's) and the
RSS slope (least squares over samples every 5 s, the first minute left out of runs of 3 minutes
or more: start-up allocations are not a leak).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

from dancenow.errors import DanceNowError
from dancenow.host import describe_cpu
from dancenow.realtime.bench.common import DEFAULT_CLIP, host, rss_mb
from dancenow.realtime.bench.rtc_client import Performer, Viewer
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

TARGET_DRIFT_MS = 5.0
TARGET_RSS_SLOPE = 1.0  # MB per minute
SAMPLE_S = 5.0


def run(bundle: Path | str, minutes: float = 30.0, clip: Path | str | None = None, interval: float = 60.0,
        viewers: int = 2) -> dict:
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
        cfg = ServeConfig(target=Path(bundle), source="browser", port=0, max_peers=viewers + 1)
        with ServerThread(cfg) as st:
            rows, rss = asyncio.run(_soak(st, clip, minutes * 60.0, interval, viewers))
            backend = st.call(lambda s: s.show.target.engine.describe())
    first, last = rows[0]["latency_ms"], rows[-1]["latency_ms"]
    drift = round(last["p50"] - first["p50"], 1) if first and last else None
    steady = [(t, m) for t, m in rss if t >= 1.0] if minutes >= 3 else rss
    slope = round(float(np.polyfit(*zip(*steady, strict=True), 1)[0]), 3) if len(steady) >= 3 else None
    met = drift is not None and slope is not None and abs(drift) <= TARGET_DRIFT_MS and slope <= TARGET_RSS_SLOPE
    return {"host": host(), "bundle": str(bundle), "backend": backend, "clip": clip.name, "minutes": minutes,
            "viewers": viewers, "rows": rows, "drift_ms": drift, "rss_slope_mb_per_min": slope,
            "rss_mb": {"start": round(rss[0][1], 1), "end": round(rss[-1][1], 1)},
            "targets": {"drift_max_ms": TARGET_DRIFT_MS, "rss_slope_max_mb_per_min": TARGET_RSS_SLOPE, "met": met}}


async def _soak(st: ServerThread, clip: Path, seconds: float, interval: float, n: int) -> tuple[list, list]:
    loop = asyncio.get_running_loop()

    def pipeline() -> tuple[int, int, float, dict[str, float]]:
        """Frames out, dropped, fps and each stage's p50 (the pipeline's last 300 frames): when the
        latency drifts, these say which stage moved."""
        stats = st.call(lambda s: s.show.stats())
        stages = {name: round(lat.p50, 1) for name, lat in stats.latency_ms.items()}
        return stats.frames, stats.dropped, stats.fps, stages

    async with aiohttp.ClientSession() as session:
        performer = await Performer(st.url, st.token, clip, width=360, stamps=False).connect(session)
        viewers: list[Viewer] = []
        try:
            await performer.wait_frames(10, timeout=120)
            for _ in range(n):
                viewers.append(await Viewer(st.url).connect(session))
            for v in viewers:
                await v.wait_frames(10, timeout=60)
            await asyncio.sleep(2.0)  # jitter buffers and the encoders' bitrate settle
            rows, rss, lat = [], [(0.0, rss_mb())], []
            t0 = start = time.monotonic()
            frames, missed = [v.frames for v in viewers], sum(v.missed for v in viewers)
            out0, dropped0, _, _ = await loop.run_in_executor(None, pipeline)
            for v in viewers:
                v.take_latencies()
            while (now := time.monotonic()) - t0 < seconds:
                await asyncio.sleep(min(SAMPLE_S, t0 + seconds - now))
                now = time.monotonic()
                rss.append(((now - t0) / 60.0, rss_mb()))
                lat += [ms for v in viewers for ms in v.take_latencies()]
                if now - start >= interval - 0.5 or now - t0 >= seconds:
                    out, dropped, server_fps, stages = await loop.run_in_executor(None, pipeline)
                    pipeline_p50 = stages.pop("total", None)
                    fps = [(v.frames - f) / (now - start) for v, f in zip(viewers, frames, strict=True)]
                    lost = sum(v.missed for v in viewers)
                    rows.append({
                        "minute": round((now - t0) / 60.0, 2), "seconds": round(now - start, 1), "fps": round(float(np.mean(fps)), 2),
                        "fps_min": round(min(fps), 2), "server_fps": round(server_fps, 1),
                        "latency_ms": {q: round(float(np.percentile(lat, v)), 1) for q, v in (("p50", 50), ("p99", 99))}
                        if lat else None,
                        "pipeline_p50_ms": round(pipeline_p50, 1) if pipeline_p50 else None, "stage_p50_ms": stages,
                        "samples": len(lat), "frames_out": out - out0, "dropped": dropped - dropped0,
                        "missed": lost - missed, "rss_mb": round(rss[-1][1], 1)})
                    start, frames, missed, lat = now, [v.frames for v in viewers], lost, []
                    out0, dropped0 = out, dropped
            return rows, rss
        finally:
            for peer in [*viewers, performer]:
                await peer.close(session=session)


def format_table(r: dict) -> str:
    lines = [f"bench soak: {r['bundle']} ({r['backend']}), performer clip {r['clip']}, {r['viewers']} viewers, "
             f"{r['minutes']:g} min", f"host: {describe_cpu()}",
             f"{'minute':>6} {'fps':>6} {'min':>6} {'p50':>7} {'p99':>7} {'pipe':>7} {'samples':>7} {'dropped':>7} "
             f"{'missed':>6} {'rss':>8}  stages p50 ms"]
    nan = float("nan")
    for row in r["rows"]:
        lat = row["latency_ms"] or {"p50": nan, "p99": nan}
        pipe = row["pipeline_p50_ms"] or nan
        lines.append(f"{row['minute']:>6.2f} {row['fps']:>6.1f} {row['fps_min']:>6.1f} {lat['p50']:>5.0f}ms {lat['p99']:>5.0f}ms "
                     f"{pipe:>5.0f}ms {row['samples']:>7} {row['dropped']:>7} {row['missed']:>6} {row['rss_mb']:>6.0f}MB  "
                     + " ".join(f"{k} {v:.0f}" for k, v in (row.get("stage_p50_ms") or {}).items()))
    t = r["targets"]
    drift = "n/a" if r["drift_ms"] is None else f"{r['drift_ms']:+.1f} ms"
    slope = "n/a" if r["rss_slope_mb_per_min"] is None else f"{r['rss_slope_mb_per_min']:+.2f} MB/min"
    lines.append(f"drift (last p50 - first p50) {drift}, RSS slope {slope} ({r['rss_mb']['start']:.0f} -> "
                 f"{r['rss_mb']['end']:.0f} MB): targets |drift| <= {t['drift_max_ms']:.0f} ms and slope <= "
                 f"{t['rss_slope_max_mb_per_min']:.0f} MB/min {'met' if t['met'] else 'NOT met'}")
    lines.append("(minute = end of the row; fps = frames each viewer decoded per second (mean, slowest); p50/p99 = "
                 "performer frame at the server -> generated frame decoded by a viewer; pipe = the pipeline's own capture "
                 "-> output p50; dropped = frames the pipeline skipped, latest wins; missed = stamped frames a viewer "
                 "never got; rss = this process: server and clients)")
    return "\n".join(lines)
