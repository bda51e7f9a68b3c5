"""`backend="auto"` on a CPU: measure every backend and precision on the target's own inputs, keep the
fastest that keeps parity with fp32, and remember the choice.

Why measure: which engine is fastest depends on the CPU (AMX/AVX512_BF16 make OpenVINO bf16 several
times faster than anything else; on an AVX2 host INT8 wins), on the thread count and on the
library versions; no fixed order is right on every host. The choice is cached per bundle manifest
(sha256), CPU model, ISA flags, ONEDNN_MAX_CPU_ISA cap, thread count and library versions in
`cache_dir()/engine-choice/`, so it is measured once (about a second per candidate) and again
whenever any of those change. A cache entry that does not validate is ignored (logged) and the
choice measured again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from dancenow import files, host
from dancenow.engines.base import Engine
from dancenow.engines.bundle import MANIFEST, Manifest
from dancenow.errors import DanceNowError
from dancenow.schema import parse

log = logging.getLogger(__name__)

RECORD_VERSION = 1
SECONDS = 1.0  # timing budget per candidate
PASSES = 2  # each candidate timed in PASSES blocks of SECONDS / PASSES
MIN_CALLS = 3  # per block
DISCARD = 2  # calls at the start of a block that are not timed
GAP = 0.1  # seconds between blocks, with DISCARD: the worker threads of the block before stop spinning
MIN_PSNR = {"fp32": 40.0, "bf16": 40.0, "int8": 30.0}  # dB against fp32 on the same inputs
PSNR_CAP = 120.0
# Every candidate auto may take on a CPU, fastest-expected first (ties keep this order). Graphs
# only: the bundle's TorchScript is a program, run only when asked for by name (`--backend torch`).
CANDIDATES = [("openvino", "bf16"), ("openvino", "int8"), ("openvino", "fp32"),
              ("onnxruntime", "int8"), ("onnxruntime", "fp32")]
REFERENCES = [("openvino", "fp32"), ("onnxruntime", "fp32")]  # parity is against fp32
SAMPLES_KIND = "samples"
_LIBRARIES = ("openvino", "onnxruntime")

Loader = Callable[[str, str], Engine]  # (backend, precision) -> engine; raises `skip` when it cannot run here


# --- the key and the cache -------------------------------------------------------------------

def _version(dist: str) -> str | None:
    for name in (dist, f"{dist}-gpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def choice_key(bundle: Path, threads: int | None, precision: str | None = None) -> dict:
    """Everything the fastest engine depends on (and the precision the caller asked for, if any)."""
    info = host.cpu_info()
    return {"manifest_sha256": files.sha256(bundle / MANIFEST), "cpu": info.get("model"),
            "flags": list(info.get("flags") or []), "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "threads": threads, "precision": precision, "versions": {lib: _version(lib) for lib in _LIBRARIES}}


def cache_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return files.cache_dir() / "engine-choice" / f"{digest}.json"


@dataclass
class _Candidate:
    """One measured candidate, as remembered (the schema the cache file is checked against)."""

    backend: str
    precision: str
    median_ms: float
    p95_ms: float
    psnr_db: float | None
    passed: bool
    calls: int


@dataclass
class _Record:
    version: int
    key: dict
    backend: str
    precision: str
    candidates: list[_Candidate]
    skipped: dict[str, str]
    inputs: str
    measured: str
    seconds: float


def _invalid(record: object, key: dict) -> str | None:
    """Why a cached record cannot be used, or None (types checked by the one JSON parser)."""
    try:
        parse(_Record, record, "engine choice", "it is measured again")
    except DanceNowError as e:
        return str(e)
    assert isinstance(record, dict)
    if record["version"] != RECORD_VERSION or record["key"] != key:
        return "another version or key"
    if (record["backend"], record["precision"]) not in CANDIDATES:
        return f"unknown choice {record['backend']} {record['precision']}"
    return None


def read_cached(key: dict) -> dict | None:
    """The remembered choice for `key`, or None (absent, unreadable or not valid: logged)."""
    path = cache_path(key)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        log.warning("engine choice %s is unreadable (%s): measuring again", path, e)
        return None
    why = _invalid(record, key)
    if why:
        log.warning("engine choice %s is not valid (%s): measuring again", path, why)
        return None
    return record


def write_cached(record: dict) -> Path:
    path = cache_path(record["key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_atomic(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path


# --- the inputs ------------------------------------------------------------------------------

def synthetic_inputs(size: tuple[int, int], n: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deterministic stick figures on white (label maps) and on grey (previous frames), for bundles
    exported before `samples.npz`: realistic enough that no backend sees a blank image."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):
        a = 0.6 * np.sin(i * 1.3)  # arm angle varies per sample
        joints = {"head": (0.15, 0.5), "neck": (0.25, 0.5), "hip": (0.55, 0.5), "lh": (0.45 - 0.2 * a, 0.25),
                  "rh": (0.45 + 0.2 * a, 0.75), "lf": (0.92, 0.38), "rf": (0.92, 0.62)}
        limbs = [("head", "neck", (255, 0, 85)), ("neck", "hip", (255, 170, 0)), ("neck", "lh", (0, 255, 0)),
                 ("neck", "rh", (0, 85, 255)), ("hip", "lf", (170, 0, 255)), ("hip", "rf", (0, 255, 255))]
        label = np.full((h, w, 3), 255, np.uint8)
        prev = np.full((h, w, 3), 110, np.uint8)
        for p, q, colour in limbs:
            (py, px), (qy, qx) = ((joints[k][0] * h, joints[k][1] * w) for k in (p, q))
            d = np.array([qy - py, qx - px], np.float32)
            t = np.clip(((yy - py) * d[0] + (xx - px) * d[1]) / max(float(d @ d), 1e-6), 0, 1)
            near = np.hypot(yy - py - t * d[0], xx - px - t * d[1]) < max(2.0, 0.03 * w)
            label[near] = colour
            prev[near] = (200, 160, 130)
        out.append((label, prev))
    return out


def sample_inputs(bundle: Path, manifest: Manifest) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """The bundle's held-out label maps and previous frames (samples.npz), else synthetic ones."""
    h, w = manifest.resolution
    for rel, entry in manifest.artifacts.items():
        if entry.get("kind") != SAMPLES_KIND:
            continue
        try:
            with np.load(bundle / rel, allow_pickle=False) as z:  # arrays only: nothing runs
                labels, prev = z["labels"], z["previous"]
        except (OSError, KeyError, ValueError) as e:
            log.warning("%s is unreadable (%s): timing on synthetic inputs", rel, e)
            break
        if labels.dtype == prev.dtype == np.uint8 and labels.shape == prev.shape and labels.ndim == 4 \
                and labels.shape[1:] == (h, w, 3) and len(labels):
            return [(labels[i], prev[i]) for i in range(len(labels))], f"{rel} ({len(labels)} held-out label maps)"
        log.warning("%s holds %s %s, expected uint8 N x %d x %d x 3: timing on synthetic inputs",
                    rel, labels.dtype, labels.shape, h, w)
        break
    return synthetic_inputs((h, w)), "synthetic stick figures (the bundle has no samples.npz)"


