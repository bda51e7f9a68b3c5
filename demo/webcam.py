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
from dancenow.realtime.live.pipeline import PipelineConfig
from dancenow.realtime.live.show import open_show
from dancenow.realtime.live.telemetry import PipelineStats
from dancenow.realtime.run import status_line

WINDOW = "DanceNow demo"
HELP = "c recalibrate  t next target  r record  q quit"


def has_display() -> bool:
    """Whether a window can open: an X or Wayland display on Linux; assumed elsewhere."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def overlay(image: np.ndarray, stats: PipelineStats, recording: bool) -> np.ndarray:
    """fps, total and per-stage p50 latency, and the key help, over the frame (returns a copy)."""
    img = image.copy()
    total = stats.total()
    lines = [f"{stats.fps:.1f} fps  total p50 {total.p50 if total else 0:.0f} ms"]
    stages = [f"{k} {v.p50:.0f}" for k, v in stats.latency_ms.items() if k != "total"]
    if stages:
        lines.append(" ".join(stages) + " ms")
    lines.append(("REC  " if recording else "") + HELP)
    scale = max(0.35, img.shape[0] / 700)
    for i, line in enumerate(lines):
        y = int((i + 1) * 22 * scale * 1.6)
        cv2.putText(img, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, line, (8, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def run_demo(source: str, bundles: list[Path], backend: str = "auto", record_dir: Path = Path("."),
             background: str = "plate") -> None:
    """Open the window and run until q; every target in `bundles` is one press of t away."""
    if not has_display():
        raise DanceNowError("no display to open a window on: run `dancenow serve` and open http://127.0.0.1:8080 instead")
    if not bundles:
        raise DanceNowError("no target bundle given: pass --target BUNDLE (or none for the built-in demo target)")
    show = open_show(source, bundles[0], PipelineConfig(layout="side-by-side", background=background), backend=backend)
    targets = [show.target]
    current, after = 0, 0
    try:
        show.start()
        show.check_ready()
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        while True:
            got = show.next_frame(after)
            if got is None and not show.running:
                raise DanceNowError(f"the source {source!r} stopped: check the camera (or pass --source FILE)")
            if got is not None:
                after, frame = got
                cv2.imshow(WINDOW, cv2.cvtColor(overlay(frame.image, show.stats(), show.recorder is not None),
                                                cv2.COLOR_RGB2BGR))
            key = cv2.waitKey(1) & 0xFF
            if key in (ord("q"), 27):
                break
            if key == ord("c"):
                show.recalibrate()
            elif key == ord("t") and len(bundles) > 1:
                current = (current + 1) % len(bundles)
                if current >= len(targets):
                    targets.append(show.switch_target(bundles[current]))
                else:
                    show.switch_target(targets[current])
            elif key == ord("r"):
                if show.recorder is None:
                    path = record_dir / time.strftime("dancenow-%Y%m%d-%H%M%S.mp4")
                    show.record(path)
                    print(f"recording to {path}", file=sys.stderr)
                else:
                    writer = show.stop_recording()
                    print(f"saved {writer.path} ({writer.frames} frames)", file=sys.stderr)
    finally:
        print(status_line(show.stats()), file=sys.stderr)
        show.close()
        cv2.destroyAllWindows()
