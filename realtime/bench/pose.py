"""`dancenow bench pose`: what each pose stage costs per frame on real footage.

Stages: decode (PyAV decode, RGB, scale to 640 px on the long side, as a camera frame would
arrive), track (MediaPipe), filter (One Euro), normalize (EDN), render (label map at 256x256).
"pose stage" is track + filter + normalize + render of the same frame. Tracking uses MediaPipe on
all the machine's cores (`TrackerConfig.threads`); the same frames tracked again with one thread,
MediaPipe's own default, give the row "track 1 thread" to compare with, and once more with the
landmark network on OpenVINO (`TrackerConfig(landmarks="openvino")`, 1 thread). A fixed reference
workload timed in the same run (`baseline`) lets figures from a busy machine be compared: each
stage is also given as a ratio to it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from dancenow.realtime.bench.common import default_clip
from dancenow.realtime.media.reader import iter_frames
from dancenow.realtime.pose.filter import PoseFilter
from dancenow.realtime.pose.normalize import Normalizer, fit_stats
from dancenow.realtime.pose.renderer import render_label_map
from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig

SIDE = 640
RENDER_SIZE = (256, 256)
STAGES = ("decode", "track", "filter", "normalize", "render")
TARGETS_MS = {"render": 3.0, "pose stage": 25.0}


def _baseline_ms(repeats: int = 30) -> float:
    """Median time of a fixed workload (a 640 px Gaussian blur): the machine's speed right now."""
    img = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        cv2.GaussianBlur(img, (0, 0), 3.0)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def _summary(ms: list[float], baseline: float) -> dict:
    a = np.asarray(ms)
    return {"median_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "x_baseline": round(float(np.median(a)) / baseline, 2)}


def _track_ms(images: list[tuple[np.ndarray, float]], threads: int, landmarks: str = "mediapipe") -> list[float]:
    """Milliseconds per frame to track `images` on `threads` threads, the landmark network run by
    MediaPipe or (`landmarks="openvino"`) by OpenVINO."""
    times = []
    with PoseTracker(TrackerConfig(threads=threads, landmarks=landmarks)) as tracker:
        for image, ts in images:
            t = time.perf_counter()
            tracker.track(image, ts)
            times.append((time.perf_counter() - t) * 1e3)
    return times


def run(clip: str | Path | None = None, frames: int | None = None) -> dict:
    """Per-stage median and p95 milliseconds (JSON-able)."""
    clip = default_clip(clip)
    baseline_before = _baseline_ms()
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    filtered = []
    images = []
    pose_filter = PoseFilter()
    size = None
    threads = max(1, os.cpu_count() or 1)
    with PoseTracker(TrackerConfig(threads=threads)) as tracker:
        frames_iter = iter_frames(clip, max_frames=frames)
        while True:
            t0 = time.perf_counter()
            try:
                decoded = next(frames_iter)
            except StopIteration:
                break
            image, ts = decoded.image, decoded.time
            scale = SIDE / max(image.shape[:2])
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
            size = image.shape[:2]
            images.append((image, ts))
            t1 = time.perf_counter()
            pose = tracker.track(image, ts)
            t2 = time.perf_counter()
            filtered.append(pose_filter.apply(pose))
            t3 = time.perf_counter()
            times["decode"].append((t1 - t0) * 1e3)
            times["track"].append((t2 - t1) * 1e3)
            times["filter"].append((t3 - t2) * 1e3)
    # Normalization needs the clip's statistics first; the target is another body size and frame.
    stats = fit_stats(filtered)
    target = stats.__class__(**{**stats.to_dict(), "frame_size": RENDER_SIZE,
                                "ankle_close": 240.0, "ankle_far": 220.0, "ankle_median": 230.0,
                                "height_close": 200.0, "height_far": 180.0, "height_median": 200.0,
                                "x_center": 128.0, "mode": "two-position", "note": ""})
    normalizer = Normalizer(stats, target)
    for pose in filtered:
        t0 = time.perf_counter()
        norm = normalizer.apply(pose)
        t1 = time.perf_counter()
        render_label_map(norm, RENDER_SIZE)
        t2 = time.perf_counter()
        times["normalize"].append((t1 - t0) * 1e3)
        times["render"].append((t2 - t1) * 1e3)
    one_thread = _track_ms(images, threads=1)
    openvino_one = _track_ms(images, threads=1, landmarks="openvino")
    baseline = (baseline_before + _baseline_ms()) / 2
    total = [sum(times[s][i] for s in ("track", "filter", "normalize", "render")) for i in range(len(filtered))]
    result = {
        "clip": clip.name, "frames": len(filtered), "input_size": list(size or (0, 0)),
        "render_size": list(RENDER_SIZE), "detected": round(sum(p.detected for p in filtered) / max(1, len(filtered)), 3),
        "cpus": os.cpu_count(), "opencv_threads": cv2.getNumThreads(),
        "mediapipe_threads": threads,
        "baseline_ms": round(baseline, 3),
        "stages": {s: _summary(times[s], baseline) for s in STAGES},
    }
    result["stages"]["track 1 thread"] = _summary(one_thread, baseline)
    result["stages"]["track 1 thread, OpenVINO landmarks"] = _summary(openvino_one, baseline)
    result["openvino_landmarks_speedup"] = round(float(np.median(one_thread) / np.median(openvino_one)), 2)
    result["stages"]["pose stage"] = _summary(total, baseline)
    result["track_speedup"] = round(float(np.median(one_thread) / np.median(times["track"])), 2)
    result["targets_ms"] = TARGETS_MS
    result["meets_targets"] = {k: result["stages"][k]["median_ms"] <= v for k, v in TARGETS_MS.items()}
    return result


def format_table(r: dict) -> str:
    lines = [
        f"bench pose: {r['clip']}, {r['frames']} frames at {r['input_size'][0]}x{r['input_size'][1]} (HxW), "
        f"label map {r['render_size'][0]}x{r['render_size'][1]}, detected {r['detected']:.1%}",
        f"cpus {r['cpus']}, opencv threads {r['opencv_threads']}, mediapipe threads: {r['mediapipe_threads']}",
        f"baseline (640 px blur, same run) {r['baseline_ms']:.2f} ms",
        f"{'stage':<36}{'median ms':>11}{'p95 ms':>9}{'x base':>8}  target",
    ]
    for name, s in r["stages"].items():
        target = r["targets_ms"].get(name)
        verdict = "" if target is None else f"<= {target:g} ms: {'ok' if s['median_ms'] <= target else 'MISSED'}"
        lines.append(f"{name:<36}{s['median_ms']:>11.2f}{s['p95_ms']:>9.2f}{s['x_baseline']:>8.1f}  {verdict}")
    lines.append(f"tracking on {r['mediapipe_threads']} threads is {r['track_speedup']:.2f}x MediaPipe's default (1 thread); "
                 f"on 1 thread, MediaPipe's landmark network on OpenVINO is {r['openvino_landmarks_speedup']:.2f}x MediaPipe")
    return "\n".join(lines)