# --- measuring -------------------------------------------------------------------------------

def psnr(reference: list[np.ndarray], test: list[np.ndarray]) -> float:
    """PSNR in dB of uint8 frames against the reference frames (PSNR_CAP when identical)."""
    ref = np.stack(reference).astype(np.float64)
    mse = float(np.mean((np.stack(test).astype(np.float64) - ref) ** 2))
    return PSNR_CAP if mse == 0 else round(min(PSNR_CAP, float(10 * np.log10(255.0 ** 2 / mse))), 2)


def _time_block(engine: Engine, inputs: list[tuple[np.ndarray, np.ndarray]], seconds: float) -> list[float]:
    """Consecutive calls for `seconds` (at least MIN_CALLS), after DISCARD calls that absorb the
    previous block's spinning worker threads."""
    time.sleep(GAP)
    for a, b in inputs[:DISCARD]:
        engine.generate(a, b)
    out: list[float] = []
    end = time.perf_counter() + seconds
    while len(out) < MIN_CALLS or time.perf_counter() < end:
        a, b = inputs[len(out) % len(inputs)]
        t = time.perf_counter()
        engine.generate(a, b)
        out.append(time.perf_counter() - t)
    return out


def _reference(load: Loader, inputs: list[tuple[np.ndarray, np.ndarray]], skip: type[Exception]) -> list | None:
    """fp32 frames to check parity against when no fp32 candidate is measured (auto with precision="int8")."""
    for cand in REFERENCES:
        try:
            engine = load(*cand)
        except skip:
            continue
        return [engine.generate(a, b) for a, b in inputs]
    return None


