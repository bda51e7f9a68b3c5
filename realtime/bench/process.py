"""What a long run's process and host look like each minute (`bench soak`): CPU time by thread,
the host's steal time and clock, threads, open files, garbage-collected objects, and the size of
every bounded structure the server and the pipeline keep. A leak or a slowdown shows here as a
number that keeps growing; the control process (control.py) says whether the host slowed too."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process's Python threads, summed by thread name (Linux;
    Python does not give the OS its threads' names, so they are found by native id)."""
    out: dict[str, float] = {}
    for t in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, TypeError):  # the thread ended meanwhile, or never started
            continue
        out[t.name] = out.get(t.name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
    return out


def host_state() -> dict[str, float]:
    """Cumulative steal seconds of all CPUs (a neighbour on the hypervisor) and the mean clock, MHz."""
    with open("/proc/stat") as f:
        cpu = f.readline().split()
    steal = int(cpu[8]) / _TICK if len(cpu) > 8 else 0.0
    mhz = []
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                mhz.append(float(line.split(":")[1]))
    return {"steal_s": steal, "mhz": sum(mhz) / len(mhz) if mhz else float("nan")}


def process_figures(objects: bool = True) -> dict:
    """Threads, open files, the collector's generation counts and (with `objects`) the number of
    objects it tracks: a structure that grows without bound grows this."""
    fig = {"threads": len(os.listdir("/proc/self/task")), "open_files": len(os.listdir("/proc/self/fd")),
           "gc_counts": list(gc.get_count()), "gc_collections": [s["collections"] for s in gc.get_stats()]}
    if objects:
        fig["gc_objects"] = len(gc.get_objects())
    return fig


def structure_sizes(server) -> dict[str, int]:
    """The size of each bounded structure the server and its show keep (read for diagnosis only:
    these are internals, hence getattr with defaults)."""
    show = getattr(server, "show", None)
    pipeline = getattr(show, "pipeline", None)
    telemetry = getattr(pipeline, "telemetry", None)
    stream = getattr(server, "stream", None)
    stages = getattr(telemetry, "_stages", {}) or {}
    sizes = {
        "peers": len(getattr(server, "peers", {}) or {}),
        "subscribers": len(getattr(stream, "subscribers", ()) or ()),
        "subscriber_queues": sum(len(getattr(t, "_queue", ())) for t in (getattr(stream, "subscribers", ()) or ())),
        "telemetry_samples": sum(len(d) for d in stages.values()) + len(getattr(telemetry, "_outputs", ()) or ()),
        "token_addresses": len(getattr(getattr(server, "tokens", None), "_wrong", {}) or {}),
        "show_sources": len(getattr(show, "_sources", {}) or {}),
        "publishers": len(getattr(server, "publishers", []) or []),
    }
    return sizes


def drop_times(server) -> list[tuple[float, float, str]]:
    """The pipeline's recent drops (time, seconds since the put each replaced, which slot: the
    source's frames before tracking or the poses before the generator)."""
    pipeline = getattr(getattr(server, "show", None), "pipeline", None)
    slots = {"source": getattr(getattr(pipeline, "source", None), "frames", None), "poses": getattr(pipeline, "_poses", None)}
    return sorted((t, since, name) for name, slot in slots.items() if slot is not None
                  for t, since in list(getattr(slot, "drop_times", ())))


def slow_frames(server) -> list[tuple[float, float, str, float]]:
    """The pipeline's recent frames with a stage over telemetry.SLOW_S: (start, output time, the
    stage, its seconds)."""
    pipeline = getattr(getattr(server, "show", None), "pipeline", None)
    return list(getattr(getattr(pipeline, "telemetry", None), "slow", ()))
