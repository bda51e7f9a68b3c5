"""`dancenow bench budgets`: the cpu-realtime generator's two live budgets, v1 against v2, one run.

Budget 1: on the engine `auto` would choose here, v2 takes no longer than v1 (ngf 16) on ONNX
Runtime INT8. Budget 2: under `ONEDNN_MAX_CPU_ISA=AVX2` (OpenVINO, 1 thread: the AVX2 picture on
any host) v2 takes at most 20 ms, so that an AVX2 two-core laptop, where MediaPipe takes about
30 ms on one core, can run live at 30 fps. Both generators are built with random weights (time does
not depend on them) at the profile's 256x192, exported as `export-engine` does (ONNX, ONNX Runtime
QDQ INT8, NNCF INT8 IR, calibrated on the built-in choreography), and every timing runs in its
own process (the ISA cap is read when oneDNN starts). `widths` adds v2 rows at other ngf (or
(ngf, residual blocks) pairs): the time side of the generator's size question.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dancenow.realtime.bench.common import host

BUDGET_AVX2_MS = 20.0
ROUNDS = 3  # interleaved rounds by default: one round can land in a slow spell of a shared host
RUNS = (  # name, artifact, engine precision, ISA cap
    ("ort_int8", "int8.onnx", "ort-int8", None),
    ("openvino_bf16", "onnx", "bf16", None),
    ("openvino_int8", "int8.xml", "int8", None),
    ("avx2_openvino_fp32", "onnx", "fp32", "AVX2"),
    ("avx2_openvino_int8", "int8.xml", "int8", "AVX2"),
)


def _build(profile: str, folder: Path, ngf: int | None = None, blocks: int | None = None) -> dict:
    """The profile's generator (seed 0; at `ngf` and `blocks` when given) as ONNX, ONNX Runtime INT8
    and OpenVINO INT8 IR."""
    import contextlib
    import io
    from dataclasses import replace

    import nncf
    import openvino as ov
    import torch

    from dancenow.export.calibration import synthetic
    from dancenow.export.exporter import GEN_IO, to_onnx
    from dancenow.export.openvino_ir import quiet_nncf
    from dancenow.export.ort_int8 import quantize
    from dancenow.realtime.pose.renderer import RenderConfig
    from dancenow.training.networks import Generator, count_gflop
    from dancenow.training.profiles import get_profile

    prof = get_profile(profile)
    if ngf is not None:
        prof = replace(prof, generator=replace(prof.generator, ngf=ngf))
    if blocks is not None:
        prof = replace(prof, generator=replace(prof.generator, n_blocks=blocks))
    name = profile + (f"-ngf{ngf}" if ngf is not None else "") + (f"-b{blocks}" if blocks is not None else "")
    torch.manual_seed(0)
    g = Generator(prof.generator).eval()
    if prof.generator.alpha:
        g.set_plate(torch.rand(1, 3, *prof.size) * 2 - 1)
    base = folder / name
    (base.parent).mkdir(parents=True, exist_ok=True)
    Path(f"{base}.onnx").write_bytes(to_onnx(g, prof.size, GEN_IO, 17, True).SerializeToString())
    calib, held = synthetic(g, prof.size, RenderConfig(), None, 16, 4)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        quantize(Path(f"{base}.onnx"), Path(f"{base}.int8.onnx"), calib.feeds(), held.feeds(), 0.0, True, profile)
        quiet_nncf()
        q = nncf.quantize(ov.Core().read_model(f"{base}.onnx"), nncf.Dataset(calib.feeds()), subset_size=16)
        ov.save_model(q, f"{base}.int8.xml", compress_to_fp16=False)
    zeros = torch.zeros(1, 3, *prof.size)
    return {"profile": name, "artifact": str(base), "ngf": prof.generator.ngf, "blocks": prof.generator.n_blocks,
            "size": list(prof.size), "gflop": round(count_gflop(g, zeros, zeros), 2),
            "params_m": round(sum(p.numel() for p in g.parameters()) / 1e6, 2)}


def _time(path: str, precision: str, size: tuple[int, int], calls: int = 60) -> dict:
    """Median and p95 ms of `calls` generator calls on one thread (run in a child process)."""
    from dancenow.engines.choice import synthetic_inputs

    if precision == "ort-int8":
        from dancenow.engines.onnxruntime_engine import OnnxRuntimeEngine

        engine = OnnxRuntimeEngine(Path(path), size, "int8", device="cpu", threads=1)
    else:
        from dancenow.engines.openvino_engine import OpenVinoEngine

        engine = OpenVinoEngine(Path(path), size, precision, threads=1)
    inputs = synthetic_inputs(size, 4)
    for a, b in inputs * 2:
        engine.generate(a, b)
    ms = []
    for i in range(calls):
        a, b = inputs[i % 4]
        t = time.perf_counter()
        engine.generate(a, b)
        ms.append((time.perf_counter() - t) * 1e3)
    return {"median_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def _child(artifact: str, suffix: str, precision: str, cap: str | None, size: list[int]) -> dict:
    """One timing in its own process (the ISA cap is read when oneDNN starts)."""
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if cap:
        env["ONEDNN_MAX_CPU_ISA"] = cap
    args = [sys.executable, "-m", "dancenow.realtime.bench.budgets", f"{artifact}.{suffix}", precision, *map(str, size)]
    out = subprocess.run(args, env=env, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr.strip()[-300:]}


def _summary(runs: list[dict]) -> dict:
    """The median of the rounds' medians (a shared host's speed drifts by 20-30% over minutes: one
    round can land in a slow spell), with every round's median kept."""
    ok = [r for r in runs if "median_ms" in r]
    if not ok:
        return runs[-1]
    return {"median_ms": round(float(np.median([r["median_ms"] for r in ok])), 2),
            "p95_ms": round(float(np.median([r["p95_ms"] for r in ok])), 2),
            "rounds_ms": [r["median_ms"] for r in ok]}