def measure(candidates: list[tuple[str, str]], load: Loader, inputs: list[tuple[np.ndarray, np.ndarray]],
            seconds: float = SECONDS, skip: type[Exception] = DanceNowError,
            ) -> tuple[dict[tuple[str, str], Engine], list[dict], dict[str, str]]:
    """Load each candidate, check parity against the first fp32 one, time each in blocks.

    Blocks, not one call each in turn: a backend's worker threads keep spinning for a while after a
    call (ONNX Runtime's, oneTBB's), and interleaving measured the next backend up to twice too slow.
    PASSES passes in alternating order, so a change in machine load hits every candidate alike.
    A candidate whose load raises `skip` is listed as skipped; other errors propagate."""
    engines: dict[tuple[str, str], Engine] = {}
    skipped: dict[str, str] = {}
    for cand in candidates:
        try:
            engines[cand] = load(*cand)
        except skip as e:
            skipped[" ".join(cand)] = str(e)
    outputs = {c: [e.generate(a, b) for a, b in inputs] for c, e in engines.items()}  # also the warm-up
    ref = next((outputs[c] for c in engines if c[1] == "fp32"), None) or _reference(load, inputs, skip)
    times: dict[tuple[str, str], list[float]] = {c: [] for c in engines}
    order = list(engines)
    for p in range(PASSES):
        for c in order if p % 2 == 0 else order[::-1]:
            times[c] += _time_block(engines[c], inputs, seconds / PASSES)
    figures = []
    for c in engines:
        ms = np.asarray(times[c]) * 1000
        db = psnr(ref, outputs[c]) if ref is not None else None
        figures.append({"backend": c[0], "precision": c[1], "median_ms": round(float(np.median(ms)), 2),
                        "p95_ms": round(float(np.percentile(ms, 95)), 2), "psnr_db": db,
                        "passed": bool(db is None and c[1] == "fp32" or db is not None and db >= MIN_PSNR[c[1]]),
                        "calls": len(ms)})
    return engines, figures, skipped


def describe(record: dict) -> str:
    """One line: the choice and every candidate's figures."""
    parts = [f"{c['backend']} {c['precision']} {c['median_ms']:.1f} ms"
             + (f" {c['psnr_db']:.1f} dB" if c["psnr_db"] is not None else "")
             + ("" if c["passed"] else f" (below {MIN_PSNR[c['precision']]:.0f} dB)") for c in record["candidates"]]
    parts += [f"{k} skipped ({v.split(':')[0]})" for k, v in record["skipped"].items()]
    return f"{record['backend']} {record['precision']} [{'; '.join(parts)}]"


def choose(bundle: Path, manifest: Manifest, threads: int | None, load: Loader,
           precision: str | None = None, skip: type[Exception] = DanceNowError) -> Engine:
    """The fastest engine that keeps parity here: remembered, or measured now and remembered."""
    key = choice_key(bundle, threads, precision)
    record = read_cached(key)
    if record is not None:
        try:
            engine = load(record["backend"], record["precision"])
        except skip as e:
            log.warning("remembered engine %s %s cannot load (%s): measuring again", record["backend"],
                        record["precision"], e)
        else:
            engine.choice = {**record, "cached": True, "file": str(cache_path(key))}
            log.info("auto: %s (remembered from %s)", describe(record), record["measured"])
            return engine
    candidates = [c for c in CANDIDATES if precision in (None, c[1])]
    inputs, source = sample_inputs(bundle, manifest)
    t0 = time.monotonic()
    engines, figures, skipped = measure(candidates, load, inputs, SECONDS, skip)
    passed = [f for f in figures if f["passed"]]
    if not passed:
        raise DanceNowError(f"no backend can run {bundle} with parity here: "
                            + "; ".join([f"{f['backend']} {f['precision']}: {f['psnr_db']} dB" for f in figures]
                                        + [f"{k}: {v}" for k, v in skipped.items()]))
    best = min(passed, key=lambda f: f["median_ms"])
    engine = engines[(best["backend"], best["precision"])]
    record = {"version": RECORD_VERSION, "key": key, "backend": best["backend"], "precision": best["precision"],
              "candidates": figures, "skipped": skipped, "inputs": source,
              "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.monotonic() - t0, 2)}
    try:
        path = str(write_cached(record))
    except OSError as e:
        log.warning("cannot remember the engine choice (%s): it will be measured again next time", e)
        path = None
    engine.choice = {**record, "cached": False, "file": path}
    log.info("auto: %s, measured in %.1f s on %s", describe(record), record["seconds"], host.describe_cpu())
    return engine
