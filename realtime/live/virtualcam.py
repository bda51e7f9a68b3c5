"""The generated target as a camera that other programs open: Zoom, Meet, Teams, OBS, a browser.

- Linux, `pipewire`: a PipeWire video source, in user space (no kernel module), the way OBS 30,
  Firefox and Chromium find cameras under PipeWire. GStreamer's `pipewiresink` runs in a child
  process and takes raw RGB frames on its standard input, so nothing here links GStreamer.
- `pyvirtualcam` (`pip install pyvirtualcam`): v4l2loopback on Linux where the module is loaded,
  OBS's virtual camera on Windows and macOS.

Frames go out at a fixed rate from a thread of their own: the newest generated frame, repeated
while the pipeline is slower, so a stalled consumer never blocks the live loop (it only reads the
pipeline's latest-wins output). `framing="call"`: a 16:9 crop of the head and torso, the face
large, for a call's small wide tile.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dancenow.errors import DanceNowError
from dancenow.realtime.live.frame import LiveFrame
from dancenow.realtime.live.slot import LatestSlot
from dancenow.realtime.media.provenance import add_mark
from dancenow.realtime.pose import skeleton as sk

log = logging.getLogger(__name__)

BACKENDS = ("auto", "pipewire", "pyvirtualcam")
FRAMINGS = ("full", "call")
CALL_SIZE = (360, 640)  # (h, w) of the call framing: 16:9


@dataclass
class VirtualCameraConfig:
    backend: str = "auto"  # pipewire (Linux), pyvirtualcam (v4l2loopback, OBS on Windows/macOS)
    name: str = "dancenow"  # the PipeWire node's name (what a reader targets); its description is "DanceNow"
    fps: float = 30.0
    framing: str = "full"  # "full": the target's frame as generated; "call": head and torso at 16:9
    mark: bool = True  # the visible "SYNTHETIC" mark; turn off only deliberately

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise DanceNowError(f"virtual camera backend {self.backend!r}: use one of {', '.join(BACKENDS)}")
        if self.framing not in FRAMINGS:
            raise DanceNowError(f"--framing {self.framing!r}: use one of {', '.join(FRAMINGS)}")
        if not 1.0 <= self.fps <= 120.0:
            raise DanceNowError(f"virtual camera fps {self.fps:g} is out of range: give 1 to 120")
        if not self.name.replace("-", "").replace("_", "").isalnum():
            raise DanceNowError(f"virtual camera name {self.name!r}: use letters, digits, - and _ only")


def pipewire_available() -> str | None:
    """None when a PipeWire camera can be made here, else why not (said to the user)."""
    if not sys.platform.startswith("linux"):
        return "PipeWire cameras are for Linux"
    if shutil.which("gst-launch-1.0") is None:
        return "GStreamer is not installed (Debian/Ubuntu: apt install gstreamer1.0-tools gstreamer1.0-pipewire)"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime or not (Path(runtime) / os.environ.get("PIPEWIRE_REMOTE", "pipewire-0")).exists():
        return "no PipeWire daemon answers in this session (XDG_RUNTIME_DIR/pipewire-0 is missing)"
    return None


class CallFraming:
    """A 16:9 box around the head and torso of the drawn pose, smoothed so it does not jitter."""

    def __init__(self, smoothing: float = 0.15) -> None:
        self.smoothing = smoothing
        self._box: np.ndarray | None = None  # (cx, top, height)

    def crop(self, image: np.ndarray, frame: LiveFrame) -> np.ndarray:
        h, w = image.shape[:2]
        box = self._measure(frame, (h, w))
        if box is not None:
            self._box = box if self._box is None else self._box + self.smoothing * (box - self._box)
        cx, top, bh = self._box if self._box is not None else (w / 2, 0.0, h * 0.6)
        bw = bh * CALL_SIZE[1] / CALL_SIZE[0]
        # the box in the frame's pixels; what falls outside is the frame's edge repeated
        x0, y0 = int(round(cx - bw / 2)), int(round(top))
        pad = int(max(0, -x0, -y0, x0 + bw - w, y0 + bh - h)) + 1
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        sub = padded[y0 + pad:y0 + pad + int(round(bh)), x0 + pad:x0 + pad + int(round(bw))]
        return cv2.resize(sub, (CALL_SIZE[1], CALL_SIZE[0]), interpolation=cv2.INTER_LINEAR)

    @staticmethod
    def _measure(frame: LiveFrame, size: tuple[int, int]) -> np.ndarray | None:
        pose = frame.drawn
        if pose is None or not pose.detected:
            return None
        pts = pose.points * np.array([size[1] / pose.frame_size[1], size[0] / pose.frame_size[0]], np.float32)
        vis = pose.visible(0.3)
        need = [sk.NOSE, sk.LEFT_SHOULDER, sk.RIGHT_SHOULDER, sk.LEFT_HIP, sk.RIGHT_HIP]
        if not vis[need].all():
            return None
        neck = (pts[sk.LEFT_SHOULDER] + pts[sk.RIGHT_SHOULDER]) / 2
        torso = float(np.linalg.norm(neck - (pts[sk.LEFT_HIP] + pts[sk.RIGHT_HIP]) / 2))
        head = float(pts[sk.NOSE, 1])
        # from above the hair to the lower chest: the face in the upper third, large
        return np.array([neck[0], head - 0.55 * torso, 1.45 * torso], np.float64)


class _PipeWireSink:
    """gst-launch-1.0 with raw RGB frames on its stdin, offering a Video/Source node."""

    def __init__(self, size: tuple[int, int], fps: float, name: str) -> None:
        h, w = size
        rate = f"{int(round(fps * 1000))}/1000"
        cmd = ["gst-launch-1.0", "-q", "fdsrc", "fd=0", f"blocksize={w * h * 3}", "!",
               "rawvideoparse", f"width={w}", f"height={h}", "format=rgb", f"framerate={rate}", "!",
               "videoconvert", "!", "pipewiresink", "mode=provide", "sync=false", f"client-name={name}",
               f"stream-properties=props,media.class=Video/Source,media.role=Camera,node.name={name},"
               "node.description=DanceNow"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def send(self, rgb: np.ndarray) -> None:
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode(errors="replace").strip() if self.proc.stderr else ""
            raise DanceNowError(f"the PipeWire camera process ended ({self.proc.returncode}): {err[-300:]}")
        self.proc.stdin.write(np.ascontiguousarray(rgb).tobytes())
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=3.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _PyVirtualCam:
    def __init__(self, size: tuple[int, int], fps: float) -> None:
        try:
            import pyvirtualcam
        except ImportError:
            raise DanceNowError("--virtual-camera with pyvirtualcam: pip install pyvirtualcam (and on Linux load "
                                "v4l2loopback; on Windows and macOS install OBS, whose virtual camera it drives)") from None
        try:
            self.cam = pyvirtualcam.Camera(width=size[1], height=size[0], fps=fps)
        except RuntimeError as e:
            raise DanceNowError(f"no virtual camera device: {e}") from None

    def send(self, rgb: np.ndarray) -> None:
        self.cam.send(rgb)

    def close(self) -> None:
        self.cam.close()


class VirtualCamera:
    """Sends the newest frame of `output()` (the pipeline's latest-wins slot) at `config.fps`."""

    def __init__(self, output: Callable[[], LatestSlot[LiveFrame]], size: tuple[int, int],
                 config: VirtualCameraConfig | None = None) -> None:
        self.config = config or VirtualCameraConfig()
        self._output = output
        self.size = CALL_SIZE if self.config.framing == "call" else (int(size[0]) // 2 * 2, int(size[1]) // 2 * 2)
        self._framing = CallFraming() if self.config.framing == "call" else None
        self.backend = self._pick_backend()
        self.sent = 0  # frames sent, repeats included
        self.fresh = 0  # distinct generated frames sent
        self.error: str | None = None
        self._sink = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _pick_backend(self) -> str:
        wanted = self.config.backend
        if wanted == "auto":
            return "pipewire" if pipewire_available() is None else "pyvirtualcam"
        if wanted == "pipewire" and (why := pipewire_available()):
            raise DanceNowError(f"--virtual-camera pipewire: {why}")
        return wanted

    def describe(self) -> str:
        h, w = self.size
        where = f"PipeWire node {self.config.name!r}" if self.backend == "pipewire" else "pyvirtualcam"
        return f"virtual camera: {where}, {w}x{h} at {self.config.fps:g} fps, {self.config.framing} framing"

    def status(self) -> dict:
        """For /api/status: what it is, frames sent (repeats included), distinct frames, any error."""
        return {"describe": self.describe(), "sent": self.sent, "fresh": self.fresh, "error": self.error}

    def start(self) -> None:
        self._sink = (_PipeWireSink(self.size, self.config.fps, self.config.name) if self.backend == "pipewire"
                      else _PyVirtualCam(self.size, self.config.fps))
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="dancenow-virtual-camera", daemon=True)
        self._thread.start()
        log.info("%s", self.describe())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def frame(self, live: LiveFrame) -> np.ndarray:
        """What the camera shows for `live`: the target alone (never the side-by-side layout), with
        the visible synthetic mark, as every picture we make (a call's audience must see it too)."""
        image = live.generated if live.generated is not None else live.image
        if self._framing is not None:
            image = self._framing.crop(image, live)
        elif image.shape[:2] != self.size:
            image = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        else:
            image = image.copy()
        return add_mark(image) if self.config.mark else image

    def _loop(self) -> None:
        period = 1.0 / self.config.fps
        after, seen_slot = 0, None
        shown = np.zeros((*self.size, 3), np.uint8)  # black until the first frame
        next_t = time.monotonic()
        try:
            while not self._stop.is_set():
                slot = self._output()
                if slot is not seen_slot:  # the pipeline restarted with a new slot
                    after, seen_slot = 0, slot
                got = slot.get(after, timeout=max(0.0, next_t - time.monotonic()))
                if got is not None:
                    after, live = got
                    shown = self.frame(live)
                    self.fresh += 1
                now = time.monotonic()
                if now < next_t:
                    continue
                self._sink.send(shown)
                self.sent += 1
                next_t = next_t + period if now - next_t < period else now + period
        except (DanceNowError, OSError) as e:
            self.error = str(e)
            log.error("virtual camera stopped: %s", e)

    def __enter__(self) -> VirtualCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
