"""`dancenow bench live`: the pipeline against a naive sequential loop, in the same run.

Four measurements on one clip (looped):
- pipeline, paced at 30 fps like a camera for `seconds`: sustained fps, frames dropped, latency
  p50/p95/p99 per stage and in total (capture to generated frame), and drift (total latency p50 of
  the first vs the last minute; for runs shorter than 3 minutes, the first vs the last third);
- pipeline, unpaced and lossless (every frame taken as soon as the pipeline accepts it): throughput;
- naive loop (read -> track -> render -> PyTorch generator -> write, one after the other, as
  EDN's test script does), paced the same way and unpaced.
Plus CPU use (cores busy: process CPU time / wall time) and peak memory (VmHWM) per phase, and the
throughput ratio pipeline / naive.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np

from dancenow.errors import DanceNowError
from dancenow.host import describe_cpu
from dancenow.realtime.bench.common import Phase, default_clip, host
from dancenow.realtime.live.pipeline import PipelineConfig
from dancenow.realtime.live.show import open_show
from dancenow.realtime.live.sources import FileSource
from dancenow.realtime.live.target import Target
from dancenow.realtime.live.telemetry import percentiles, stage_durations
from dancenow.realtime.media.reader import iter_frames
from dancenow.realtime.pose.filter import PoseFilter
from dancenow.realtime.pose.normalize import fit_into
from dancenow.realtime.pose.renderer import render_label_map
from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig

log = logging.getLogger(__name__)

CAMERA_FPS = 30.0
# MediaPipe's own default, as a plain script gets it. Two threads measured slower in the naive loop
# (6.5 against 7.7 fps): their spinning workers slow PyTorch's generator that runs right after.
NAIVE_TRACKER_THREADS = 1
def _drift(times: list[float], totals: list[float]) -> dict:
    """Total latency p50 at the start vs the end of the run (first/last minute, or thirds)."""
    if len(totals) < 6:
        return {}
    t = np.asarray(times) - times[0]
    span = t[-1]
    window = 60.0 if span >= 180.0 else span / 3
    first = [v for v, x in zip(totals, t, strict=True) if x <= window]
    last = [v for v, x in zip(totals, t, strict=True) if x >= span - window]
    a, b = np.median(first) * 1000, np.median(last) * 1000
    return {"window_s": round(window, 1), "first_p50_ms": round(float(a), 2), "last_p50_ms": round(float(b), 2),
            "change_ms": round(float(b - a), 2)}


# --- the pipeline -------------------------------------------------------------------------------

def _pipeline_run(clip: Path, target: Target, seconds: float, paced: bool, warmup: float = 2.0) -> dict:
    src = FileSource(clip, paced=paced, loop=True, fps=CAMERA_FPS if paced else None)
    show = open_show(src, target, PipelineConfig(mark=True))
    stamps: list[dict] = []
    with Phase() as phase:
        show.start()
        t_start = time.monotonic()
        t_measure = t_start + warmup
        after, first_seq, last_seq = 0, None, 0
        while time.monotonic() < t_measure + seconds:
            got = show.output.get(after, timeout=1.0)
            if got is None:
                continue
            after, f = got
            if f.stamps["output"] < t_measure:
                continue
            if first_seq is None:
                first_seq = f.seq
            last_seq = f.seq
            stamps.append(f.stamps)
        show.close()
    if not stamps:
        raise DanceNowError("the pipeline produced no frames during the benchmark: see the log for its error")
    outs = [s["output"] for s in stamps]
    dur = outs[-1] - outs[0]
    captured = last_seq - first_seq + 1
    per_stage: dict[str, list[float]] = {}
    for s in stamps:
        for k, v in stage_durations(s).items():
            per_stage.setdefault(k, []).append(v)
    return {
        "paced": paced, "seconds": round(dur, 2), "frames": len(stamps),
        "fps": round((len(stamps) - 1) / dur, 2) if dur > 0 else 0.0,
        "captured": captured, "dropped": max(0, captured - len(stamps)),
        "latency_ms": {k: percentiles(v) for k, v in per_stage.items()},
        "drift": _drift(outs, per_stage.get("total", [])) if paced else {},
        **phase.report(),
    }


# --- the naive loop -------------------------------------------------------------------------------

class _LoopingReader:
    """A clip decoded frame by frame, starting over at the end (the naive loop's camera)."""

    def __init__(self, clip: Path) -> None:
        self.clip, self.index = clip, -1
        self._frames = iter_frames(clip, fast=True)

    def read(self) -> np.ndarray:
        for _ in range(2):
            for f in self._frames:
                self.index += 1
                return f.image
            self._frames = iter_frames(self.clip, fast=True)
        raise DanceNowError(f"{self.clip} has no frames")

    def skip(self, n: int) -> None:
        for _ in range(max(0, n)):
            self.read()

    def close(self) -> None:
        self._frames.close()


def _naive_run(clip: Path, target: Target, seconds: float, paced: bool) -> dict:
    """read -> track -> render -> generator -> write, one frame after the other.

    Paced: frames arrive at 30 fps like a camera; each iteration takes the newest frame that has
    arrived (frames that arrived meanwhile are decoded and dropped, as the pipeline's capture
    thread decodes every frame), so its latency is its own processing time plus the wait for it."""
    render, size = target.render, target.resolution
    reader = _LoopingReader(clip)
    totals, per_stage, times = [], {}, []
    previous = np.zeros((*size, 3), np.uint8)
    flt = PoseFilter()
    tcfg = TrackerConfig(threads=NAIVE_TRACKER_THREADS, face_mesh=render.face_lines)  # what the target draws
    with PoseTracker(tcfg) as tracker, Phase() as phase:
        tracker.track(np.zeros((480, 640, 3), np.uint8), 0.0)  # warm-up, as the pipeline's
        t0 = time.monotonic()
        i, last_index, captured = 0, -1, 0
        while time.monotonic() - t0 < seconds:
            now = time.monotonic()
            if paced:
                index = int((now - t0) * CAMERA_FPS)
                if index == last_index:
                    time.sleep(max(0.0, t0 + (index + 1) / CAMERA_FPS - now))
                    continue
                captured += index - last_index
                last_index = index
                t_cap = t0 + index / CAMERA_FPS
            else:
                index, t_cap = i, now
                captured += 1
            media_t = index / CAMERA_FPS
            s = {"capture": t_cap}
            reader.skip(index - reader.index - 1)  # frames the camera delivered meanwhile (decoded, dropped)
            image = reader.read()
            s["read"] = time.monotonic()
            pose = flt.apply(tracker.track(image, media_t))
            s["track"] = time.monotonic()
            label = render_label_map(fit_into(pose, size), size, render)
            s["render"] = time.monotonic()
            previous = target.generate(label, previous)
            s["generate"] = time.monotonic()
            cv2.imencode(".jpg", cv2.cvtColor(previous, cv2.COLOR_RGB2BGR))  # "write" (EDN saves images)
            s["output"] = time.monotonic()
            keys = list(s)
            for a, b in zip(keys, keys[1:], strict=False):
                per_stage.setdefault(b, []).append(s[b] - s[a])
            totals.append(s["output"] - s["capture"])
            times.append(s["output"])
            i += 1
    reader.close()
    dur = times[-1] - times[0] if len(times) > 1 else 0.0
    per_stage["total"] = totals
    return {
        "paced": paced, "seconds": round(dur, 2), "frames": len(times),
        "fps": round((len(times) - 1) / dur, 2) if dur > 0 else 0.0,
        "captured": captured, "dropped": max(0, captured - len(times)),
        "latency_ms": {k: percentiles(v) for k, v in per_stage.items()},
        "drift": _drift(times, totals) if paced else {},
        **phase.report(),
    }


# --- entry points ---------------------------------------------------------------------------------

def _best_naive_target(bundle, clip: Path, fallback: Target, probe_seconds: float = 5.0):
    """The naive loop's PyTorch generator with its better thread count (all cores, as a plain script
    runs, or one: on a busy machine torch's spinning threads can cost it 3-10x), so the baseline is
    not handicapped. Returns (engine, threads, {threads: fps})."""
    probes: dict[str, float] = {}
    best = None
    for th in (os.cpu_count() or 1, 1):
        try:
            eng = Target.open(fallback.bundle, backend="torch", threads=th, size="full")  # the pipeline's size
        except DanceNowError as e:
            log.warning("naive loop: no PyTorch generator in the bundle (%s); using %s", e, fallback.engine.describe())
            return fallback, None, probes
        fps = _naive_run(clip, eng, probe_seconds, paced=False)["fps"]
        probes[str(th)] = fps
        if best is None or fps > best[2]:
            best = (eng, th, fps)
    eng, th, _ = best
    if th is not None:
        import torch

        torch.set_num_threads(th)  # process-wide: the last probe may have changed it
    return eng, th, probes


def _best_pipeline_target(bundle, clip: Path, threads: int | None, probe_seconds: float, size: str = "auto"
                          ) -> tuple[Target, int, dict[str, float]]:
    """The pipeline's Target on `threads`, or on the thread count (1 or 2) that gives the higher
    unpaced pipeline fps here; returns (target, threads, {threads: fps})."""
    if threads is not None:
        return Target.open(bundle, backend="auto", threads=threads, size=size), threads, {}
    probes: dict[str, float] = {}
    best: tuple[Target, int, float] | None = None
    for th in sorted({1, min(2, os.cpu_count() or 1)}):
        target = Target.open(bundle, backend="auto", threads=th, size=size)
        fps = _pipeline_run(clip, target, probe_seconds, paced=False, warmup=1.0)["fps"]
        probes[str(th)] = fps
        if best is None or fps > best[2]:
            best = (target, th, fps)
    assert best is not None
    return best[0], best[1], probes


def _choice(target: Target) -> dict | None:
    """What `auto` measured for the engine it picked (None when it was remembered or forced)."""
    choice = getattr(target.engine, "choice", None)
    return {k: choice.get(k) for k in ("backend", "precision", "candidates")} if isinstance(choice, dict) else None


def run(clip: str | Path | None, bundle, seconds: float = 60.0, unpaced_seconds: float | None = None,
        naive_seconds: float | None = None, threads: int | None = None, probe_seconds: float = 6.0,
        size: str = "auto") -> dict:
    """All four measurements; JSON-able. `unpaced_seconds`/`naive_seconds` default to a third of
    `seconds` (at least 10 s): throughput settles quickly, drift needs the long paced run.
    `threads`: the pipeline generator's intra-op threads; None: measured (1 and 2, unpaced, with
    the tracker beside it, the faster kept: the two stages share two cores). The naive loop takes
    PyTorch's better thread count, probed the same way, so it is not handicapped."""
    clip = default_clip(clip)
    short = max(10.0, seconds / 3)
    unpaced_seconds = unpaced_seconds or short
    naive_seconds = naive_seconds or short
    target, threads, thread_probe = _best_pipeline_target(bundle, clip, threads, probe_seconds, size)
    pipeline_paced = _pipeline_run(clip, target, seconds, paced=True)
    pipeline_unpaced = _pipeline_run(clip, target, unpaced_seconds, paced=False)
    naive, naive_threads, probes = _best_naive_target(bundle, clip, target)
    naive_paced = _naive_run(clip, naive, naive_seconds, paced=True)
    naive_unpaced = _naive_run(clip, naive, naive_seconds, paced=False)
    total = pipeline_paced["latency_ms"].get("total", {})
    drift = pipeline_paced["drift"]
    result = {
        "clip": str(clip), "bundle": str(bundle), "camera_fps": CAMERA_FPS,
        "host": host(), "engine": target.engine.describe(), "engine_choice": _choice(target), "threads": threads,
        "size": target.size_note, "resolution": list(target.resolution),
        "thread_probe_fps": thread_probe, "naive_engine": naive.engine.describe(),
        "tracker_threads": {"pipeline": PipelineConfig().tracker.threads, "naive": NAIVE_TRACKER_THREADS},
        "tracker_landmarks": {"pipeline": PipelineConfig().tracker.landmarks, "naive": "mediapipe"},
        "naive_threads": naive_threads, "naive_thread_probe_fps": probes, "cpu_count": os.cpu_count(),
        "pipeline_paced": pipeline_paced, "pipeline_unpaced": pipeline_unpaced,
        "naive_paced": naive_paced, "naive_unpaced": naive_unpaced,
        "throughput_ratio": round(pipeline_unpaced["fps"] / naive_unpaced["fps"], 2) if naive_unpaced["fps"] else None,
    }
    result["targets"] = {
        "paced_fps>=25": pipeline_paced["fps"] >= 25,
        "total_p50<=60ms": total.get("p50", 1e9) <= 60,
        "total_p99<=120ms": total.get("p99", 1e9) <= 120,
        "no_drift(<=10ms)": bool(drift) and drift["change_ms"] <= 10,
        "unpaced>=2x_naive": (result["throughput_ratio"] or 0) >= 2,
        "bf16_host:total_p50<=35ms": total.get("p50", 1e9) <= 35 if host()["bf16_usable"] else None,
        "bf16_host:unpaced>=2.5x_naive": (result["throughput_ratio"] or 0) >= 2.5 if host()["bf16_usable"] else None,
    }
    return result


def _row(name: str, r: dict) -> str:
    tot = r["latency_ms"].get("total", {})
    return (f"{name:<18} {r['fps']:7.1f} {r['frames']:7d} {r['dropped']:7d} {tot.get('p50', 0):7.1f} "
            f"{tot.get('p95', 0):7.1f} {tot.get('p99', 0):7.1f} {r['cpu_cores']:6.2f} {r['peak_rss_mb'] or 0:8.0f}")


def format_table(result: dict) -> str:
    lines = [f"bench live: {result['clip']}", f"host: {describe_cpu()}",
             f"target size: {result.get('size')}",
             f"pipeline engine {result['engine']}, {result['threads']} thread(s) (probe fps by threads: "
             f"{result['thread_probe_fps'] or 'not probed'}); naive {result['naive_engine']}, "
             f"{result['naive_threads']} thread(s) (probe fps by threads: {result['naive_thread_probe_fps']}); "
             f"tracker threads: pipeline {result['tracker_threads']['pipeline']} (landmarks: "
             f"{result['tracker_landmarks']['pipeline']}), naive {result['tracker_threads']['naive']} (MediaPipe)",
             f"{'':<18} {'fps':>7} {'frames':>7} {'dropped':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
             f"{'cores':>6} {'peak MB':>8}"]
    for key, name in (("pipeline_paced", "pipeline 30fps"), ("pipeline_unpaced", "pipeline unpaced"),
                      ("naive_paced", "naive 30fps"), ("naive_unpaced", "naive unpaced")):
        lines.append(_row(name, result[key]))
    lines.append("")
    lines.append("pipeline 30fps per stage (p50 / p95 / p99 ms):")
    for stage, q in result["pipeline_paced"]["latency_ms"].items():
        lines.append(f"  {stage:<10} {q.get('p50', 0):7.1f} {q.get('p95', 0):7.1f} {q.get('p99', 0):7.1f}")
    d = result["pipeline_paced"]["drift"]
    if d:
        lines.append(f"drift: total p50 first {d['window_s']:.0f} s {d['first_p50_ms']:.1f} ms -> last "
                     f"{d['window_s']:.0f} s {d['last_p50_ms']:.1f} ms ({d['change_ms']:+.1f} ms)")
    lines.append(f"throughput ratio pipeline / naive (unpaced): {result['throughput_ratio']}x")
    lines.append("targets: " + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in result["targets"].items()
                                         if v is not None))
    return "\n".join(lines)
