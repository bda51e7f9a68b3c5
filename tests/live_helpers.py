"""Helpers for the live pipeline tests: a tiny real ONNX bundle and engine.

Until `dancenow.engines.load_engine` exists, `tiny_engine` wraps ONNX Runtime directly (tests
only); once it does, the real loader is used on the same bundle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dancenow.engines.base import Engine, to_image, to_tensor
from dancenow.engines.bundle import Manifest, read_manifest, write_manifest

SIZE = (256, 192)


def make_bundle(out: Path, size: tuple[int, int] = SIZE, seed: int = 0) -> Path:
    """A bundle holding a random cpu-realtime generator exported to ONNX (no face net)."""
    import torch
    from dancenow.realtime.pose.normalize import PoseStats
    from dancenow.realtime.pose.renderer import RenderConfig
    from dancenow.training.networks import Generator, GeneratorConfig

    out = Path(out)
    if (out / "manifest.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cfg = GeneratorConfig(ngf=16, n_downsample=3, n_blocks=6, norm="instance", upsample="resize")
    g = Generator(cfg).eval()
    h, w = size
    x = torch.zeros(1, 3, h, w)
    torch.onnx.export(g, (x, x), str(out / "generator.onnx"), input_names=["pose", "previous"],
                      output_names=["frame"], opset_version=17, dynamo=False)
    stats = PoseStats(frame_size=size, ankle_close=0.92 * h, ankle_far=0.80 * h, ankle_median=0.86 * h,
                      height_close=0.68 * h, height_far=0.55 * h, height_median=0.62 * h,
                      x_center=w / 2, frames=100)
    m = Manifest(name="tiny", resolution=size, generator={"config": cfg.to_dict()},
                 renderer=RenderConfig().to_dict(), pose_stats=stats.to_dict(),
                 artifacts={"generator.onnx": {"kind": "generator", "precision": "fp32"}})
    write_manifest(out, m)
    return out


class OrtEngine(Engine):
    """ONNX Runtime on a bundle's generator.onnx (tests only, until the real loader lands)."""

    name, device, precision = "onnxruntime", "cpu", "fp32"

    def __init__(self, bundle: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.bundle = Path(bundle)
        self.manifest = read_manifest(bundle)
        self.resolution = tuple(self.manifest.resolution)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self._sess = ort.InferenceSession(str(self.bundle / "generator.onnx"), so, providers=["CPUExecutionProvider"])

    def generate(self, label_map: np.ndarray, previous_frame: np.ndarray) -> np.ndarray:
        out = self._sess.run(None, {"pose": to_tensor(label_map), "previous": to_tensor(previous_frame)})[0]
        return to_image(out)


def tiny_engine(bundle: Path) -> Engine:
    try:
        from dancenow.engines import load_engine
    except ImportError:
        return OrtEngine(bundle)
    return load_engine(bundle, backend="onnxruntime", threads=1)
