"""The Target: one opened target bundle, everything the live side needs to know about it.

Only this object reads a bundle's manifest fields (renderer settings, pose statistics, face
settings, provenance); the live pipeline, the server, `run`, the demo window, `transfer`,
`evaluate` on a bundle and the benchmarks take a Target, never a loose engine plus guesses.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dancenow.engines import Engine, load_engine
from dancenow.engines.bundle import MANIFEST, Manifest
from dancenow.errors import DanceNowError
from dancenow.files import sha256
from dancenow.realtime.media.provenance import metadata
from dancenow.realtime.pose.face import face_box, paste_face
from dancenow.realtime.pose.normalize import PoseStats
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.renderer import RenderConfig


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
        self.plate: np.ndarray | None = None
        self._manifest_sha: str | None = None

    @classmethod
    def open(cls, bundle: str | os.PathLike, backend: str = "auto", threads: int | None = 1,
             precision: str | None = None) -> Target:
        """Verify and load `bundle` on `backend`.

        One intra-op thread by default: in the live loop MediaPipe has the other core, and two
        stages each asking for every core only fight (see `dancenow bench live`)."""
        return cls(load_engine(bundle, backend=backend, threads=threads, precision=precision))

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

    def blank(self) -> np.ndarray:
        """A black frame at the model's resolution (training's blank previous frame)."""
        return np.zeros((*self.resolution, 3), np.uint8)

    def provenance(self) -> dict[str, str]:
        """Container metadata naming this bundle, for every file we write."""
        if self._manifest_sha is None:
            self._manifest_sha = sha256(self.bundle / MANIFEST)
        return metadata(self.name, self._manifest_sha)

    def describe(self) -> str:
        return f"{self.name} ({self.bundle}): {self.engine.describe()}"
