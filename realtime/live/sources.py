"""Where performer frames come from: a webcam, a video file, the built-in demo, or a browser.

Every source owns a `LatestSlot` (`frames`) holding only its newest `CapturedFrame`; a capture
thread (webcam, file, demo) or the WebRTC server (`PushSource.push`) fills it, and the pipeline
reads from it. A reader that falls behind sees frames dropped, never a growing queue.

- `CameraSource` reads an OpenCV capture in its own thread and reconnects when the device
  disappears (unplugged, busy, read errors) and comes back.
- `FileSource` plays a video paced at its own frame rate like a camera (optionally looping), or
  unpaced and lossless: each frame is handed over only when the previous one was taken.
- `DemoSource` draws the built-in choreography as a performer and carries the ground-truth pose,
  so the pipeline skips the tracker.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dancenow.errors import DanceNowError
from dancenow.realtime.live.slot import LatestSlot
from dancenow.realtime.media.reader import iter_frames, video_info
from dancenow.realtime.pose.pose import Pose

log = logging.getLogger(__name__)


@dataclass
class CapturedFrame:
    """One performer frame: RGB uint8 image, capture time (time.monotonic()) and sequence number.

    `pose` is set by sources that already know it (the demo): the tracker is skipped.
    `media_time` is the frame's time in its video (files), used as the pose clock so smoothing
    does not depend on how fast an unpaced file is read.
    """

    image: np.ndarray
    timestamp: float
    seq: int
    pose: Pose | None = None
    media_time: float | None = None

    @property
    def clock(self) -> float:
        """The time to give the tracker and filter (seconds, increasing)."""
        return self.timestamp if self.media_time is None else self.media_time


class Source(ABC):
    """A producer of `CapturedFrame`s into `self.frames`. `start`/`stop` are idempotent and
    restartable; `ended` turns True when a finite source has nothing more to give."""

    name = "source"
    lossless = False  # True: frames wait to be taken (the pipeline then drops nothing either)
    has_pose = False  # True: frames carry their pose, no tracker needed
    threaded = True

    def __init__(self) -> None:
        self.frames: LatestSlot[CapturedFrame] = LatestSlot()
        self.ended = False
        self.error: str | None = None  # last problem seen (e.g. "camera lost, reconnecting")
        self.reconnects = 0
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if not self.threaded or self.running:
            return
        self._stop = threading.Event()
        self.ended = False
        self._thread = threading.Thread(target=self._guarded, name=f"dancenow-capture-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5.0)

    def close(self) -> None:
        self.stop()
        self._release()

    def check_ready(self, timeout: float = 5.0) -> None:
        """Raise a clear error when the source cannot deliver at all (a camera that never opens).

        Called once at start-up by the commands that a user watches; a source that worked and
        then fails is reconnected instead (see CameraSource)."""
        return None

    def probe(self, timeout: float = 5.0) -> None:
        """Open the source once now, to fail at start-up rather than when the first viewer comes
        (the server runs a source only while someone watches). Nothing to do for most sources."""
        return None

    def _guarded(self) -> None:
        try:
            self._run(self._stop)
        except Exception as e:  # a capture thread must not die silently
            log.exception("source %s failed", self.name)
            self.error = f"{type(e).__name__}: {e}"
            self.ended = True
        finally:
            self._release()

    @abstractmethod
    def _run(self, stop: threading.Event) -> None:
        """Produce frames with `_emit` until `stop` is set (or the source ends)."""

    def _release(self) -> None:
        """Free devices/files (called from the capture thread when it ends)."""
        return None

    def _emit(self, image: np.ndarray, timestamp: float | None = None, pose: Pose | None = None,
              media_time: float | None = None) -> CapturedFrame:
        self._seq += 1
        frame = CapturedFrame(image, time.monotonic() if timestamp is None else timestamp, self._seq,
                              pose, media_time)
        self.frames.put(frame)
        return frame

    def describe(self) -> dict:
        return {"name": self.name, "frames": self._seq, "dropped": self.frames.dropped,
                "reconnects": self.reconnects, "ended": self.ended, "error": self.error}

    def __enter__(self) -> Source:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class CameraSource(Source):
    """An OpenCV capture (`device` = camera index, /dev/videoN or any URL/path OpenCV opens)
    read as fast as it delivers, newest frame only, reconnecting when it fails.

    On a read failure the capture is released and reopened every `retry` seconds (doubling up
    to `max_retry`) until it works again; `reconnects` counts successful reopens.
    """

    def __init__(self, device: int | str = 0, max_fps: float | None = None, retry: float = 0.25,
                 max_retry: float = 2.0, size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.device = device
        self.name = f"webcam:{device}" if isinstance(device, int) else f"capture:{Path(str(device)).name}"
        self.max_fps = max_fps
        self.retry, self.max_retry = retry, max_retry
        self.size = size  # requested (height, width)
        self._cap: cv2.VideoCapture | None = None
        self.opened = threading.Event()  # set once the device has opened

    def check_ready(self, timeout: float = 5.0) -> None:
        if self.opened.wait(timeout):
            return
        why = "it would not open"
        if isinstance(self.device, int) and sys.platform.startswith("linux"):
            node = Path(f"/dev/video{self.device}")
            why = f"there is no {node}" if not node.exists() else f"{node} would not open: is another program using it?"
        raise DanceNowError(f"{self.name}: no camera within {timeout:g} s ({why}): plug one in, pick another "
                            "with --source webcam:N, or use --source demo (or a video file)")

    def probe(self, timeout: float = 5.0) -> None:
        if self.running:
            return
        self.start()
        try:
            self.check_ready(timeout)
        finally:
            self.stop()

    def _open(self) -> cv2.VideoCapture | None:
        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            return None
        if self.size is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[1])
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a camera's own queue adds latency
        return cap

    def _run(self, stop: threading.Event) -> None:
        wait = self.retry
        opened_once = False
        last = 0.0
        while not stop.is_set():
            if self._cap is None:
                self._cap = self._open()
                if self._cap is None:
                    self.error = f"{self.name} not available, retrying"
                    if not opened_once and wait == self.retry:  # once, not at every retry
                        log.warning("%s: cannot open, retrying (every %g s at most)", self.name, self.max_retry)
                    stop.wait(wait)
                    wait = min(wait * 2, self.max_retry)
                    continue
                if opened_once:
                    self.reconnects += 1
                    log.info("%s: reconnected (%d)", self.name, self.reconnects)
                opened_once, wait, self.error = True, self.retry, None
                self.opened.set()
            ok, frame = self._cap.read()
            if not ok or frame is None:
                log.info("%s: read failed, reconnecting", self.name)
                self.error = f"{self.name} lost, reconnecting"
                self._cap.release()
                self._cap = None
                continue
            self._emit(_bgr_to_rgb(frame))
            if self.max_fps:
                last = max(last + 1.0 / self.max_fps, time.monotonic() - 1.0 / self.max_fps)
                stop.wait(max(0.0, last - time.monotonic()))

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FileSource(Source):
    """A video file as a camera: paced by its own frame times (pts; `fps` forces a fixed rate, as
    the benchmarks' 30 fps camera does), frames dropped downstream when the pipeline is slower; or
    unpaced and lossless. `loop` restarts it at the end, its clock running on."""

    def __init__(self, path: str | Path, paced: bool = True, loop: bool = False, fps: float | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise DanceNowError(f"video file {self.path} not found: pass an existing file, webcam:N or demo")
        info = video_info(self.path)  # a clear error for what is not a video
        self.forced_fps = fps
        self.fps = float(fps or info.rate)
        self.frame_count = info.frames
        self.name = f"file:{self.path.name}"
        self.paced, self.loop = paced, loop
        self.lossless = not paced

    def _run(self, stop: threading.Event) -> None:
        t0 = time.monotonic()
        index, offset = 0, 0.0  # frames emitted and media time at the start of this pass (across loops)
        while not stop.is_set():
            last, frames = None, iter_frames(self.path, fast=True)  # a performer: see to_rgb
            for f in frames:
                media_time = index / self.fps if self.forced_fps else offset + f.time
                if self.paced:
                    stop.wait(max(0.0, t0 + media_time - time.monotonic()))
                else:
                    while not stop.is_set() and not self.frames.wait_taken(timeout=0.1):
                        pass
                if stop.is_set():
                    break
                self._emit(f.image, media_time=media_time)
                index, last = index + 1, media_time
            frames.close()  # the file now, not whenever the generator is collected
            if not self.loop or last is None:
                break
            offset = last + 1.0 / self.fps
        if not stop.is_set():
            self.ended = True


class DemoSource(Source):
    """The built-in performer: the looping choreography drawn as a person, with its exact pose.

    With `cache`, each of the loop's frames is drawn once and reused on later loops (the figure
    costs about 12 ms a frame; a 20 s loop at 256x192 is about 90 MB, bounded).
    """

    has_pose = True

    def __init__(self, fps: float = 30.0, size: tuple[int, int] = (256, 192), start: float = 0.0,
                 cache: bool = False) -> None:
        super().__init__()
        self.name = "demo"
        self.fps, self.size, self.start_time = fps, size, start
        self._cache: dict[int, tuple[np.ndarray, Pose]] | None = {} if cache else None

    def frame_at(self, index: int) -> tuple[np.ndarray, Pose]:
        """The demo's frame number `index` (time start + index / fps) and its pose."""
        from dancenow.realtime.pose.choreography import PERIOD, pose_at
        from dancenow.realtime.pose.figure import PERFORMER_STYLE, draw_figure

        loop = int(round(PERIOD * self.fps))
        key = index % loop if abs(loop - PERIOD * self.fps) < 1e-6 else index
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        pose = pose_at(self.start_time + key / self.fps, self.size)
        image = draw_figure(pose, self.size, PERFORMER_STYLE, aa=1)
        image.flags.writeable = False  # shared between loops: nobody may draw on it
        if self._cache is not None and key == index % loop:
            self._cache[key] = (image, pose)
        return image, pose

    def _run(self, stop: threading.Event) -> None:
        t0 = time.monotonic()
        i = 0
        while not stop.is_set():
            stop.wait(max(0.0, t0 + i / self.fps - time.monotonic()))
            if stop.is_set():
                break
            now = time.monotonic()
            i = max(i, int((now - t0) * self.fps))  # late: skip ahead, never fall behind
            image, pose = self.frame_at(i)
            self._emit(image, now, pose=pose.copy(timestamp=now), media_time=i / self.fps)
            i += 1


