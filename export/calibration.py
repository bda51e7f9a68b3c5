"""The inputs export checks and calibrates on: the target's own label maps, with `previous` frames
made the way the live loop makes them (the generator's own last output, run recurrently).

With a prepared data folder (`--calib DATA_DIR`) calibration comes from the training frames and
parity from the held-out tail; without one, both come from the built-in choreography drawn by the
shared renderer (calibration from the first 80% of the loop, parity from the last 15%).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dancenow.engines.base import to_image, to_tensor
from dancenow.errors import DanceNowError
from dancenow.realtime.pose.face import face_box
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.renderer import RenderConfig, render_label_map

log = logging.getLogger(__name__)

CHAIN = 4  # consecutive frames per recurrent chain


@dataclass
class Samples:
    """Generator inputs (uint8 label maps and previous frames), the reference outputs, face crops."""

    labels: list[np.ndarray] = field(default_factory=list)
    previous: list[np.ndarray] = field(default_factory=list)
    outputs: list[np.ndarray] = field(default_factory=list)  # float32 1x3xHxW from PyTorch
    face_labels: list[np.ndarray] = field(default_factory=list)
    face_frames: list[np.ndarray] = field(default_factory=list)

    def feeds(self) -> list[dict[str, np.ndarray]]:
        return [{"pose": to_tensor(a), "previous": to_tensor(b)} for a, b in zip(self.labels, self.previous, strict=True)]

    def face_feeds(self) -> list[dict[str, np.ndarray]]:
        return [{"label_crop": to_tensor(a), "frame_crop": to_tensor(b)}
                for a, b in zip(self.face_labels, self.face_frames, strict=True)]


def _run_chains(generator: torch.nn.Module, chains: list[list[tuple[np.ndarray, Pose]]], first_prev: list[np.ndarray],
                face_crop: int | None, size: tuple[int, int]) -> Samples:
    out = Samples()
    with torch.inference_mode():
        for chain, prev in zip(chains, first_prev, strict=True):
            for label, pose in chain:
                y = generator(torch.from_numpy(to_tensor(label)), torch.from_numpy(to_tensor(prev))).numpy()
                out.labels.append(label)
                out.previous.append(prev)
                out.outputs.append(y)
                frame = to_image(y)
                if face_crop:
                    box = face_box(pose, size, face_crop)
                    if box is not None:
                        x0, y0, x1, y1 = box
                        out.face_labels.append(np.ascontiguousarray(label[y0:y1, x0:x1]))
                        out.face_frames.append(np.ascontiguousarray(frame[y0:y1, x0:x1]))
                prev = frame
    return out


def _starts(lo: int, hi: int, n_chains: int) -> list[int]:
    if hi - lo < CHAIN:
        return [lo] if hi - lo >= 1 else []
    return sorted({int(v) for v in np.linspace(lo, hi - CHAIN, n_chains)})


def from_data(data_dir: str | Path, generator: torch.nn.Module, size: tuple[int, int], renderer: RenderConfig,
              face_crop: int | None, n_calib: int, n_parity: int) -> tuple[Samples, Samples]:
    """Calibration from the training part of a prepared folder, parity from its held-out tail."""
    from dancenow.training.prepare import load_prepared

    data = load_prepared(data_dir)
    if tuple(data.size) != tuple(size):
        raise DanceNowError(f"--calib {data_dir} holds {data.size[0]}x{data.size[1]} frames but the checkpoint's "
                            f"resolution is {size[0]}x{size[1]}: pass the data this target was trained on")
    n = len(data.labels)
    n_train = data.n_train if 0 < data.n_train < n else max(1, int(n * 0.85))

    def chains(lo: int, hi: int, count: int):
        out, prevs = [], []
        for s in _starts(lo, hi, max(1, count // CHAIN)):
            idx = list(range(s, min(hi, s + CHAIN)))
            out.append([(np.asarray(data.labels[i]), data.poses[i]) for i in idx])
            prevs.append(np.asarray(data.frames[max(0, s - 1)]))
        return out, prevs

    calib = _run_chains(generator, *chains(0, n_train, n_calib), face_crop, size)
    parity = _run_chains(generator, *chains(n_train, n, n_parity), face_crop, size)
    if not parity.labels:
        raise DanceNowError(f"--calib {data_dir} has no held-out frames for the parity check: prepare it with --holdout 0.15")
    return calib, parity


def synthetic(generator: torch.nn.Module, size: tuple[int, int], renderer: RenderConfig, face_crop: int | None,
              n_calib: int, n_parity: int, fps: float = 15.0) -> tuple[Samples, Samples]:
    """Pairs drawn from the built-in choreography (the demo target's own dance)."""
    from dancenow.realtime.pose.choreography import PERIOD, pose_at
    from dancenow.realtime.pose.figure import TARGET_STYLE, draw_figure

    def chains(t0: float, t1: float, count: int):
        out, prevs = [], []
        for t in np.linspace(t0, t1 - CHAIN / fps, max(1, count // CHAIN)):
            poses = [pose_at(float(t) + k / fps, size) for k in range(CHAIN)]
            out.append([(render_label_map(p, size, renderer), p) for p in poses])
            prevs.append(draw_figure(pose_at(float(t) - 1 / fps, size), size, TARGET_STYLE))
        return out, prevs

    calib = _run_chains(generator, *chains(0.0, 0.8 * PERIOD, n_calib), face_crop, size)
    parity = _run_chains(generator, *chains(0.85 * PERIOD, PERIOD, n_parity), face_crop, size)
    return calib, parity
