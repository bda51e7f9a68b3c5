"""The Engine interface: one generator call per frame, whatever runs it.

Frames cross this boundary as uint8 H x W x 3 RGB arrays; the conversion to the network's
[-1, 1] NCHW float tensors lives here so every backend does it the same way.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dancenow.engines.bundle import Manifest
from dancenow.errors import DanceNowError


def to_tensor(image: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 -> float32 1 x 3 x H x W in [-1, 1]."""
    return (np.ascontiguousarray(image.transpose(2, 0, 1))[None].astype(np.float32) / 127.5) - 1.0


def to_alpha(tensor: np.ndarray) -> np.ndarray:
    """float 1 x 1 x H x W in [0, 1] -> float32 H x W (an alpha generator's second output)."""
    return np.clip(np.asarray(tensor, dtype=np.float32)[0, 0], 0.0, 1.0)


def to_image(tensor: np.ndarray) -> np.ndarray:
    """float 1 x 3 x H x W in [-1, 1] -> uint8 H x W x 3."""
    x = np.asarray(tensor, dtype=np.float32)[0].transpose(1, 2, 0)
    return np.clip((x + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


class Engine(ABC):
    """Runs a target bundle's generator (and face refiner, when the bundle has one)."""

    name: str  # backend name, e.g. "onnxruntime"
    device: str  # e.g. "cpu", "cuda:0"
    precision: str  # "fp32", "fp16", "bf16" or "int8"
    resolution: tuple[int, int]  # (height, width) of label maps and frames
    face_crop: int | None = None  # side of the square face crop, when the bundle has a face net
    manifest: Manifest | None = None  # set by load_engine
    bundle: Path | None = None  # set by load_engine
    choice: dict | None = None  # backend="auto" on a CPU: what was measured and why this engine (engines/choice.py)
    # The backend's compiled networks, each called on two checked uint8 images (set by the backend).
    _gen: Callable[[np.ndarray, np.ndarray], np.ndarray]
    _face: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    def generate(self, label_map: np.ndarray, previous_frame: np.ndarray) -> np.ndarray:
        """The target's frame for `label_map`, given the previous generated frame."""
        self.check_input(label_map, "label map")
        self.check_input(previous_frame, "previous frame")
        return self._generate(label_map, previous_frame)

    @property
    def alpha(self) -> np.ndarray | None:
        """The person's alpha (float32 H x W in [0, 1]) of the last `generate`, when the generator
        has one (v2 bundles; not the TensorRT backend): what puts the person over another background."""
        return getattr(self._gen, "alpha", None)  # TensorRT's runner has none

    def refine_face(self, label_crop: np.ndarray, frame_crop: np.ndarray) -> np.ndarray:
        """The face crop with EDN's face residual added; unchanged when there is no face net."""
        if not self.face_crop:
            return frame_crop
        size = (self.face_crop, self.face_crop)
        self.check_input(label_crop, "face label crop", size)
        self.check_input(frame_crop, "face frame crop", size)
        return self._refine_face(label_crop, frame_crop)

    def _generate(self, label_map: np.ndarray, previous_frame: np.ndarray) -> np.ndarray:
        """The backend's generator call on checked inputs."""
        return self._gen(label_map, previous_frame)

    def _refine_face(self, label_crop: np.ndarray, frame_crop: np.ndarray) -> np.ndarray:
        """The backend's face net call on checked crops (only when face_crop is set)."""
        return self._face(label_crop, frame_crop) if self._face is not None else frame_crop

    def check_input(self, image: np.ndarray, what: str, size: tuple[int, int] | None = None) -> None:
        """Refuse an image of the wrong size with a clear error rather than a backend traceback."""
        h, w = size or self.resolution
        if image.shape != (h, w, 3) or image.dtype != np.uint8:
            raise DanceNowError(
                f"{what} is {image.dtype} {tuple(image.shape)}, this target takes uint8 ({h}, {w}, 3): "
                "draw label maps at the bundle's resolution (manifest.resolution)"
            )

    def describe(self) -> str:
        return f"{self.name} on {self.device} ({self.precision}, {self.resolution[0]}x{self.resolution[1]})"
