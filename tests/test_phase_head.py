"""The v2 head's inference form (export/phase_head.py) is the training graph's function, the export
writes it for every engine, and OpenVINO's in-graph image conversions equal the NumPy ones."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import openvino as ov
import openvino.opset13 as ops
import pytest
import torch
import torch.nn.functional as F

from dancenow.engines.base import to_image, to_tensor
from dancenow.engines.openvino_engine import compile_config, core, image_io
from dancenow.export.exporter import GEN_IO, to_onnx
from dancenow.export.ort_int8 import int8_strategies, output_convs
from dancenow.export.phase_head import DeployGenerator, deploy_form
from dancenow.training.networks import Generator, GeneratorConfig
from dancenow.training.profiles import get_profile

V2 = get_profile("cpu-realtime").generator


def _v2(alpha: bool, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    c = GeneratorConfig(**{**V2.to_dict(), "alpha": alpha})
    g = Generator(c).eval()
    with torch.no_grad():  # trained-like spread: default init leaves the head's output near zero
        for p in g.parameters():
            p.mul_(3.0)
    return g


@pytest.mark.parametrize("alpha", [True, False])
@pytest.mark.parametrize("size", [(64, 48), (40, 56)])
def test_the_inference_form_is_the_training_graph(alpha: bool, size: tuple[int, int]) -> None:
    g = _v2(alpha)
    if alpha:
        g.set_plate(torch.rand(1, 3, *size) * 2 - 1)
    d = deploy_form(g)
    assert isinstance(d, DeployGenerator)
    x, p = torch.rand(1, 3, *size) * 2 - 1, torch.rand(1, 3, *size) * 2 - 1
    with torch.no_grad():
        want, want_alpha = g.layers(x, p)
        got, got_alpha = d.layers(x, p)
    assert want.abs().max() > 0.1  # not a trivially flat output
    torch.testing.assert_close(got, want, atol=2e-6, rtol=0)
    if alpha:
        torch.testing.assert_close(got_alpha, want_alpha, atol=2e-6, rtol=0)
    else:
        assert got_alpha is None and want_alpha is None


def test_the_phase_convolution_is_exact_inside_and_the_border_needs_the_strips() -> None:
    """The phase convolution gives the interior exactly; padded as bilinear upsampling pads (edge
    replication), it would still miss the frame's border: reflect padding at full resolution mirrors
    across the edge. Hence the strips."""
    g = _v2(alpha=False)
    d = deploy_form(g)
    x = torch.randn(1, d.head.conv.in_channels, 32, 24)
    with torch.no_grad():
        want = d.head.conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False))
        inside = F.pixel_shuffle(d.head.phase(x), 2)
        padded = F.pixel_shuffle(d.head.phase(F.pad(x, (1, 1, 1, 1), mode="replicate")), 2)
    assert float((inside - want[:, :, 2:-2, 2:-2]).abs().max()) < 1e-5
    err = (padded - want).abs()
    assert float(err[:, :, 1:-1, 1:-1].max()) < 1e-5 and float(err.max()) > 1e-2


def test_other_generators_are_exported_as_they_are() -> None:
    for name in ("cpu-realtime-v1", "gpu-quality"):
        g = Generator(get_profile(name).generator)
        assert deploy_form(g) is g


def test_the_onnx_file_runs_the_phase_head_and_keeps_its_writers_fp32_in_int8() -> None:
    g = _v2(alpha=True)
    g.set_plate(torch.rand(1, 3, 64, 48) * 2 - 1)
    model = to_onnx(g, (64, 48), GEN_IO, 17, True)
    convs = output_convs(model)
    assert any("/head/phase/" in n for n in convs) and len(convs) == 3, convs  # the phase conv + the ring's two
    first = next(n.name for n in model.graph.node if n.op_type == "Conv")
    assert set(int8_strategies(model)[0][1]) == {first, *convs}
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert all("/head/" in n.name for n in resizes if "trunk" not in n.name)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 64, 48) * 2 - 1
    frame, alpha = sess.run(None, {"pose": x.numpy(), "previous": x.numpy()})
    with torch.no_grad():
        want, want_alpha = g.layers(x, x)
    np.testing.assert_allclose(frame, want.numpy(), atol=1e-4)
    np.testing.assert_allclose(alpha, want_alpha.numpy(), atol=1e-4)


# --- OpenVINO's image conversions ------------------------------------------------------------------

def _model(shuffled: bool) -> ov.Model:
    """Two images in, a frame out: through a pixel shuffle (v2's form) or not (v1, older bundles)."""
    a, b = ops.parameter([1, 3, 32, 24], np.float32, name="pose"), ops.parameter([1, 3, 32, 24], np.float32, name="previous")
    x = ops.concat([a, b], 1)
    if shuffled:
        w = np.random.default_rng(0).normal(0, 0.5, (12, 6, 1, 1)).astype(np.float32)
        y = ops.depth_to_space(ops.tanh(ops.convolution(ops.avg_pool(x, [2, 2], [0, 0], [0, 0], [2, 2], True), w,
                                                        [1, 1], [0, 0], [0, 0], [1, 1])), "depth_first", 2)
    else:
        w = np.random.default_rng(0).normal(0, 0.5, (3, 6, 1, 1)).astype(np.float32)
        y = ops.tanh(ops.convolution(x, w, [1, 1], [0, 0], [0, 0], [1, 1]))
    y.output(0).get_tensor().set_names({"frame"})
    return ov.Model([y], [a, b])


@pytest.mark.parametrize("shuffled", [True, False])
def test_images_in_and_out_equal_the_numpy_conversions(shuffled: bool) -> None:
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (32, 24, 3), dtype=np.uint8) for _ in range(2))
    plain = core().compile_model(_model(shuffled), "CPU", compile_config("fp32", 1))
    want = to_image(plain({"pose": to_tensor(a), "previous": to_tensor(b)})[0])
    wrapped = core().compile_model(image_io(_model(shuffled), ("pose", "previous"), "frame"), "CPU", compile_config("fp32", 1))
    assert wrapped.input("pose").get_element_type() == ov.Type.u8
    got = wrapped({"pose": a[None], "previous": b[None]})[0]
    assert got.dtype == np.uint8 and got.shape == (1, 32, 24, 3)
    diff = np.abs(got[0].astype(int) - want.astype(int))
    # float rounding may move a value across a level boundary; nothing more
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())
    assert len(np.unique(got)) > 50  # the test image spans the range
