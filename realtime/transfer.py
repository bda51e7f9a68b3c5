"""Offline motion transfer: a whole source video onto the target, as EDN's own product did.

Offline we can look ahead: the performer's statistics are fitted on the whole video and the
keypoints get EDN's centred median smoothing instead of the live causal filter. The source's
audio is copied through untouched, the output has one frame per source frame at the same rate,
and it carries the visible "synthetic" mark and metadata naming the bundle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from dancenow.errors import DanceNowError
from dancenow.realtime.live.compositor import compose
from dancenow.realtime.live.target import Target
from dancenow.realtime.media.reader import iter_frames, open_video, video_info
from dancenow.realtime.media.writer import VideoWriter
from dancenow.realtime.pose.normalize import PoseStats, fit_stats
from dancenow.realtime.pose.placement import FULL, Placement
from dancenow.realtime.pose.pose import Pose, save_track
from dancenow.realtime.pose.renderer import render_label_map
from dancenow.realtime.pose_video import track_video

log = logging.getLogger(__name__)


@dataclass
class TransferConfig:
    layout: str = "target"  # "target" or "side-by-side" (performer | pose | target)
    mark: bool = True  # the visible "synthetic" mark; turn off only deliberately
    backend: str = "auto"
    smooth_window: int = 5  # frames in EDN's centred median filter (odd)
    holistic: bool = False
    strip: Path | None = None  # also write a PNG of `strip_frames` rows of performer | pose | target
    strip_frames: int = 3
    background: str = "plate"  # behind the person (alpha targets): plate, a key colour or an image file


def smooth_track(poses: list[Pose], window: int = 5) -> list[Pose]:
    """EDN's centred median smoothing of keypoints; gaps are filled from the nearest detection."""
    found = [i for i, p in enumerate(poses) if p.detected]
    if not found:
        raise DanceNowError("nobody was found in the source video: film one person, head to feet")
    idx = np.array(found)
    filled = [poses[int(idx[np.argmin(np.abs(idx - i))])] if not p.detected else p for i, p in enumerate(poses)]
    pts = np.stack([p.points for p in filled])
    conf = np.stack([p.confidence for p in filled])
    half = max(0, window // 2)
    padded = np.pad(pts, ((half, half), (0, 0), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)
    smoothed = np.median(windows, axis=-1)
    return [p.copy(points=smoothed[i], confidence=conf[i], detected=True) for i, p in enumerate(filled)]


def transfer(source: str | Path, bundle: str | Path | Target, out: str | Path, config: TransferConfig = TransferConfig()) -> Path:
    """Write `out`: the target performing `source`; the pose track goes beside it (.poses.jsonl)."""
    source, out = Path(source), Path(out)
    target = bundle if isinstance(bundle, Target) else Target.open(bundle, backend=config.backend, threads=None)
    backdrop = target.backdrop(config.background)  # before any work: a background it cannot take is an error now
    h, w = target.resolution
    if target.pose_stats is None:
        raise DanceNowError(f"bundle {target.bundle} has no target pose statistics: re-export it from a prepared target")

    raw, _, rate = track_video(source, config.holistic, face_mesh=target.render.face_lines)  # as live
    poses = smooth_track(raw, config.smooth_window)
    placement = Placement(target.pose_stats, performer=_performer_stats(poses))
    views: dict[str, int] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_track(raw, out.with_suffix(".poses.jsonl"))

    info = video_info(source)
    # Every stream must exist before the first packet is written: size the video from a probe.
    blank = target.blank()
    size = compose(config.layout, blank, np.zeros((*info.size, 3), np.uint8), blank, mark=False).shape[:2]
    previous = blank
    picks = set(np.linspace(0, len(poses) - 1, config.strip_frames + 2).round().astype(int)[1:-1].tolist())
    rows: list[np.ndarray] = []
    with open_video(source) as inp:
        ain = inp.streams.audio[0] if inp.streams.audio else None
        writer = VideoWriter(out, rate, size, target.provenance(), audio_template=ain)
        try:
            for f in tqdm(iter_frames(source, max_frames=len(poses)), total=len(poses), desc="generating",
                          unit="frame"):
                pose = placement.apply(poses[f.index], f.index / float(rate))
                views[placement.view] = views.get(placement.view, 0) + 1
                label = render_label_map(pose, (h, w), target.render)
                generated = target.generate(label, previous)
                previous = generated
                generated = target.over(target.with_face(generated, label, pose), backdrop)
                writer.write(compose(config.layout, generated, f.image, label, mark=config.mark))
                if config.strip and f.index in picks:
                    rows.append(compose("side-by-side", generated, f.image, label, mark=config.mark))
            if ain is not None:  # copied untouched; the muxer interleaves it with the video
                for packet in inp.demux(ain):
                    writer.mux_audio(packet)
        except BaseException:
            writer.abort()
            raise
        i = writer.frames
        writer.close()
    log.info("wrote %s (%d frames at %s fps)", out, i, rate)
    partial = sum(n for v, n in views.items() if v != FULL)
    if partial:
        log.info("the performer's body was cut off in %d of %d frames (%s): what the camera did not show is "
                 "%s's own stance", partial, i, ", ".join(f"{v} {n}" for v, n in sorted(views.items())), target.name)
    if config.strip:
        write_strip(rows, config.strip)
    return out


def _performer_stats(poses: list[Pose]) -> PoseStats | None:
    """The performer's full-body statistics, or None for footage that rarely shows the feet (it is
    then placed by the upper body, and the target lends the legs)."""
    try:
        return fit_stats(poses)
    except DanceNowError as e:
        log.info("%s; placing the performer by the upper body instead", str(e).split(":")[0])
        return None


def write_strip(rows: list[np.ndarray], path: str | Path) -> Path:
    """One PNG of performer | pose | target rows, stacked top to bottom (README's picture)."""
    if not rows:
        raise DanceNowError("no frames for the strip: the source video is empty")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
    log.info("wrote %s (%d rows)", path, len(rows))
    return path


def write_demo_performer(path: str | Path, seconds: float | None = None, fps: float = 30.0,
                         size: tuple[int, int] = (360, 270)) -> Path:
    """The built-in performer (one loop of its choreography) as a video file, so that `transfer`
    has a source on a machine with no footage: `dancenow transfer demo ...`."""
    from dancenow.realtime.live.sources import DemoSource
    from dancenow.realtime.pose.choreography import PERIOD

    demo = DemoSource(fps=fps, size=size)
    with VideoWriter(path, fps, size) as writer:
        for i in range(int(round((seconds or PERIOD) * fps))):
            writer.write(demo.frame_at(i)[0])
    return Path(path)
