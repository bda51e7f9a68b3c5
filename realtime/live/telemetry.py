"""Per-stage timing of the live loop: rolling fps and latency percentiles, JSON-ready.

Each output frame carries `stamps` (time.monotonic() per stage, see `frame.STAGES`); a stage's
duration is its stamp minus the previous stage's. Windows are bounded deques, so telemetry never
grows with the length of a run.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from dancenow.realtime.live.frame import STAGES

QUANTILES = (50, 95, 99)
SLOW_S = 0.05  # one frame's stage this long is kept with its times: a dropped frame's likely cause
WORK = ("track", "render", "generate", "face", "output")  # the stages that compute (the others wait)


@dataclass(frozen=True)
class Latency:
    """One stage's latency percentiles over the rolling window, milliseconds."""

    p50: float
    p95: float
    p99: float


@dataclass(frozen=True)
class Calibration:
    """Where the performer's statistics come from: a file, live (gathered), or still gathering."""

    state: str  # "file" | "live" | "gathering"
    frames: int
    needed: int | None = None  # frames still needed before live statistics exist
    path: str | None = None
    view: str | None = None  # what the camera shows: head, waist, knees, full (None: nobody yet)
    message: str = ""  # what that means for the performer, and what to do for full-body control


@dataclass(frozen=True)
class PipelineStats:
    """The live pipeline's status, read by attribute by the server, its Prometheus exporter, the
    commands' status lines and the benchmarks; `to_dict()` is the JSON of /api/status."""

    running: bool
    fps: float
    frames: int  # frames output since start
    frames_in: int  # frames the pose worker took
    dropped: int  # frames dropped before the generator (latest wins)
    output_dropped: int  # output frames no reader took
    latency_ms: dict[str, Latency]  # per stage and "total" (capture -> output)
    backend: str
    device: str
    precision: str
    target: str
    resolution: tuple[int, int]
    layout: str
    calibration: Calibration
    source: dict = field(default_factory=dict)  # Source.describe()
    errors: tuple[str, ...] = ()  # the last few stage failures (each stage restarts itself)

    def total(self) -> Latency | None:
        return self.latency_ms.get("total")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["resolution"] = list(self.resolution)
        d["errors"] = list(self.errors)
        return d


def percentiles(values, qs=QUANTILES) -> dict[str, float]:
    """{"p50": ms, ...} of `values` (seconds); empty dict when there are none."""
    if len(values) == 0:
        return {}
    arr = np.asarray(values, dtype=np.float64) * 1000.0
    return {f"p{q}": round(float(np.percentile(arr, q)), 2) for q in qs}


def stage_durations(stamps: dict[str, float]) -> dict[str, float]:
    """Seconds spent in each stage (keyed by the stage's own stamp) plus "total" (capture to output)."""
    out: dict[str, float] = {}
    prev = None
    for name in STAGES:
        t = stamps.get(name)
        if t is None:
            continue
        if prev is not None:
            out[name] = max(0.0, t - prev)
        prev = t
    if "capture" in stamps and "output" in stamps:
        out["total"] = max(0.0, stamps["output"] - stamps["capture"])
    return out


class Telemetry:
    """Rolling window of per-stage durations and output times (thread-safe)."""

    def __init__(self, window: int = 300, fps_window: float = 2.0) -> None:
        self.window = window
        self.fps_window = fps_window
        self._lock = threading.Lock()
        self._stages: dict[str, deque[float]] = {}
        self._outputs: deque[float] = deque(maxlen=window)
        self.frames = 0
        # frames with a computing stage over SLOW_S: (pose_in, output, the slowest stage, its seconds)
        self.slow: deque[tuple[float, float, str, float]] = deque(maxlen=64)

    def record(self, stamps: dict[str, float]) -> None:
        with self._lock:
            durations = stage_durations(stamps)
            for name, d in durations.items():
                self._stages.setdefault(name, deque(maxlen=self.window)).append(d)
            if "output" in stamps:
                self._outputs.append(stamps["output"])
                worst = max(((d, n) for n, d in durations.items() if n in WORK), default=None)
                if worst is not None and worst[0] > SLOW_S:
                    self.slow.append((stamps.get("pose_in", stamps["output"]), stamps["output"], worst[1], worst[0]))
            self.frames += 1

    def fps(self, now: float | None = None) -> float:
        with self._lock:
            times = list(self._outputs)
        if len(times) < 2:
            return 0.0
        recent = [t for t in times if t >= times[-1] - self.fps_window]
        if len(recent) < 2 or recent[-1] <= recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])

    def latency(self) -> dict[str, Latency]:
        with self._lock:
            snap = {k: list(v) for k, v in self._stages.items()}
        return {k: Latency(**percentiles(v)) for k, v in snap.items() if v}

    def reset(self) -> None:
        with self._lock:
            self._stages.clear()
            self._outputs.clear()
            self.slow.clear()
            self.frames = 0


class Ewma:
    """A smoothed duration (exponentially weighted), None until the first sample."""

    def __init__(self, alpha: float = 0.2) -> None:
        self.alpha, self.value = alpha, None

    def add(self, x: float) -> None:
        self.value = x if self.value is None else self.value + self.alpha * (x - self.value)
