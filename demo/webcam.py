"""`dancenow demo`: the live webcam demo in an OpenCV window.

performer | pose | target side by side, with fps and per-stage milliseconds drawn on top.
Keys: c recalibrate, t next target, r start/stop recording, q or Esc quit.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from dancenow.errors import DanceNowError
from dancenow.realtime.live.pipeline import Pipeline, PipelineConfig
from dancenow.realtime.live.sources import open_source
from dancenow.realtime.media import provenance
from dancenow.realtime.media.writer import VideoWriter
from dancenow.realtime.run import load, status_line

WINDOW = "DanceNow demo"
HELP = "c recalibrate  t next target  r record  q quit"


def has_display() -> bool:
    """Whether a window can open: an X or Wayland display on Linux; assumed elsewhere."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def overlay(image: np.ndarray, stats: dict, recording: bool) -> np.ndarray:
    """fps, total and per-stage p50 latency, and the key help, over the frame (returns a copy)."""
    img = image.copy()
    lat = stats.get("latency_ms", {})
    lines = [f"{stats.get('fps', 0):.1f} fps  total p50 {lat.get('total', {}).get('p50', 0):.0f} ms"]
    stages = [f"{k} {v.get('p50', 0):.0f}" for k, v in lat.items() if k != "total" and isinstance(v, dict)]
    if stages:
        lines.append(" ".join(stages) + " ms")
    lines.append(("REC  " if recording else "") + HELP)
    scale = max(0.35, img.shape[0] / 700)
    for i, line in enumerate(lines):
        y = int((i + 1) * 22 * scale * 1.6)
        cv2.putText(img, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def run_demo(source: str, bundles: list[Path], backend: str = "auto", record_dir: Path = Path(".")) -> None:
    """Open the window and run until q; every target in `bundles` is one press of t away."""
    if not has_display():
        raise DanceNowError("no display to open a window on: run `dancenow serve` and open http://127.0.0.1:8080 instead")
    if not bundles:
        raise DanceNowError("no target bundle given: pass --target BUNDLE (or none for the built-in demo target)")
    engines = [load(bundles[0], backend)]
    src = open_source(source)
    pipeline = Pipeline(src, engines[0], PipelineConfig(layout="side-by-side"))
    current, writer, after, writer_t0 = 0, None, 0, 0.0
    try:
        pipeline.start()
        src.check_ready()
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        while True:
            got = pipeline.output.get(after, timeout=0.1)
            if got is None and not pipeline.running:
                raise DanceNowError(f"the source {source!r} stopped: check the camera (or pass --source FILE)")
            if got is not None:
                after, frame = got
                if writer is not None:
                    writer.write(frame.image, time.monotonic() - writer_t0)
                cv2.imshow(WINDOW, cv2.cvtColor(overlay(frame.image, pipeline.stats(), writer is not None), cv2.COLOR_RGB2BGR))
            key = cv2.waitKey(1) & 0xFF
            if key in (ord("q"), 27):
                break
            if key == ord("c"):
                pipeline.recalibrate()
            elif key == ord("t") and len(bundles) > 1:
                current = (current + 1) % len(bundles)
                if current >= len(engines):
                    engines.append(load(bundles[current], backend))
                pipeline.set_engine(engines[current])
            elif key == ord("r"):
                if writer is None and got is not None:
                    path = record_dir / time.strftime("dancenow-%Y%m%d-%H%M%S.mp4")
                    name = getattr(engines[current].manifest, "name", "target")
                    writer, writer_t0 = VideoWriter(path, 30.0, frame.image.shape[:2], provenance.metadata(name), live=True), time.monotonic()
                    print(f"recording to {path}", file=sys.stderr)
                elif writer is not None:
                    writer.close()
                    print(f"saved {writer.path} ({writer.frames} frames)", file=sys.stderr)
                    writer = None
    finally:
        print(status_line(pipeline.stats()), file=sys.stderr)
        pipeline.stop()
        src.close()
        if writer is not None:
            writer.close()
        cv2.destroyAllWindows()
