"""PyTorch backend: the bundle's TorchScript generator, the reference every other backend is checked
against. It loads the traced file, so running it never needs the training code."""

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
        self._gen = _load(generator, device)
        self._last_alpha: np.ndarray | None = None
        self._face = None
        if face is not None and face_crop:
            self.face_crop = int(face_crop)
            self._face = _load(face, device)

    def _run(self, module, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The image and (from an alpha generator, which returns a pair) the alpha."""
        with torch.inference_mode():
            x = torch.from_numpy(to_tensor(a)).to(self.device)
            y = torch.from_numpy(to_tensor(b)).to(self.device)
            out = module(x, y)
            frame, alpha = out if isinstance(out, tuple | list) else (out, None)
            return (to_image(frame.float().cpu().numpy()),
                    None if alpha is None else to_alpha(alpha.float().cpu().numpy()))

    def _generate(self, label_map: np.ndarray, previous_frame: np.ndarray) -> np.ndarray:
        frame, self._last_alpha = self._run(self._gen, label_map, previous_frame)
        return frame

    @property
    def alpha(self) -> np.ndarray | None:
        return self._last_alpha

    def _refine_face(self, label_crop: np.ndarray, frame_crop: np.ndarray) -> np.ndarray:
        return self._run(self._face, label_crop, frame_crop)[0]
