"""One bundle, two sizes: an HD bundle also holds its coarse network as a bundle at half the size
(`half/`). `auto` opens the full size when its generator and face pass fit the live budget on
this host, as measured (the backend choice's own timing, remembered per bundle and host), else the half size,
and says why; `full` and `half` force one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dancenow.engines.base import Engine
from dancenow.engines.bundle import read_manifest
from dancenow.engines.loader import load_engine
from dancenow.errors import DanceNowError

log = logging.getLogger(__name__)
SIZES = ("auto", "full", "half")
# The full size is chosen when its generator's and face pass's median times together are within
# this: at 30 fps a frame has 33 ms, and the worker also composites and hands the frame to the
# encoder while the tracker has the other core (`bench live` holds p50 under 40 ms this way). It
# was 20 ms for the generator alone while the face pass cost a fifth of that; the face stage at
# twice the crop's size (FaceConfig.scale 2) costs as much again (Intel Xeon, 1 thread, OpenVINO
# fp32: 4-6 ms at 64 px, 16-21 ms at 2x), so it is measured, not assumed.
FULL_BUDGET_MS = 24.0


def generator_ms(engine: Engine, seconds: float = 1.0) -> float:
    """The engine's median time per frame: the backend choice's measurement when `auto` made one,
    else measured now on blank inputs."""
    choice = getattr(engine, "choice", None) or {}
    for c in choice.get("candidates", []):
        if (c.get("backend"), c.get("precision")) == (choice.get("backend"), choice.get("precision")):
            return float(c["median_ms"])
    h, w = engine.resolution
    blank = np.zeros((h, w, 3), np.uint8)
    return _median_ms(lambda: engine.generate(blank, blank), seconds)


def face_ms(engine: Engine, seconds: float = 0.5) -> float:
    """The face pass's median time per frame on blank crops (0 for a bundle without one)."""
    if not engine.face_crop:
        return 0.0
    blank = np.zeros((engine.face_crop, engine.face_crop, 3), np.uint8)
    return _median_ms(lambda: engine.refine_face(blank, blank), seconds)


def _median_ms(call: Callable[[], object], seconds: float) -> float:
    for _ in range(3):
        call()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def open_sized(bundle: str | Path, backend: str = "auto", threads: int | None = 1, precision: str | None = None,
               size: str = "auto", budget_ms: float = FULL_BUDGET_MS) -> tuple[Engine, str]:
    """The engine for `bundle` at the size asked for, and a line saying which size and why."""
    if size not in SIZES:
        raise DanceNowError(f"unknown size {size!r}: use {', '.join(SIZES)}")
    bundle = Path(bundle)
    half = read_manifest(bundle, verify=False).half
    if half is None:
        if size == "half":
            raise DanceNowError(f"{bundle} has one size only (it is not an HD bundle): leave out --size half")
        engine = load_engine(bundle, backend=backend, threads=threads, precision=precision)
        return engine, f"{_hw(engine)} (the bundle's only size)"
    if size == "half":
        engine = load_engine(bundle / half, backend=backend, threads=threads, precision=precision)
        return engine, f"{_hw(engine)} (asked for the half size)"
    engine = load_engine(bundle, backend=backend, threads=threads, precision=precision)
    if size == "full":
        return engine, f"{_hw(engine)} (asked for the full size)"
    gen, face = generator_ms(engine), face_ms(engine)
    ms, took = gen + face, f"{gen:.1f} ms" + (f" and its face pass {face:.1f} ms" if face else "")
    if ms <= budget_ms:
        return engine, f"{_hw(engine)}: the full size's generator takes {took} here, within {budget_ms:.0f} ms"
    small = load_engine(bundle / half, backend=backend, threads=threads, precision=precision)
    note = (f"{_hw(small)}: the full size's generator ({_hw(engine)}) takes {took} here, over the "
            f"{budget_ms:.0f} ms that 30 fps leaves them; --size full forces it")
    log.warning("target size: %s", note)
    return small, note


def _hw(engine: Engine) -> str:
    h, w = engine.resolution
    return f"{h}x{w}"


def add_size_argument(parser) -> None:
    """`--size` for the commands that open a target live."""
    parser.add_argument("--size", choices=SIZES, default="auto", help="an HD bundle's size: auto (the full size "
                        f"when its generator and face pass take at most {FULL_BUDGET_MS:.0f} ms here, else half), full or half")
