"""The live pipeline: performer frames in, target frames out, stages overlapping on the cores.

    source thread ─slot─► pose worker ─slot─► generator worker ─slot─► output (any readers)
    (capture)             track, filter,       engine.generate(label,     LiveFrame
                          calibrate, normalize, previous), face pass,
                          presence, render      compositor

Each arrow is a `LatestSlot`: a stage that falls behind drops old frames (counted), so no queue
grows and latency cannot build up. The pose worker tracks frame t+1 while the generator works on
frame t; MediaPipe, OpenCV and ONNX Runtime release the GIL, so two cores are both busy.

A lossless source (an unpaced file) makes every stage wait until its output was taken instead of
dropping: the offline/deterministic mode used by tests and the throughput benchmark.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dancenow.errors import DanceNowError
from dancenow.realtime.live import pixelstamp
from dancenow.realtime.live.compositor import LAYOUTS, compose
from dancenow.realtime.live.coverage import Coverage
from dancenow.realtime.live.frame import LiveFrame
from dancenow.realtime.live.presence import Presence, PresenceConfig
from dancenow.realtime.live.slot import LatestSlot
from dancenow.realtime.live.sources import CapturedFrame, Source
from dancenow.realtime.live.target import Target
from dancenow.realtime.live.telemetry import Calibration, Ewma, PipelineStats, Telemetry
from dancenow.realtime.pose.filter import OneEuroConfig, PoseFilter
from dancenow.realtime.pose.normalize import PoseStats, fit_into
from dancenow.realtime.pose.placement import Placement, PlacementConfig
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.renderer import render_label_map
from dancenow.realtime.pose.tracker import TrackerConfig

log = logging.getLogger(__name__)


@dataclass
class PipelineConfig:
    """How the live loop runs; defaults suit a 2-core CPU."""

    layout: str = "target"  # "target" | "side-by-side" (performer | pose | target)
    calibration: str | Path | None = None  # performer statistics from `dancenow calibrate`
    stamp_pixels: bool = False  # paint frame counter + capture time into the output (latency tests)
    mark: bool = True  # the visible "SYNTHETIC" badge on the generated panel
    # The tracker on one thread: the generator has the other core (two tracker threads measured
    # 8.4 fps against 10.5 with one, paced, on 2 cores); MediaPipe's landmark network on OpenVINO
    # (2.0x MediaPipe's own on one thread, `bench pose`).
    tracker: TrackerConfig = field(default_factory=lambda: TrackerConfig(threads=1, landmarks="auto"))
    filter: OneEuroConfig = field(default_factory=OneEuroConfig)
    presence: PresenceConfig = field(default_factory=PresenceConfig)
    # how partial views are placed and completed; its window is the live calibration's (about 20 s)
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    face: bool = True  # run the engine's face pass when the bundle has one
    # behind the person (alpha generators): "plate" (the target's own room), a key colour
    # ("green", "blue", "black", "white") for OBS, or an image file. Shown only: the generator is
    # still fed back its own frame over the plate, as in training.
    background: str = "plate"
    cv2_threads: int = 1  # OpenCV's own pool only adds contention on 2 cores
    telemetry_window: int = 300  # frames in the rolling latency window


@dataclass
class _PoseItem:
    """Pose worker -> generator worker."""

    captured: CapturedFrame
    pose: Pose  # performer's (filtered), in the performer's frame
    target_pose: Pose  # drawn pose, in the target's frame
    label_map: np.ndarray
    state: str
    stamps: dict[str, float]
    target_id: int


class Pipeline:
    """The live loop (see the module docstring). Readers take frames from `output`."""

    def __init__(self, source: Source, target: Target, config: PipelineConfig | None = None) -> None:
        self.config = config or PipelineConfig()
        if self.config.layout not in LAYOUTS:
            raise DanceNowError(f"unknown layout {self.config.layout!r}: use one of {', '.join(LAYOUTS)}")
        self._file_stats = PoseStats.read(self.config.calibration) if self.config.calibration else None
        self._source = source
        self._target = target
        self._target_id = 0
        self._lock = threading.RLock()
        self.output: LatestSlot[LiveFrame] = LatestSlot()
        self._poses: LatestSlot[_PoseItem] = LatestSlot()
        self.telemetry = Telemetry(self.config.telemetry_window)
        self.finished = threading.Event()  # a finite source ended and its last frame was output
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._source_changed = True
        self._forget_file = False  # recalibrate(): the pose worker drops the file's statistics too
        self._calibration = Calibration("gathering", 0, self.config.placement.min_frames)
        # the performer's placement and statistics: kept over a stop and start (the server stops the
        # show when its last peer leaves: a performer who rejoins keeps their calibration)
        self._placement: Placement | None = None
        self._pose_done = False
        self._previous: np.ndarray | None = None
        self._frames_in = 0
        # just-in-time scheduling: when the generator is the bottleneck, the pose worker starts on
        # the newest frame only as late as lets it finish when the generator frees up
        self._gen_busy_since: float | None = None  # when the generator took its current item
        self._backdrop_warned: set[str] = set()
        self._gen_time = Ewma()  # seconds per generator item (generate + face + compose)
        self._pose_time = Ewma()  # seconds per pose item (track + normalize + render)
        self.errors: list[str] = []
        self.coverage: Coverage | None = None  # the studio's live verdict, while it records a target

    # --- control -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def source(self) -> Source:
        return self._source

    @property
    def target(self) -> Target:
        return self._target

    def start(self) -> None:
        """Start the source and both workers (no-op when running)."""
        with self._lock:
            if self.running:
                return
            cv2.setNumThreads(self.config.cv2_threads)
            if self.output.closed:
                self.output = LatestSlot()
            self._poses = LatestSlot()
            self._stop = threading.Event()
            self.finished.clear()
            self._pose_done = False
            self._previous = None
            self._source_changed = True
            self._ready = [threading.Event(), threading.Event()]
            self._threads = [
                threading.Thread(target=self._guard, args=(self._pose_loop, self._ready[0]), name="dancenow-pose",
                                 daemon=True),
                threading.Thread(target=self._guard, args=(self._generate_loop, self._ready[1]),
                                 name="dancenow-generate", daemon=True),
            ]
            for t in self._threads:
                t.start()
            # the source starts once the tracker and engine are warm, so the first frames carry no
            # seconds of start-up latency (and a paced file does not run past them meanwhile)
            for ready in self._ready:
                ready.wait(timeout=60.0)
            self._source.start()

    def stop(self) -> None:
        """Stop the workers and the source; idempotent, and `start()` may be called again."""
        with self._lock:
            self._stop.set()
            self._poses.close()
            threads, self._threads = self._threads, []
        for t in threads:
            if t is not threading.current_thread():
                t.join(timeout=10.0)
        self._source.stop()
        self.output.close()

    def set_target(self, target: Target) -> None:
        """Switch the target live: the next frame is drawn and generated for `target`."""
        with self._lock:
            self._target = target
            self._target_id += 1

    def set_background(self, background: str) -> None:
        """Show the person over `background` from the next frame on; one the current target cannot
        take (no alpha, an unreadable image) raises and changes nothing."""
        with self._lock:
            self._target.backdrop(background)
            self.config.background = background

    def recalibrate(self) -> None:
        """Forget the performer's statistics (file or live) and gather them afresh from now on."""
        with self._lock:
            self._file_stats = None
            self._forget_file = True

    def set_source(self, source: Source) -> None:
        """Switch the performer's source live (e.g. to a browser's camera and back)."""
        with self._lock:
            if source is self._source:
                return
            old, self._source = self._source, source
            self._source_changed = True
            if self.running:
                old.stop()
                source.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until a finite source's last frame was output (True) or `timeout` passed."""
        return self.finished.wait(timeout)

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- status ------------------------------------------------------------------------------

    def calibration_state(self) -> Calibration:
        """What the pose worker last published (its Placement is not thread-safe)."""
        return self._calibration

    def _publish_calibration(self, placement: Placement | None) -> None:
        if placement is None:
            return
        view, message = placement.view, placement.message()
        if placement.file_stats is not None:
            self._calibration = Calibration("file", placement.file_stats.frames, path=str(self.config.calibration),
                                            view=view, message=message)
            return
        frames = max(placement.online.frames, placement.upper.frames)
        self._calibration = Calibration("live" if placement.calibrated else "gathering", frames,
                                        placement.config.min_frames, view=view, message=message)

    def stats(self) -> PipelineStats:
        """fps, latency percentiles per stage and in total (ms), frame counts, what runs."""
        target, src = self._target, self._source
        engine = target.engine
        return PipelineStats(
            running=self.running, fps=round(self.telemetry.fps(), 2), frames=self.telemetry.frames,
            frames_in=self._frames_in, dropped=src.frames.dropped + self._poses.dropped,
            output_dropped=self.output.dropped, latency_ms=self.telemetry.latency(), backend=engine.name,
            device=engine.device, precision=engine.precision, target=target.name, resolution=target.resolution,
            layout=self.config.layout, calibration=self.calibration_state(), source=src.describe(),
            errors=tuple(self.errors[-5:]),
        )

    # --- workers -----------------------------------------------------------------------------

    def _guard(self, loop, ready: threading.Event) -> None:
        """Run a stage; if it fails, record why and restart it: the stream must not freeze."""
        while not self._stop.is_set():
            try:
                loop(self._stop, ready)
                return
            except Exception as e:
                log.exception("pipeline stage failed; restarting it")
                self.errors.append(f"{type(e).__name__}: {e}")
                del self.errors[:-20]
                ready.set()
                self._stop.wait(0.5)
            finally:
                ready.set()

    def _pose_loop(self, stop: threading.Event, ready: threading.Event) -> None:
        tracker = None
        if not self._source.has_pose:
            tracker = self._make_tracker()
        ready.set()
        flt = PoseFilter(self.config.filter)
        presence = Presence(self.config.presence)
        after = 0
        target_id = -1
        target = self._target
        placement = self._placement
        source = self._source
        try:
            while not stop.is_set():
                with self._lock:
                    if target_id != self._target_id:
                        target, target_id = self._target, self._target_id
                        placement = self._placement = self._make_placement(target, placement)
                        presence.stance = placement.stance if placement is not None else None
                    if self._source_changed:
                        source, self._source_changed = self._source, False
                        after = source.frames.seq if not source.lossless else 0
                        flt.reset()
                        if placement is not None:  # a rejoining performer's camera keeps its calibration
                            placement.switch_performer(source, time.monotonic())
                    if self._forget_file and placement is not None:
                        placement.forget_performer(keep_file=False)
                        self._forget_file = False
                if not source.lossless:
                    self._wait_for_generator(stop)
                got = source.frames.get(after, timeout=0.1)
                if got is None:
                    if source.ended and source.frames.seq <= after:
                        self._pose_done = True
                    continue
                after, cf = got
                self._pose_done = False
                self._frames_in += 1
                stamps = {"capture": cf.timestamp, "pose_in": time.monotonic()}
                if cf.pose is not None:
                    pose = cf.pose.copy(timestamp=cf.clock)
                else:
                    if tracker is None:
                        tracker = self._make_tracker()
                    tracker.face_mesh = target.render.face_lines  # what this target's label maps draw
                    pose = flt.apply(tracker.track(cf.image, cf.clock))
                stamps["track"] = time.monotonic()
                if (coverage := self.coverage) is not None:
                    coverage.update(pose, cf.image)
                size = target.resolution
                if placement is not None:
                    placed = placement.apply(pose, cf.clock)
                    self._publish_calibration(placement)
                else:  # a bundle without the target's statistics: the frame fitted as it is
                    placed = fit_into(pose, size)
                if pose.extras.get("held"):
                    placed.extras["held"] = True
                drawn, state = presence.apply(placed, cf.clock)
                label = render_label_map(drawn, size, target.render)
                stamps["render"] = time.monotonic()
                self._pose_time.add(stamps["render"] - stamps["pose_in"])
                item = _PoseItem(cf, pose, drawn, label, state, stamps, target_id)
                if source.lossless:
                    while not stop.is_set() and not self._poses.wait_taken(timeout=0.1):
                        pass
                self._poses.put(item)
        finally:
            if tracker is not None:
                tracker.close()

    def _make_placement(self, target: Target, old: Placement | None) -> Placement | None:
        """The placement for `target` (None for a bundle without pose statistics); the performer's
        statistics gathered so far carry over a target switch."""
        if target.pose_stats is None:
            return None
        if old is not None:
            return old.retarget(target.pose_stats)
        return Placement(target.pose_stats, self.config.placement, self._file_stats)

    def _wait_for_generator(self, stop: threading.Event, margin: float = 0.004) -> None:
        """Do not track a frame the generator cannot take yet (it would be dropped: wasted CPU on
        two cores), and start the next one just in time for the generator, on the newest frame."""
        if not self._poses.wait_taken(timeout=0.25):
            return
        busy = self._gen_busy_since
        if busy is None or self._gen_time.value is None or self._pose_time.value is None:
            return
        start_at = busy + self._gen_time.value - self._pose_time.value - margin
        delay = start_at - time.monotonic()
        if delay > 0:
            stop.wait(min(delay, 0.25))

    def _backdrop(self, target: Target) -> np.ndarray | None:
        """The configured background for `target`; its own plate when it cannot take another (a
        target switched to live that has no alpha: said once, the show goes on)."""
        try:
            return target.backdrop(self.config.background)
        except DanceNowError as e:
            if target.name not in self._backdrop_warned:
                self._backdrop_warned.add(target.name)
                log.warning("%s", e)
            return None

    def _make_tracker(self):
        """MediaPipe, warmed up on a blank frame (its first call builds the graph)."""
        from dancenow.realtime.pose.tracker import PoseTracker

        tracker = PoseTracker(self.config.tracker)
        tracker.track(np.zeros((480, 640, 3), np.uint8), 0.0)
        return tracker

    def _generate_loop(self, stop: threading.Event, ready: threading.Event) -> None:
        after = 0
        poses = self._poses
        blank = self._target.blank()
        self._target.engine.generate(blank, blank)  # warm-up: first runs allocate and pick kernels
        ready.set()
        while not stop.is_set():
            got = poses.get(after, timeout=0.1)
            if got is None:
                if self._pose_done and poses.seq <= after and not self.finished.is_set():
                    self.finished.set()
                continue
            after, item = got
            stamps = item.stamps
            stamps["gen_in"] = self._gen_busy_since = time.monotonic()
            target = self._target
            if item.label_map.shape[:2] != target.resolution:
                continue  # rendered for the previous target: skip one frame
            previous = self._previous
            if previous is None or previous.shape[:2] != target.resolution:
                previous = target.blank()  # black: the training's blank previous frame
            frame = target.generate(item.label_map, previous)
            stamps["generate"] = time.monotonic()
            self._previous = frame
            out = target.with_face(frame, item.label_map, item.target_pose) if self.config.face else frame
            out = target.over(out, self._backdrop(target))
            stamps["face"] = time.monotonic()
            image = compose(self.config.layout, out, item.captured.image, item.label_map, mark=self.config.mark)
            if self.config.stamp_pixels:
                wall_ms = (time.time() - (time.monotonic() - item.captured.timestamp)) * 1000.0
                image = pixelstamp.encode(image if image is not out else image.copy(), item.captured.seq, wall_ms)
            stamps["output"] = time.monotonic()
            self._gen_time.add(stamps["output"] - stamps["gen_in"])
            self._gen_busy_since = None
            live = LiveFrame(image, item.captured.seq, stamps, item.pose, item.label_map, item.target_pose, out,
                             item.state)
            if self._source.lossless:
                while not stop.is_set() and not self.output.wait_taken(timeout=0.1):
                    pass
            self.output.put(live)
            self.telemetry.record(stamps)
