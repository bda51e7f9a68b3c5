"""The built-in synthetic dance as training frames: a drawn figure over a drawn room, so its plate
and person masks are exact. `prepare --synthetic` writes it like any video."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dancenow.realtime.pose.pose import Pose
from dancenow.training.masks import masks_from_plate
from dancenow.training.plate import Plate
from dancenow.training.register import identity

SYNTHETIC_SIZE = (256, 192)  # (H, W) at the default long side; prepare scales it (512: HD)


def synthetic_digest() -> str:
    """The synthetic target is a function of the dance and figure code: hash their source."""
    from dancenow.realtime.pose import choreography, figure

    h = hashlib.sha256()
    for mod in (choreography, figure):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()


def synthetic_frames(size: tuple[int, int], frames: int | None, fps: float, plate: bool):
    """(frames, poses, source index, info) as prepare's video path returns them: `frames` of the
    dance (default one loop) at `fps`, with the plate and masks when `plate`."""
    from dancenow.realtime.pose.choreography import PERIOD, pose_at
    from dancenow.realtime.pose.figure import TARGET_STYLE, draw_figure

    n = frames or int(round(PERIOD * fps))
    images, poses = [], []
    for i in tqdm(range(n), desc="synthetic target", unit="frame"):
        pose = pose_at(i / fps, size)
        images.append(draw_figure(pose, size, TARGET_STYLE))
        poses.append(pose)
    info = {"source_size": list(size), "fps": fps, "decoded": n, "dropped": 0, "crop": [0, 0, size[1], size[0]]}
    if plate:  # the figure is drawn over a known background: the plate is exact, the masks too
        empty = draw_figure(Pose.missing(size), size, TARGET_STYLE)
        info.update(plate=Plate(empty, np.zeros(size, bool), n, 0), masks=masks_from_plate(images, empty),
                    masks_source="synthetic", registration=identity(n, n // 2), reg_scale=1.0, unsteady=[False] * n,
                    reference=n // 2)
    return images, poses, list(range(n)), info
