"""The Show: a performer source, a Target, the live pipeline between them, and where frames go.

`open_show` is the one place where these are put together; `dancenow serve`, `run`, the demo
window and the live and web benchmarks all start a show through it. Switching the target or the
source while it runs are its methods, so no command wires pipelines by hand.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dancenow.errors import DanceNowError
from dancenow.realtime.live.frame import LiveFrame
from dancenow.realtime.live.pipeline import Pipeline, PipelineConfig
from dancenow.realtime.live.slot import LatestSlot
from dancenow.realtime.live.sources import Source, open_source
from dancenow.realtime.live.target import Target
from dancenow.realtime.live.telemetry import PipelineStats
from dancenow.realtime.media.writer import VideoWriter

RECORD_SUFFIXES = (".mp4", ".mkv", ".mov")


class Show:
    """Runs `pipeline` from `source` to `target`; frames come out of `output` (or `next_frame`,
    which also writes them to the recording, when one is open)."""

    def __init__(self, source: Source, target: Target, pipeline: Pipeline, backend: str = "auto",
                 threads: int | None = 1, size: str = "auto") -> None:
        self.home = source  # the source the show was opened with; `switch_source(None)` returns to it
        self.target = target
        self.pipeline = pipeline
        self.backend, self.threads, self.size = backend, threads, size
        self._sources: dict[int, Source] = {id(source): source}
        self.recorder: VideoWriter | None = None
        self._t0 = time.monotonic()

    # --- running ---------------------------------------------------------------------------

    @property
    def source(self) -> Source:
        return self.pipeline.source

    @property
    def output(self) -> LatestSlot[LiveFrame]:
        return self.pipeline.output

    @property
    def running(self) -> bool:
        return self.pipeline.running

    def start(self) -> None:
        """Start the pipeline (returns once the tracker and the engine are warm)."""
        self.pipeline.start()

    def check_ready(self) -> None:
        """A clear error now for a source that cannot deliver at all (a camera that never opens)."""
        self.source.check_ready()

    def stop(self) -> None:
        self.pipeline.stop()

    def close(self) -> None:
        """Stop, finish the recording, and release every source this show has used."""
        self.stop()
        self.stop_recording()
        for src in self._sources.values():
            src.close()

    def stats(self) -> PipelineStats:
        return self.pipeline.stats()

    def next_frame(self, after: int, timeout: float = 0.1) -> tuple[int, LiveFrame] | None:
        """The next output frame after sequence `after` (None on timeout), recorded when recording."""
        got = self.pipeline.output.get(after, timeout=timeout)
        if got is not None and self.recorder is not None:
            self.recorder.write(got[1].image, got[1].stamps["output"] - self._t0)
        return got

    @property
    def ended(self) -> bool:
        """A finite source's last frame was output, or the pipeline stopped."""
        return self.pipeline.finished.is_set() or not self.pipeline.running

    # --- switching -------------------------------------------------------------------------

    def switch_target(self, target: Target | str | os.PathLike) -> Target:
        """Generate for another target from the next frame on (a bundle path is opened first,
        with this show's backend and threads; a bad bundle raises and changes nothing)."""
        if not isinstance(target, Target):
            target = Target.open(target, backend=self.backend, threads=self.threads, size=self.size)
        self.pipeline.set_target(target)
        self.target = target
        return target

    def switch_source(self, source: Source | str | None) -> Source:
        """Take performer frames from `source` (None: the source the show was opened with)."""
        if source is None:
            source = self.home
        elif not isinstance(source, Source):
            source = open_source(source)
        self._sources.setdefault(id(source), source)
        self.pipeline.set_source(source)
        return source

    def recalibrate(self) -> None:
        self.pipeline.recalibrate()

    def set_background(self, background: str) -> None:
        """Behind the person from the next frame on: "plate" (the target's room), a key colour or an
        image file (see `PipelineConfig.background`); raises, changing nothing, if the target cannot."""
        self.pipeline.set_background(background)

    @property
    def background(self) -> str:
        return self.pipeline.config.background

    # --- recording -------------------------------------------------------------------------

    def record(self, path: str | os.PathLike, fps: float = 30.0) -> VideoWriter:
        """Write every frame `next_frame` returns to `path` (real-time timestamps, the target's
        provenance in the metadata) until `stop_recording`."""
        path = Path(path)
        if path.suffix.lower() not in RECORD_SUFFIXES:
            raise DanceNowError(f"{path}: write an .mp4 (or .mkv/.mov) file")
        self.stop_recording()
        self.recorder = VideoWriter(path, fps, metadata=self.target.provenance(), live=True)
        return self.recorder

    def stop_recording(self) -> VideoWriter | None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.close()
        return recorder

    def __enter__(self) -> Show:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_show(source: str | Source, target: str | os.PathLike | Target, config: PipelineConfig | None = None,
              backend: str = "auto", threads: int | None = 1, loop: bool = False, paced: bool = True,
              size: str = "auto") -> Show:
    """The one composition of source + Target + pipeline.

    `source`: "webcam:N", "demo", "browser", a video file, or a Source; a file plays paced at its
    own frame times (`loop`: on and on). `target`: a bundle folder or an opened Target."""
    src = source if isinstance(source, Source) else open_source(str(source), loop=loop, paced=paced)
    try:
        tgt = target if isinstance(target, Target) else Target.open(target, backend=backend, threads=threads, size=size)
        config = config or PipelineConfig()
        tgt.backdrop(config.background)  # a background this target cannot take: say so before anything runs
        return Show(src, tgt, Pipeline(src, tgt, config), backend, threads, size)
    except BaseException:
        src.close()
        raise


def drain(pipeline: Pipeline, timeout: float = 60.0) -> list[LiveFrame]:
    """Every output frame of a lossless (unpaced) pipeline until its source ended, in order: how
    `bench desk` and the tests read a whole clip through the live loop, frame for frame."""
    frames: list[LiveFrame] = []
    after = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pipeline.output.get(after, timeout=0.1)
        if got is None:
            if pipeline.finished.is_set():
                break
            continue
        after, f = got
        frames.append(f)
    return frames
