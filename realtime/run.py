"""`dancenow run`: the live pipeline without a server, into a video file or an OpenCV window."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from dancenow.engines.base import Engine
from dancenow.errors import DanceNowError
from dancenow.realtime.live.pipeline import Pipeline, PipelineConfig
from dancenow.realtime.live.sources import Source, open_source
from dancenow.realtime.media import provenance
from dancenow.realtime.media.writer import VideoWriter

log = logging.getLogger(__name__)


def load(bundle, backend: str = "auto", threads: int | None = 1) -> Engine:
    """An engine for `bundle` (a bundle folder, or an already loaded Engine).

    One intra-op thread by default: on two cores the tracker runs on the other one, and two
    stages each asking for every core only fight (see `dancenow bench live`)."""
    if isinstance(bundle, Engine):
        return bundle
    from dancenow.engines import load_engine

    return load_engine(bundle, backend=backend, threads=threads)


def status_line(stats: dict) -> str:
    """One line of live status: fps, total latency, drops, calibration."""
    total = stats.get("latency_ms", {}).get("total", {})
    cal = stats.get("calibration", {})
    return (f"{stats.get('fps', 0):5.1f} fps  latency p50 {total.get('p50', 0):5.1f} ms p99 {total.get('p99', 0):5.1f} ms"
            f"  frames {stats.get('frames', 0)}  dropped {stats.get('dropped', 0)}"
            f"  calibration {cal.get('state', '?')} ({cal.get('frames', 0)})")


def run(source: str | Source, bundle, out: str | Path | None = None, window: bool = False, layout: str = "target",
        backend: str = "auto", seconds: float | None = None, calibration: str | Path | None = None,
        status_every: float = 1.0) -> dict:
    """Run the live pipeline until `seconds` pass, the source ends, or Ctrl-C/q; returns its stats."""
    if out is None and not window and seconds is None:
        raise DanceNowError("nowhere to show the output: pass --out OUT.mp4, --window, or --seconds N")
    if out is not None and Path(out).suffix.lower() not in (".mp4", ".mkv", ".mov"):
        raise DanceNowError(f"--out {out}: write an .mp4 (or .mkv/.mov) file")
    if window and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DanceNowError("--window needs a display and none is set (DISPLAY): write a file with --out OUT.mp4")
    engine = load(bundle, backend)
    # a file under --seconds loops, so the run lasts as long as asked
    src = source if isinstance(source, Source) else open_source(source, loop=seconds is not None)
    pipeline = Pipeline(src, engine, PipelineConfig(layout=layout, calibration=calibration))
    writer: VideoWriter | None = None
    if window:
        import cv2
    fps = getattr(src, "fps", None) or 30.0
    name = getattr(getattr(engine, "manifest", None), "name", "target")
    try:
        pipeline.start()  # returns once the tracker and the engine are warm
        src.check_ready()
        after, t0, next_status = 0, time.monotonic(), time.monotonic() + status_every
        while True:
            now = time.monotonic()
            if seconds is not None and now - t0 >= seconds:
                break
            if now >= next_status:
                print(status_line(pipeline.stats()), file=sys.stderr, flush=True)
                next_status = now + status_every
            got = pipeline.output.get(after, timeout=0.1)
            if got is None:
                if pipeline.finished.is_set() or not pipeline.running:
                    break
                continue
            after, frame = got
            if out is not None:
                if writer is None:
                    writer = VideoWriter(out, fps, frame.image.shape[:2], provenance.metadata(name), live=True)
                writer.write(frame.image, frame.stamps["output"] - t0)
            if window:
                cv2.imshow("DanceNow", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    finally:
        pipeline.stop()
        src.close()
        if writer is not None:
            writer.close()
        if window:
            cv2.destroyAllWindows()
    stats = pipeline.stats()
    if writer is not None:
        stats["written"] = writer.frames
        print(f"wrote {writer.frames} frames to {out}", file=sys.stderr)
    return stats
