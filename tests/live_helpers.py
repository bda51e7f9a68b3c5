"""Helpers for the live pipeline tests: a tiny real ONNX bundle (a random cpu-realtime generator,
fast to make, independent of the demo checkpoint) loaded by the real `load_engine`, and clips."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dancenow.engines.bundle import Manifest, write_manifest

if TYPE_CHECKING:
    from dancenow.realtime.live.target import Target

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
    m = Manifest(name="tiny", resolution=size,
                 renderer=RenderConfig().to_dict(), pose_stats=stats.to_dict(),
                 generator={"config": cfg.to_dict(), "inputs": {"pose": [1, 3, h, w], "previous": [1, 3, h, w]},
                            "outputs": {"frame": [1, 3, h, w]}},
                 artifacts={"generator.onnx": {"kind": "onnx", "role": "generator", "precision": "fp32"}})
    write_manifest(out, m)
    return out


def tiny_target(bundle: Path, threads: int = 1) -> Target:
    from dancenow.realtime.live.target import Target

    return Target.open(bundle, backend="onnxruntime", threads=threads)


def write_clip(src: Path, out: Path, frames: int, start: int = 0, black: tuple[int, int] | None = None,
               height: int = 512) -> Path:
    """Frames [start, start+frames) of a real clip, scaled to `height`, as H.264 at the clip's rate;
    frames whose index (in the output) falls in `black` = [a, b) are replaced by black frames."""
    import av

    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        rate = stream.average_rate
        images = []
        for i, f in enumerate(inp.decode(stream)):
            if i < start:
                continue
            if len(images) >= frames:
                break
            images.append(f.to_ndarray(format="rgb24"))
    h, w = images[0].shape[:2]
    width = int(round(w * height / h / 2)) * 2
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=rate)
        s.height, s.width, s.pix_fmt = height, width, "yuv420p"
        n = len(images) + (black[1] - black[0] if black else 0)
        it = iter(images)
        for i in range(n):
            if black and black[0] <= i < black[1]:
                img = np.zeros((height, width, 3), np.uint8)
            else:
                frame = av.VideoFrame.from_ndarray(next(it), format="rgb24").reformat(width=width, height=height)
                img = frame.to_ndarray(format="rgb24")
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            for pkt in s.encode(vf):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return out


def demo_clip(out: Path, frames: int, size: tuple[int, int] = (512, 320), fps: float = 30.0) -> Path:
    """`frames` frames of the built-in performer (MediaPipe finds it) as an H.264 file: a clip
    for the tests that need a video but no footage."""
    from dancenow.realtime.transfer import write_demo_performer

    return write_demo_performer(out, seconds=frames / fps, fps=fps, size=size)


def drain(pipeline, timeout: float = 60.0) -> list:
    """Every output frame of a lossless pipeline until its source ended (`show.drain`)."""
    from dancenow.realtime.live.show import drain as every_frame

    return every_frame(pipeline, timeout)
