"""`dancenow bench engines BUNDLE`: every backend and precision the bundle offers here, against
PyTorch eager fp32 (built from the bundle's checkpoint.pt) measured in the same run.

Backends are timed round-robin, one call each in turn, so a busy machine slows them alike and the
ratios stay meaningful even when the absolute figures are noisy. Parity is PSNR of each backend's
frames against the eager frames on label maps of the built-in dance.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio

from dancenow.engines import load_engine
from dancenow.engines.base import to_image, to_tensor
from dancenow.engines.bundle import read_manifest
from dancenow.errors import DanceNowError
from dancenow.realtime.pose.choreography import PERIOD, pose_at
from dancenow.realtime.pose.figure import TARGET_STYLE, draw_figure
from dancenow.realtime.pose.renderer import RenderConfig, render_label_map
from dancenow.training.checkpoint import build_generator, load_checkpoint

BASELINE = ("torch-eager", "fp32")
CANDIDATES = [("tensorrt", None), ("onnxruntime", "int8"), ("onnxruntime", "fp32"), ("torch", "fp32")]


class _Eager:
    """The reference: the training code's Generator, eager mode, fp32."""

    name, precision, device = "torch-eager", "fp32", "cpu"

    def __init__(self, bundle: Path):
        self.net = build_generator(load_checkpoint(bundle / "checkpoint.pt"))

    def generate(self, label_map: np.ndarray, previous: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return to_image(self.net(torch.from_numpy(to_tensor(label_map)), torch.from_numpy(to_tensor(previous))).numpy())


def _inputs(manifest, n: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    size = manifest.resolution
    renderer = RenderConfig.from_dict(manifest.renderer or {})
    out = []
    for t in np.linspace(0.0, PERIOD, n, endpoint=False):
        out.append((render_label_map(pose_at(float(t), size), size, renderer),
                    draw_figure(pose_at(float(t) - 1 / 15, size), size, TARGET_STYLE)))
    return out


def run(bundle: str | os.PathLike, iterations: int | None = None, threads: int | None = None) -> dict:
    """Median/p95 latency, fps, GFLOP/s and parity per backend; ratio to PyTorch eager fp32."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle, verify=True)
    if "checkpoint.pt" not in manifest.artifacts:
        raise DanceNowError(f"{bundle} has no checkpoint.pt for the PyTorch eager baseline: re-export it")
    iterations = 40 if iterations is None else int(iterations)
    if iterations < 1:
        raise DanceNowError(f"--frames must be at least 1, got {iterations}")
    engines, skipped = {BASELINE: _Eager(bundle)}, {}
    for backend, precision in CANDIDATES:
        try:
            eng = load_engine(bundle, backend, threads=threads, precision=precision)
        except DanceNowError as e:
            skipped[f"{backend} {precision or ''}".strip()] = str(e)
            continue
        engines[(eng.name, eng.precision)] = eng
    inputs = _inputs(manifest)
    reference = [engines[BASELINE].generate(a, b) for a, b in inputs]
    psnr = {}
    for key, eng in engines.items():
        outs = [eng.generate(a, b) for a, b in inputs]  # also the warm-up
        err = np.mean([np.mean((o.astype(np.float64) - r) ** 2) for o, r in zip(outs, reference, strict=True)])
        psnr[key] = 120.0 if err == 0 else float(peak_signal_noise_ratio(np.stack(reference), np.stack(outs), data_range=255))
    times: dict = {k: [] for k in engines}
    for i in range(iterations):
        a, b = inputs[i % len(inputs)]
        for key, eng in engines.items():
            t = time.perf_counter()
            eng.generate(a, b)
            times[key].append(time.perf_counter() - t)
    gflop = float(manifest.generator.get("gflop") or 0.0)
    base_fps = 1.0 / float(np.median(times[BASELINE]))
    rows = []
    for (name, precision), ts in times.items():
        ms = np.asarray(ts) * 1000
        fps = 1000.0 / float(np.median(ms))
        rows.append({"backend": name, "precision": precision, "device": engines[(name, precision)].device,
                     "median_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
                     "fps": round(fps, 2), "gflops": round(gflop * fps, 1), "psnr_db": round(psnr[(name, precision)], 2),
                     "ratio": round(fps / base_fps, 2)})
    return {"bundle": str(bundle), "target": manifest.name, "resolution": list(manifest.resolution), "gflop": gflop,
            "iterations": iterations, "threads": threads or "default (one per core)",
            "baseline": " ".join(BASELINE), "rows": rows, "skipped": skipped,
            "load_average": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count()}


def format_table(r: dict) -> str:
    h, w = r["resolution"]
    lines = [f"engines bench: {r['target']} at {h}x{w}, {r['gflop']:.2f} GFLOP/frame, {r['iterations']} frames each, "
             f"round-robin; threads {r['threads']}; load average {r['load_average']} on {r['cpus']} CPUs",
             f"{'backend':<14}{'precision':<10}{'device':<8}{'median ms':>10}{'p95 ms':>9}{'fps':>8}{'GFLOP/s':>9}"
             f"{'PSNR dB':>9}{'x eager':>9}"]
    for row in r["rows"]:
        lines.append(f"{row['backend']:<14}{row['precision']:<10}{row['device']:<8}{row['median_ms']:>10.1f}"
                     f"{row['p95_ms']:>9.1f}{row['fps']:>8.1f}{row['gflops']:>9.1f}{row['psnr_db']:>9.2f}{row['ratio']:>9.2f}")
    lines.append(f"baseline: {r['baseline']} (PSNR against its own frames; 120 = identical)")
    lines += [f"skipped {k}: {v}" for k, v in r["skipped"].items()]
    return "\n".join(lines)
