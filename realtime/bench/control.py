"""The soak's control: a fresh process that times the live loop's two heavy calls and exits.

`bench soak` starts one every minute. It cannot age with the pipeline (no grown heap, no warm or
fragmented allocator, no long-lived thread pools), so when both it and the pipeline slow down
the host did (frequency, a neighbour), and when only the pipeline does, the process did.
It tracks `frames` frames of the performer's clip with the pipeline's tracker settings and runs
the target's generator on their label maps with the pipeline's engine (same backend, precision,
one thread), and prints one JSON line: the median and p90 of each, after a warm-up.
It runs at a lower priority (`--nice`, 19) and pauses between frames: it is an instrument beside
the pipeline it measures, which uses 1.1-1.4 of the two cores, and its start (imports, a tracker
and an engine loaded: over a second of a core) must not take a frame's time from the pipeline's
threads. Linux's SCHED_IDLE was tried (7 Dec) and starved it: beside the pipeline and three
viewers it took over 15 s, and a control that does not finish measures nothing. Each call is timed
by the wall clock (what the pipeline's stages report) and by the process's CPU time (`cpu_p50`:
the same work without the waits for a core, so a control that waited a lot still says how fast the
host computes).
At nice 10 and back to back it still cost frames on a slower host (the Intel Xeon without AMX of
7 Dec: 28 of a 60-minute soak's 30 drops fell while it ran), hence nice 19 and the pauses.

    python -m dancenow.realtime.bench.control BUNDLE CLIP --backend openvino --precision int8
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def measure(bundle: str, clip: str, backend: str, precision: str | None, frames: int = 24, warmup: int = 4,
            pause_s: float = 0.05) -> dict:
    from dancenow.realtime.live.pipeline import PipelineConfig
    from dancenow.realtime.live.target import Target
    from dancenow.realtime.media.reader import iter_frames
    from dancenow.realtime.pose.renderer import render_label_map
    from dancenow.realtime.pose.tracker import PoseTracker

    t0 = time.perf_counter()
    target = Target.open(bundle, backend=backend, threads=1, precision=precision, size="full")
    images = [(f.image, f.time) for f in iter_frames(clip, frames + warmup)]
    started = time.perf_counter() - t0
    track, gen = [], []  # (wall ms, CPU ms) per call
    previous = target.blank()
    with PoseTracker(PipelineConfig().tracker) as tracker:
        for k, (image, ts) in enumerate(images):
            t, c = time.perf_counter(), time.process_time()
            pose = tracker.track(image, ts)
            t1, c1 = time.perf_counter(), time.process_time()
            label = render_label_map(pose.resized(target.resolution), target.resolution, target.render)
            t2, c2 = time.perf_counter(), time.process_time()
            previous = target.generate(label, previous)
            t3, c3 = time.perf_counter(), time.process_time()
            time.sleep(pause_s)  # a core back to the pipeline between frames, as a camera's pace would
            if k >= warmup:
                track.append(((t1 - t) * 1e3, (c1 - c) * 1e3))
                gen.append(((t3 - t2) * 1e3, (c3 - c2) * 1e3))

    def q(v: list[tuple[float, float]]) -> dict:
        wall, cpu = np.array(v).T
        return {"p50": round(float(np.median(wall)), 2), "p90": round(float(np.percentile(wall, 90)), 2),
                "cpu_p50": round(float(np.median(cpu)), 2)}
    return {"track_ms": q(track), "generate_ms": q(gen), "frames": len(gen),
            "startup_s": round(started, 2), "engine": target.engine.describe()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bundle")
    p.add_argument("clip")
    p.add_argument("--backend", default="openvino")
    p.add_argument("--precision", default=None)
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--nice", type=int, default=19, help="added to this process's niceness first")
    a = p.parse_args(argv)
    os.nice(a.nice)
    print(json.dumps(measure(a.bundle, a.clip, a.backend, a.precision, a.frames)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