def run(widths: tuple[int | tuple[int, int], ...] = (), rounds: int = ROUNDS) -> dict:
    """`widths`: extra v2 rows, each an ngf or an (ngf, residual blocks) pair. Every artifact is timed
    once per round, the rounds interleaved, so a slow spell of the host hits every row alike."""
    rows, artifacts = [], []
    extra = [("cpu-realtime", *(w if isinstance(w, tuple) else (w, None))) for w in widths]
    with tempfile.TemporaryDirectory() as tmp:
        for profile, ngf, blocks in [("cpu-realtime-v1", None, None), ("cpu-realtime", None, None), *extra]:
            row = _build(profile, Path(tmp), ngf, blocks)
            artifacts.append(row.pop("artifact"))
            rows.append(row)
        timings = {(i, name): [] for i in range(len(rows)) for name, *_ in RUNS}
        for _ in range(rounds):
            for i, row in enumerate(rows):
                for name, suffix, precision, cap in RUNS:
                    timings[i, name].append(_child(artifacts[i], suffix, precision, cap, row["size"]))
    for i, row in enumerate(rows):
        for name, *_ in RUNS:
            row[name] = _summary(timings[i, name])
        best = [row[k]["median_ms"] for k in ("openvino_bf16", "openvino_int8") if "median_ms" in row[k]]
        if best and "median_ms" in row["ort_int8"]:  # issue 13's ratio, on each width
            row["openvino_vs_ort_int8"] = round(row["ort_int8"]["median_ms"] / min(best), 2)
    v1, v2 = rows[:2]
    v2_best = min((v2[k]["median_ms"] for k in ("openvino_bf16", "openvino_int8", "ort_int8") if "median_ms" in v2[k]),
                  default=None)
    avx2 = v2["avx2_openvino_int8"].get("median_ms")
    return {"host": host(), "rounds": rounds, "rows": rows, "budgets": {
        "v2_best_ms": v2_best, "v1_ort_int8_ms": v1["ort_int8"].get("median_ms"),
        "not_above_v1_ort_int8": v2_best is not None and v2_best <= v1["ort_int8"].get("median_ms", 0),
        "v2_avx2_int8_ms": avx2, "avx2_max_ms": BUDGET_AVX2_MS,
        "avx2_within": avx2 is not None and avx2 <= BUDGET_AVX2_MS}}


def format_table(r: dict) -> str:
    from dancenow.host import describe_cpu

    lines = [f"bench budgets: the cpu-realtime generator, v1 against v2, 1 thread, median of {r.get('rounds', 1)} "
             f"interleaved rounds; host: {describe_cpu()}",
             f"{'profile':<22}{'GFLOP':>7}{'params M':>9}" + "".join(f"{name:>20}" for name, *_ in RUNS)
             + f"{'OV vs ORT INT8':>16}"]
    for row in r["rows"]:
        cells = "".join(f"{row[name].get('median_ms', float('nan')):>14.2f} ms p50" if "median_ms" in row[name]
                        else f"{'error':>20}" for name, *_ in RUNS)
        ratio = f"{row['openvino_vs_ort_int8']:>15.2f}x" if "openvino_vs_ort_int8" in row else f"{'-':>16}"
        lines.append(f"{row['profile']:<22}{row['gflop']:>7}{row['params_m']:>9}{cells}{ratio}")
    b = r["budgets"]
    lines.append(f"budget 1: v2 on its best engine {b['v2_best_ms']} ms vs v1 on ONNX Runtime INT8 {b['v1_ort_int8_ms']} ms: "
                 f"{'met' if b['not_above_v1_ort_int8'] else 'MISSED'}")
    lines.append(f"budget 2: v2 under ONEDNN_MAX_CPU_ISA=AVX2, OpenVINO INT8 {b['v2_avx2_int8_ms']} ms (at most "
                 f"{b['avx2_max_ms']:g}): {'met' if b['avx2_within'] else 'MISSED'}")
    return "\n".join(lines)


if __name__ == "__main__":  # a child: time one artifact
    print(json.dumps(_time(sys.argv[1], sys.argv[2], (int(sys.argv[3]), int(sys.argv[4])))))
