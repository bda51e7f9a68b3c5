"""`dancenow bench engines BUNDLE`: every backend and precision the bundle offers here, at 1 and 2
threads, against PyTorch eager fp32 (built from the bundle's checkpoint.pt) and against ONNX Runtime
INT8 (the CPU default before OpenVINO), both measured in the same run, plus what `auto` picks.

Each engine is timed in blocks of consecutive calls, two passes in alternating order. Not one call
each in turn: a backend's worker threads keep spinning after a call (ONNX Runtime's, oneTBB's,
OpenMP's) and interleaving measured OpenVINO bf16 twice too slow right after ONNX Runtime. The
alternating passes make a change in machine load hit every engine alike. Parity is PSNR of each
engine's frames against the eager frames on label maps of the built-in dance. Every result names
the host (CPU model, cores, ISA flags, ONEDNN_MAX_CPU_ISA cap): figures from different hosts differ.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from dancenow.engines import load_engine
from dancenow.engines.base import to_image, to_tensor
from dancenow.engines.choice import psnr as psnr_of
from dancenow.errors import DanceNowError
from dancenow.host import cpu_info, describe_cpu
from dancenow.realtime.live.target import Target
from dancenow.realtime.pose.choreography import PERIOD, pose_at
from dancenow.realtime.pose.figure import TARGET_STYLE, draw_figure
from dancenow.realtime.pose.renderer import render_label_map
from dancenow.training.checkpoint import build_generator, load_checkpoint

BASELINE = ("torch-eager", "fp32")
REFERENCE = ("onnxruntime", "int8")  # every row's speed-up is also given against this one
CANDIDATES = [("tensorrt", None), ("openvino", "bf16"), ("openvino", "int8"), ("openvino", "int8-qdq"),
              ("openvino", "fp32"), ("onnxruntime", "int8"), ("onnxruntime", "fp32"), ("torch", "fp32"),
              ("auto", None)]
THREAD_COUNTS = (1, 2)
PASSES = 2
# The OpenVINO issue's bars: its best row (parity held) at least 2.5x ONNX Runtime INT8 where the CPU
# runs bf16 (AVX512_BF16 or AMX, no ISA cap), and `auto` never slower than ONNX Runtime INT8.
BAR = 2.5
MIN_PSNR = {"bf16": 40.0, "fp32": 50.0}  # else (INT8 files) 30 dB; against eager fp32


class _Eager:
    """The reference: the training code's Generator, eager mode, fp32."""

    name, precision, device = "torch-eager", "fp32", "cpu"

    def __init__(self, bundle: Path):
        self.net = build_generator(load_checkpoint(bundle / "checkpoint.pt"))

    def generate(self, label_map: np.ndarray, previous: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return to_image(self.net(torch.from_numpy(to_tensor(label_map)), torch.from_numpy(to_tensor(previous))).numpy())


def _inputs(target: Target, n: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    size, renderer = target.resolution, target.render
    out = []
    for t in np.linspace(0.0, PERIOD, n, endpoint=False):
        out.append((render_label_map(pose_at(float(t), size), size, renderer),
                    draw_figure(pose_at(float(t) - 1 / 15, size), size, TARGET_STYLE)))
    return out


def _load(target: Target, backend: str, precision: str | None, threads: int):
    """One engine; "int8-qdq" is OpenVINO running the QDQ ONNX file (what bundles without an INT8 IR get)."""
    if precision != "int8-qdq":
        return load_engine(target.bundle, backend, threads=threads, precision=precision)
    from dancenow.engines.openvino_engine import OpenVinoEngine

    rel = next((r for r, e in target.artifacts.items()
                if (e.get("kind"), e.get("role"), e.get("precision")) == ("onnx", "generator", "int8")), None)
    if rel is None:
        raise DanceNowError("the bundle has no QDQ INT8 ONNX generator")
    eng = OpenVinoEngine(target.bundle / rel, target.resolution, "int8", threads=threads)
    eng.precision = "int8-qdq"
    return eng


def _time(engines: dict, inputs: list, iterations: int, passes: int) -> dict:
    """Per engine: `iterations` timed calls, split over `passes` blocks in alternating order; a list
    of each pass's call times per engine."""
    times: dict = {k: [[] for _ in range(passes)] for k in engines}
    order = list(engines)
    for p in range(passes):
        n = iterations // passes + (1 if p < iterations % passes else 0)
        if n == 0:
            continue
        for key in order if p % 2 == 0 else order[::-1]:
            eng = engines[key]
            time.sleep(0.1)  # and two untimed calls: the previous block's worker threads stop spinning
            for a, b in inputs[:2]:
                eng.generate(a, b)
            for i in range(n):
                a, b = inputs[i % len(inputs)]
                t = time.perf_counter()
                eng.generate(a, b)
                times[key][p].append(time.perf_counter() - t)
    return times


def _phase(target: Target, threads: int, iterations: int, passes: int, inputs: list, gflop: float,
           skipped: dict, first: bool) -> list[dict]:
    """Every engine at `threads` threads, timed against each other."""
    torch.set_num_threads(threads)
    engines = {(*BASELINE, threads): _Eager(target.bundle)}
    for backend, precision in CANDIDATES:
        if backend == "tensorrt" and not first:
            continue
        try:
            eng = _load(target, backend, precision, threads)
        except DanceNowError as e:
            skipped[f"{backend} {precision or ''}".strip()] = str(e)
            continue
        engines[("auto" if backend == "auto" else eng.name, eng.precision, threads)] = eng
    torch.set_num_threads(threads)  # a torch engine sets it process-wide; keep the phase's count
    reference = [engines[(*BASELINE, threads)].generate(a, b) for a, b in inputs]
    psnr = {k: psnr_of(reference, [e.generate(a, b) for a, b in inputs]) for k, e in engines.items()}  # + warm-up
    per_pass = _time(engines, inputs, iterations, passes)
    times = {k: [t for block in v for t in block] for k, v in per_pass.items()}
    med = {k: float(np.median(v)) * 1000 for k, v in times.items()}
    base, ref = med[(*BASELINE, threads)], med.get((*REFERENCE, threads))
    rows = []
    for key, ts in times.items():
        ms = np.asarray(ts) * 1000
        eng = engines[key]
        row = {"backend": key[0], "precision": key[1], "threads": threads, "device": eng.device,
               "median_ms": round(med[key], 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
               "fps": round(1000.0 / med[key], 2), "gflops": round(gflop * 1000.0 / med[key], 1),
               "psnr_db": round(psnr[key], 2), "ratio": round(base / med[key], 2),
               "vs_ort_int8": round(ref / med[key], 2) if ref else None, "source": getattr(eng, "source", None),
               "passes_ms": [round(float(np.median(b)) * 1000, 2) for b in per_pass[key] if b]}
        if key[0] == "auto":
            choice = eng.choice or {}
            row["choice"] = {"backend": eng.name, "precision": eng.precision, "cached": choice.get("cached"),
                             "candidates": choice.get("candidates"), "skipped": choice.get("skipped")}
        rows.append(row)
    return rows


def run(bundle: str | os.PathLike, iterations: int | None = None, threads: int | None = None,
        passes: int = PASSES, size: str = "full") -> dict:
    """Median/p95 latency, fps, GFLOP/s and parity per engine and thread count; ratios to PyTorch eager
    fp32 and to ONNX Runtime INT8 at the same thread count. `threads`: only that count (else 1 and 2).
    `passes`: blocks in alternating order the calls are split over (more: steadier on a drifting host;
    each pass's median is kept in `passes_ms`)."""
    bundle = Path(bundle)
    iterations = 40 if iterations is None else int(iterations)
    if iterations < 1:
        raise DanceNowError(f"--frames must be at least 1, got {iterations}")
    if passes < 1:
        raise DanceNowError(f"--rounds must be at least 1, got {passes}")
    if threads is not None and threads < 1:
        raise DanceNowError(f"threads must be at least 1, got {threads}")
    # the bundle, verified, read once (an HD bundle at the size asked for: both are worth timing)
    target = Target.open(bundle, backend="onnxruntime", precision="fp32", size=size)
    if "checkpoint.pt" not in target.artifacts:
        raise DanceNowError(f"{bundle} has no checkpoint.pt for the PyTorch eager baseline: re-export it")
    gflop = target.gflop
    inputs = _inputs(target)
    counts = (int(threads),) if threads else THREAD_COUNTS
    skipped: dict = {}
    saved = torch.get_num_threads()
    try:
        rows = [row for i, t in enumerate(counts)
                for row in _phase(target, t, iterations, passes, inputs, gflop, skipped, i == 0)]
    finally:
        torch.set_num_threads(saved)
    from dancenow.engines.openvino_engine import bf16_unavailable

    return {"bundle": str(bundle), "target": target.name, "resolution": list(target.resolution), "gflop": gflop,
            "iterations": iterations, "passes": passes, "threads": list(counts), "baseline": " ".join(BASELINE),
            "reference": " ".join(REFERENCE), "rows": rows, "targets": targets(rows, bf16_unavailable() is None),
            "skipped": skipped, "host": cpu_info(),
            "load_average": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count()}


def targets(rows: list[dict], bf16_host: bool) -> list[dict]:
    """Per thread count: the best OpenVINO row against ONNX Runtime INT8 (judged on a bf16 host only)
    and the `auto` row against it."""
    out = []
    for t in sorted({r["threads"] for r in rows}):
        mine = [r for r in rows if r["threads"] == t and r["vs_ort_int8"] is not None]
        ov = [r for r in mine if (r["backend"] == "openvino" or (r.get("choice") or {}).get("backend") == "openvino")
              and r["psnr_db"] >= MIN_PSNR.get(r["precision"], 30.0)]
        best = max(ov, key=lambda r: r["vs_ort_int8"], default=None)
        if best is not None:
            out.append({"target": f"best OpenVINO row >= {BAR}x ONNX Runtime INT8 (hosts with bf16)", "threads": t,
                        "row": f"{best['backend']} {best['precision']}", "value": best["vs_ort_int8"],
                        "ok": best["vs_ort_int8"] >= BAR if bf16_host else None})
        auto = next((r for r in mine if r["backend"] == "auto"), None)
        if auto is not None:
            out.append({"target": "auto not slower than ONNX Runtime INT8", "threads": t,
                        "row": f"auto {auto['precision']}", "value": auto["vs_ort_int8"], "ok": auto["vs_ort_int8"] >= 1.0})
    return out


def format_table(r: dict) -> str:
    h, w = r["resolution"]
    lines = [f"engines bench: {r['target']} at {h}x{w}, {r['gflop']:.2f} GFLOP/frame, {r['iterations']} frames per engine, "
             f"in {r['passes']} alternating blocks; threads {', '.join(map(str, r['threads']))}; load average {r['load_average']}",
             f"host: {describe_cpu()}",
             f"{'backend':<15}{'precision':<10}{'thr':>4}{'median ms':>10}{'p95 ms':>8}{'fps':>7}{'GFLOP/s':>8}"
             f"{'PSNR dB':>8}{'x eager':>8}{'x ORT int8':>11}  source"]
    for row in r["rows"]:
        vs = f"{row['vs_ort_int8']:>11.2f}" if row["vs_ort_int8"] is not None else f"{'-':>11}"
        name = row["backend"]
        if "choice" in row:
            name = f"auto:{row['choice']['backend']}"
        lines.append(f"{name:<15}{row['precision']:<10}{row['threads']:>4}{row['median_ms']:>10.1f}{row['p95_ms']:>8.1f}"
                     f"{row['fps']:>7.1f}{row['gflops']:>8.1f}{row['psnr_db']:>8.2f}{row['ratio']:>8.2f}{vs}"
                     f"  {row['source'] or ''}")
    lines.append(f"baseline: {r['baseline']} (PSNR against its own frames; 120 = identical); "
                 f"x ORT int8: speed against {r['reference']} at the same thread count")
    lines += [f"skipped {k}: {v}" for k, v in r["skipped"].items()]
    verdict = {True: "ok", False: "missed", None: "not judged (no bf16 here)"}
    lines += [f"target {t['threads']} thread{'s' * (t['threads'] > 1)}: {t['target']}: {t['row']} {t['value']:.2f}x, "
              f"{verdict[t['ok']]}" for t in r.get("targets", [])]
    return "\n".join(lines)
