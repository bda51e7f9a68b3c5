"""The Target: one opened target bundle, everything the live side needs to know about it.

Only this object reads a bundle's manifest fields (renderer settings, pose statistics, face
settings, provenance); the live pipeline, the server, `run`, the demo window, `transfer`,
`evaluate` on a bundle and the benchmarks take a Target, never a loose engine plus guesses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dancenow.engines import Engine
from dancenow.engines.bundle import MANIFEST, Manifest
from dancenow.engines.sizes import open_sized
from dancenow.errors import DanceNowError
from dancenow.files import sha256
from dancenow.realtime.media.provenance import metadata
from dancenow.realtime.pose.face import face_box, paste_face
from dancenow.realtime.pose.normalize import PoseStats
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.renderer import RenderConfig

KEY_COLOURS = {"green": (0, 177, 64), "blue": (0, 71, 187), "black": (0, 0, 0), "white": (255, 255, 255)}


def _read_image(path: Path, what: str) -> np.ndarray:
    """An RGB uint8 image file, or a DanceNowError naming it."""
    import cv2

    if not path.is_file():
        raise DanceNowError(f"{what}: no such file {path}: give an image file, or one of plate, "
                            f"{', '.join(KEY_COLOURS)}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DanceNowError(f"{what}: {path} is not an image OpenCV can read (PNG or JPEG)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class Target:
    """A bundle's engine with its resolution, renderer settings, pose statistics, face settings,
    background plate and provenance, read once from its manifest."""

    def __init__(self, engine: Engine) -> None:
        if engine.manifest is None or engine.bundle is None:
            raise DanceNowError("a Target is made from a bundle: open it with Target.open(BUNDLE)")
        manifest: Manifest = engine.manifest
        where = f"{engine.bundle}/{MANIFEST}"
        self.engine = engine
        self.bundle: Path = Path(engine.bundle)
        self.name: str = manifest.name
        self.resolution: tuple[int, int] = (int(manifest.resolution[0]), int(manifest.resolution[1]))
        self.render = RenderConfig.from_dict(manifest.renderer, f"{where} renderer") if manifest.renderer else RenderConfig()
        self.pose_stats: PoseStats | None = (PoseStats.from_dict(manifest.pose_stats, f"{where} pose_stats")
                                             if manifest.pose_stats else None)
        self.face_crop: int | None = engine.face_crop
        self.training: dict = dict(manifest.training)
        self.gflop = float(manifest.generator.get("gflop") or 0.0)  # per frame, as export counted it
        self.artifacts: dict[str, dict] = {k: dict(v) for k, v in manifest.artifacts.items()}
        # the background plate the person is composited over (generator v2 bundles); None: the
        # generator paints the whole frame
        self.plate: np.ndarray | None = self._read_plate()
        self._manifest_sha: str | None = None
        self._backdrops: dict[str, np.ndarray | None] = {}
        self._swap: tuple[np.ndarray, np.ndarray] | None = None  # (backdrop, backdrop - plate as float)
        self.size_note = f"{self.resolution[0]}x{self.resolution[1]}"  # which size and why (Target.open)

    @classmethod
    def open(cls, bundle: str | os.PathLike, backend: str = "auto", threads: int | None = 1,
             precision: str | None = None, size: str = "auto") -> Target:
        """Verify and load `bundle` on `backend`, at `size` (an HD bundle holds two: engines/sizes.py).

        One intra-op thread by default: in the live loop MediaPipe has the other core, and two
        stages each asking for every core only fight (see `dancenow bench live`)."""
        engine, note = open_sized(bundle, backend=backend, threads=threads, precision=precision, size=size)
        target = cls(engine)
        target.size_note = note
        return target

    def generate(self, label_map: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """The generator's frame (the one fed back as `previous` next time)."""
        return self.engine.generate(label_map, previous)

    def with_face(self, frame: np.ndarray, label_map: np.ndarray, pose: Pose) -> np.ndarray:
        """`frame` with EDN's face pass around `pose`'s nose (a copy); `frame` itself when the
        bundle has no face net or the nose is not visible."""
        if not self.face_crop:
            return frame
        box = face_box(pose, self.resolution, self.face_crop)
        return paste_face(frame, label_map, box, self.engine.refine_face)

    def _read_plate(self) -> np.ndarray | None:
        rel = next((k for k, v in self.artifacts.items() if v.get("role") == "plate"), None)
        if rel is None:
            return None
        image = _read_image(self.bundle / rel, "the bundle's plate")  # sha256-checked with the bundle
        if image.shape[:2] != self.resolution:
            raise DanceNowError(f"{self.bundle / rel} is {image.shape[1]}x{image.shape[0]}, not the bundle's "
                                f"{self.resolution[1]}x{self.resolution[0]}: re-export the bundle")
        return image

    def backdrop(self, background: str | os.PathLike | None) -> np.ndarray | None:
        """The image to show behind the person for `background`: None for the bundle's own room
        ("plate" or None), a flat key colour ("green", "blue", "black", "white") or an image file
        fitted to the model's size (cropped to its aspect, never stretched)."""
        key = str(background or "plate")
        if key not in self._backdrops:
            self._backdrops[key] = None if key == "plate" else self._make_backdrop(key)
        return self._backdrops[key]

    @property
    def backgrounds(self) -> tuple[str, ...]:
        """The named backgrounds this target can show (an image file too, when more than "plate")."""
        return ("plate",) if self._opaque else ("plate", *KEY_COLOURS)

    @property
    def _opaque(self) -> bool:
        return self.plate is None or self.engine.name == "tensorrt"

    def _make_backdrop(self, key: str) -> np.ndarray:
        if self._opaque:
            raise DanceNowError(f"--background {key}: {self.name}'s generator paints the whole frame (it has no alpha: "
                                "a bundle from before generator v2, or the TensorRT backend): retrain it with the "
                                "cpu-realtime profile, or use another backend")
        h, w = self.resolution
        if key in KEY_COLOURS:
            return np.broadcast_to(np.array(KEY_COLOURS[key], np.uint8), (h, w, 3)).copy()
        image = _read_image(Path(key), "--background")
        ih, iw = image.shape[:2]
        scale = max(h / ih, w / iw)
        import cv2

        image = cv2.resize(image, (max(w, round(iw * scale)), max(h, round(ih * scale))), interpolation=cv2.INTER_AREA)
        y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
        return np.ascontiguousarray(image[y0:y0 + h, x0:x0 + w])

    def over(self, frame: np.ndarray, backdrop: np.ndarray | None) -> np.ndarray:
        """`frame` (the person over the plate) with the plate replaced by `backdrop` through the
        generator's alpha of the last `generate`: frame + (1 - alpha) x (backdrop - plate)."""
        alpha = self.engine.alpha
        if backdrop is None or alpha is None or self.plate is None:
            return frame
        if self._swap is None or self._swap[0] is not backdrop:  # backdrop - plate, once per backdrop
            self._swap = (backdrop, backdrop.astype(np.float32) - self.plate)
        out = frame.astype(np.float32) + (1.0 - alpha)[..., None] * self._swap[1]
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def blank(self) -> np.ndarray:
        """A black frame at the model's resolution (training's blank previous frame)."""
        return np.zeros((*self.resolution, 3), np.uint8)

    def provenance(self) -> dict[str, str]:
        """Container metadata naming this bundle, for every file we write."""
        if self._manifest_sha is None:
            self._manifest_sha = sha256(self.bundle / MANIFEST)
        return metadata(self.name, self._manifest_sha)

    def describe(self) -> str:
        return f"{self.name} ({self.bundle}) at {self.size_note}: {self.engine.describe()}"