class PushSource(Source):
    """Frames pushed in from outside (the WebRTC server's performer track); no thread."""

    threaded = False

    def __init__(self, name: str = "browser") -> None:
        super().__init__()
        self.name = name

    def push(self, image_rgb: np.ndarray, timestamp: float | None = None) -> None:
        """Hand over the newest frame (uint8 H x W x 3 RGB); `timestamp` = time.monotonic() of capture."""
        self._emit(image_rgb, timestamp)

    def _run(self, stop: threading.Event) -> None:  # pragma: no cover - never started
        raise NotImplementedError


def open_source(spec: str, loop: bool = False, paced: bool = True) -> Source:
    """A source from its command-line name: "webcam:N", "demo", "browser", or a video file path."""
    spec = str(spec)
    if spec == "demo":
        return DemoSource(cache=True)
    if spec == "browser":
        return PushSource()
    if spec.startswith(("webcam:", "camera:")):
        dev = spec.split(":", 1)[1]
        try:
            return CameraSource(int(dev))
        except ValueError:
            raise DanceNowError(f"bad camera {spec!r}: use webcam:N with N a number, e.g. webcam:0") from None
    if Path(spec).is_file():
        return FileSource(spec, paced=paced, loop=loop)
    raise DanceNowError(f"unknown source {spec!r}: use webcam:N, demo, browser, or an existing video file")
