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

from dancenow.engines import load_engine
from dancenow.engines.bundle import MANIFEST
from dancenow.errors import DanceNowError
from dancenow.files import sha256
from dancenow.realtime.live.compositor import compose
from dancenow.realtime.media.provenance import metadata
from dancenow.realtime.media.writer import VideoWriter
from dancenow.realtime.pose.face import with_face
from dancenow.realtime.pose.normalize import Normalizer, PoseStats, fit_stats
from dancenow.realtime.pose.pose import Pose, save_track
from dancenow.realtime.pose.renderer import RenderConfig, render_label_map
from dancenow.realtime.pose_video import open_video, track_video

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


def transfer(source: str | Path, bundle: str | Path, out: str | Path, config: TransferConfig = TransferConfig()) -> Path:
    """Write `out`: the target performing `source`; the pose track goes beside it (.poses.jsonl)."""
    source, bundle, out = Path(source), Path(bundle), Path(out)
    engine = load_engine(bundle, backend=config.backend)
    manifest = engine.manifest
    h, w = manifest.resolution
    if not manifest.pose_stats:
        raise DanceNowError(f"bundle {bundle} has no target pose statistics: re-export it from a prepared target")
    target_stats = PoseStats.from_dict(manifest.pose_stats)
    render_cfg = RenderConfig.from_dict(manifest.renderer or {})

    raw, _, rate = track_video(source, config.holistic)
    poses = smooth_track(raw, config.smooth_window)
    normalizer = Normalizer(fit_stats(poses), target_stats)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_track(raw, out.with_suffix(".poses.jsonl"))

    meta = metadata(manifest.name, sha256(bundle / MANIFEST))
    with open_video(source) as inp:
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        # Every stream must exist before the first packet is written: size the video from a probe.
        blank = np.zeros((h, w, 3), dtype=np.uint8)
        performer_blank = np.zeros((vin.codec_context.height, vin.codec_context.width, 3), np.uint8)
        size = compose(config.layout, blank, performer_blank, blank, mark=False).shape[:2]
        writer = VideoWriter(out, rate, size, meta, audio_template=ain)
        previous = np.zeros((h, w, 3), dtype=np.uint8)
        i = 0
        picks = set(np.linspace(0, len(poses) - 1, config.strip_frames + 2).round().astype(int)[1:-1].tolist())
        rows: list[np.ndarray] = []
        streams = [vin] + ([ain] if ain is not None else [])
        try:
            with tqdm(total=len(poses), desc="generating", unit="frame") as bar:
                for packet in inp.demux(streams):
                    if packet.stream is ain:
                        writer.mux_audio(packet)
                        continue
                    for frame in packet.decode():
                        if i >= len(poses):
                            break
                        pose = normalizer.apply(poses[i])
                        label = render_label_map(pose, (h, w), render_cfg)
                        generated = engine.generate(label, previous)
                        previous = generated
                        generated = with_face(engine, generated, label, pose)
                        performer = frame.to_ndarray(format="rgb24")
                        writer.write(compose(config.layout, generated, performer, label, mark=config.mark))
                        if config.strip and i in picks:
                            rows.append(compose("side-by-side", generated, performer, label, mark=config.mark))
                        i += 1
                        bar.update(1)
        except BaseException:
            writer.abort()
            raise
        writer.close()
    log.info("wrote %s (%d frames at %s fps)", out, i, rate)
    if config.strip:
        write_strip(rows, config.strip)
    return out


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
