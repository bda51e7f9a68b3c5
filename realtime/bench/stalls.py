"""Where a dropped frame comes from (`bench soak`): the process stalled, the host did, or neither.

Two probes sleep a few milliseconds at a time and record every wake-up that came late by more
than `threshold`: one as a thread of this process (late when the host stalled, or when this
process held the interpreter: the collector, a long call that keeps the GIL), one in a process
of its own (late only when the host stalled: steal, a neighbour). A drop is put down to the
stall it fell in or just after (a stalled stage lets the next frame replace the one it did not
take), else to the soak's own control process (it loads a tracker and an engine beside the
pipeline every minute, on the same cores), else to one of the pipeline's stages that took over
50 ms on the frame in hand (telemetry.SLOW_S: the tracker's slow path, one slow generator call),
else to a burst: two frames that reached the slot closer than a frame apart.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

THRESHOLD_S = 0.03
TICK_S = 0.005
AFTER_S = 0.15  # a drop this long after a stall's end is still that stall's

def probe(stopped: Callable[[], bool], tick: float, threshold: float, record: Callable[[float, float], None]) -> None:
    """Sleep `tick` s at a time until `stopped()`; `record(end time, seconds late)` each wake-up
    later than `threshold`. Both probes run this: a thread here, and `python -m` this module."""
    while not stopped():
        t = time.monotonic()
        time.sleep(tick)
        late = time.monotonic() - t - tick
        if late > threshold:
            record(time.monotonic(), late)


class StallProbes:
    """The two probes; `take()` gives the stalls since the last call as (end time, seconds late)."""

    def __init__(self, log: Path, threshold: float = THRESHOLD_S, tick: float = TICK_S) -> None:
        self.threshold, self.tick, self.log = threshold, tick, Path(log)
        self.log.touch()
        self._stop = threading.Event()
        self._process: list[tuple[float, float]] = []
        self._thread = threading.Thread(target=self._run, name="dancenow-stall-probe", daemon=True)
        self._child = subprocess.Popen([sys.executable, "-m", __name__, str(log), str(tick), str(threshold)])
        self._read = 0
        self._thread.start()

    def _run(self) -> None:
        probe(self._stop.is_set, self.tick, self.threshold, lambda end, late: self._process.append((end, late)))

    def take(self) -> dict[str, list[tuple[float, float]]]:
        process, self._process = self._process, []
        with open(self.log, "rb") as f:
            f.seek(self._read)
            data = f.read()
        done = data.rfind(b"\n") + 1  # a line still being written waits for the next call
        self._read += done
        host = [(float(a), float(b)) for a, b in (line.split() for line in data[:done].decode().splitlines())]
        return {"process": process, "host": host}

    def close(self) -> None:
        self._stop.set()
        self._child.kill()
        self._child.wait()
        self._thread.join(timeout=1.0)


def explain(drops: list[tuple], stalls: dict[str, list[tuple[float, float]]], frame_s: float,
            control: list[tuple[float, float]] = (), slow: list[tuple] = ()) -> dict[str, int]:
    """How many `drops` ((time, seconds since the put they replaced, ...)) fell in or just after a
    host stall, in or after a stall of this process only, while a control process ran (`control`:
    its (start, end) times), while a frame had a slow stage (`slow`: (start, end, ...)), came in a
    burst, or none of these."""
    def within(t: float, kind: str) -> bool:
        return any(end - late - 0.01 <= t <= end + AFTER_S for end, late in stalls.get(kind, ()))

    out = {"host": 0, "process": 0, "control": 0, "slow": 0, "burst": 0, "unexplained": 0}
    for t, since, *_ in drops:
        kind = ("host" if within(t, "host") else "process" if within(t, "process")
                else "control" if any(a <= t <= b + AFTER_S for a, b in control)
                else "slow" if any(a - 0.01 <= t <= b + AFTER_S for a, b, *_ in slow)
                else "burst" if since < 0.5 * frame_s else "unexplained")
        out[kind] += 1
    return out


if __name__ == "__main__":  # the probe in a process of its own: LOG TICK THRESHOLD
    with open(sys.argv[1], "a", buffering=1) as _log:
        probe(lambda: False, float(sys.argv[2]), float(sys.argv[3]),
              lambda end, late: _log.write(f"{end:.4f} {late:.4f}\n"))
