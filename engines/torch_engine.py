"""PyTorch backend: the bundle's TorchScript generator (traced at export, so running it never needs
the training code). TorchScript is a program, not a graph: only `backend="torch"` by name loads it,
never `auto` (the loader warns)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dancenow.engines.base import Engine, to_alpha, to_image, to_tensor
from dancenow.errors import DanceNowError


def _load(path: Path, device: str) -> torch.jit.ScriptModule:
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except Exception as e:  # torch raises several types for a damaged archive
        raise DanceNowError(f"PyTorch cannot load {path} ({type(e).__name__}: {e}): re-export the bundle") from None


class TorchEngine(Engine):
    name = "torch"
    precision = "fp32"

    def __init__(self, generator: Path, resolution: tuple[int, int], face: Path | None = None,
                 face_crop: int | None = None, device: str = "cpu", threads: int | None = None):
        if threads:
            torch.set_num_threads(int(threads))  # process-wide: torch has no per-module setting
        self.device = device
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self._gen = _Runner(_load(generator, device), device)
        self._face = None
        if face is not None and face_crop:
            self.face_crop = int(face_crop)
            self._face = _Runner(_load(face, device), device)


class _Runner:
    """A TorchScript network on two uint8 images, like the other backends' runners: returns the
    image and keeps an alpha generator's second output as `alpha` (what `Engine.alpha` reads)."""

    def __init__(self, module: torch.jit.ScriptModule, device: str) -> None:
        self.module, self.device = module, device
        self.alpha: np.ndarray | None = None

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(to_tensor(a)).to(self.device)
            y = torch.from_numpy(to_tensor(b)).to(self.device)
            out = self.module(x, y)
            frame, alpha = out if isinstance(out, tuple | list) else (out, None)
            self.alpha = None if alpha is None else to_alpha(alpha.float().cpu().numpy())
            return to_image(frame.float().cpu().numpy())
