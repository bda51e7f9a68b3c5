"""`dancenow run`: the live pipeline without a server, into a video file or an OpenCV window."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from dancenow.errors import DanceNowError
from dancenow.realtime.live.pipeline import PipelineConfig
from dancenow.realtime.live.show import RECORD_SUFFIXES, open_show
from dancenow.realtime.live.sources import Source
from dancenow.realtime.live.target import Target
from dancenow.realtime.live.telemetry import PipelineStats
from dancenow.realtime.live.virtualcam import VirtualCamera, VirtualCameraConfig

log = logging.getLogger(__name__)


def status_line(stats: PipelineStats) -> str:
    """One line of live status: fps, total latency, drops, calibration."""
    total = stats.total()
    p50, p99 = (total.p50, total.p99) if total else (0.0, 0.0)
    cal = stats.calibration
    return (f"{stats.fps:5.1f} fps  latency p50 {p50:5.1f} ms p99 {p99:5.1f} ms  frames {stats.frames}"
            f"  dropped {stats.dropped}  calibration {cal.state} ({cal.frames})")


def run(source: str | Source, bundle: str | Path | Target, out: str | Path | None = None, window: bool = False,
        layout: str = "target", backend: str = "auto", seconds: float | None = None,
        calibration: str | Path | None = None, status_every: float = 1.0, background: str = "plate",
        virtual_camera: VirtualCameraConfig | None = None, size: str = "auto") -> PipelineStats:
    """Run the live pipeline until `seconds` pass, the source ends, or Ctrl-C/q; returns its stats.
    `virtual_camera`: also offer the generated target as a camera (see `virtualcam.py`)."""
    if out is None and not window and seconds is None and virtual_camera is None:
        raise DanceNowError("nowhere to show the output: pass --out OUT.mp4, --window, --virtual-camera or --seconds N")
    if out is not None and Path(out).suffix.lower() not in RECORD_SUFFIXES:
        raise DanceNowError(f"--out {out}: write an .mp4 (or .mkv/.mov) file")
    if window and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise DanceNowError("--window needs a display and none is set (DISPLAY): write a file with --out OUT.mp4")
    # a file under --seconds loops, so the run lasts as long as asked
    show = open_show(source, bundle, PipelineConfig(layout=layout, calibration=calibration, background=background), backend=backend,
                     loop=seconds is not None, size=size)
    if window:
        import cv2
    camera = None
    try:
        show.start()  # returns once the tracker and the engine are warm
        show.check_ready()
        if virtual_camera is not None:
            camera = VirtualCamera(lambda: show.output, show.target.resolution, virtual_camera)
            camera.start()
            print(f"dancenow: {camera.describe()}", file=sys.stderr, flush=True)
        if out is not None:
            show.record(out, getattr(show.source, "fps", None) or 30.0)
        after, t0, next_status = 0, time.monotonic(), time.monotonic() + status_every
        while True:
            now = time.monotonic()
            if seconds is not None and now - t0 >= seconds:
                break
            if now >= next_status:
                print(status_line(show.stats()), file=sys.stderr, flush=True)
                next_status = now + status_every
            got = show.next_frame(after)
            if got is None:
                if show.ended:
                    break
                continue
            after, frame = got
            if window:
                cv2.imshow("DanceNow", cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
    finally:
        writer = show.recorder
        if camera is not None:
            camera.stop()
        show.close()
        if window:
            cv2.destroyAllWindows()
    if writer is not None:
        print(f"wrote {writer.frames} frames to {out}", file=sys.stderr)
    return show.stats()
