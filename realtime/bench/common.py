"""What every benchmark shares: the default clip, the host it ran on, and process measures."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dancenow.errors import DanceNowError
from dancenow.host import cpu_info

# ../shared/data beside the repository (never copied into it)
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DEFAULT_CLIP = SHARED_DATA / "clips" / "dancer_a_yellow_top_full_body.mp4"


def default_clip(clip: str | Path | None = None) -> Path:
    """`clip`, or dancer A from ../shared/data; a clear error when it is not there."""
    path = Path(clip) if clip else DEFAULT_CLIP
    if not path.is_file():
        raise DanceNowError(f"clip {path} not found: pass a video file (`dancenow bench ... CLIP`)")
    return path


def host() -> dict:
    """The CPU a figure was measured on: put in every benchmark's JSON."""
    return cpu_info()


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def rss_mb() -> float:
    """This process's resident memory now (Linux), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak() -> None:
    """Reset VmHWM so each phase reports its own peak (Linux >= 4.0; harmless elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class Phase:
    """Wall time, CPU use (cores busy) and peak memory of one measured phase."""

    def __enter__(self) -> Phase:
        reset_peak()
        self.t0, self.c0 = time.monotonic(), cpu_seconds()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.monotonic() - self.t0
        self.cpu = cpu_seconds() - self.c0
        self.peak = peak_mb()

    def report(self) -> dict:
        return {"wall_s": round(self.wall, 2), "cpu_cores": round(self.cpu / self.wall, 2) if self.wall else 0.0,
                "peak_rss_mb": self.peak}


def edge_drift(values: list, k: int, digits: int = 1) -> float | None:
    """How far a series moved over a run: the median of its last `k` values minus the median of its
    first `k` (Nones left out; None where a side has none). Medians of windows, not single points:
    one sample's latency moves with whatever the host did that moment."""
    import numpy as np

    first = [v for v in values[:k] if v is not None]
    last = [v for v in values[-k:] if v is not None]
    return round(float(np.median(last) - np.median(first)), digits) if first and last else None
