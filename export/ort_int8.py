"""ONNX Runtime INT8: static QDQ quantization of an fp32 ONNX file, gated by PSNR against fp32.

Split from exporter.py (which calls `quantize`) so each module stays readable on its own.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx

from dancenow.errors import DanceNowError
from dancenow.export.messages import say
from dancenow.export.parity import parity, run_onnx
from dancenow.files import write_atomic


def cpu_session(path: Path):
    import onnxruntime as ort

    from dancenow.engines.onnxruntime_engine import session_options

    return ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])


def conv_nodes(model: onnx.ModelProto) -> list[tuple[str, list[int]]]:
    """Conv node names in graph order with their output shapes (from shape inference)."""
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.value_info, *model.graph.output]}
    return [(n.name, shapes.get(n.output[0], [])) for n in model.graph.node if n.op_type == "Conv"]


def output_convs(model: onnx.ModelProto) -> list[str]:
    """The convolutions that write the outputs: those with no other convolution between them and a
    graph output (v1's last 7x7; v2's head and the two that recompute its ring, export/phase_head.py)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in model.graph.output}

    def reaches_output(tensors: list[str], seen: set[str]) -> bool:
        for t in tensors:
            if t in outputs:
                return True
            for n in consumers.get(t, []):
                if n.op_type != "Conv" and n.name not in seen:
                    seen.add(n.name)
                    if reaches_output(list(n.output), seen):
                        return True
        return False

    return [n.name for n in model.graph.node if n.op_type == "Conv" and reaches_output(list(n.output), set())]


def int8_strategies(model: onnx.ModelProto) -> list[tuple[str, list[str]]]:
    """Which convolutions stay fp32, tried in order until INT8 parity holds.

    The first convolution and those that write the output see 3-6 channels (or write them): they are
    the most sensitive to quantization and, with so few channels, not faster in INT8 either.
    """
    convs = conv_nodes(model)
    names = [n for n, _ in convs]
    if not names:
        return [("all", [])]
    full = max((s[2] * s[3] for _, s in convs if len(s) == 4), default=0)
    edges = sorted({names[0], *output_convs(model)})
    full_res = sorted({n for n, s in convs if len(s) == 4 and s[2] * s[3] == full} | set(edges))
    half = sorted(set(full_res) | {n for n, s in convs if len(s) == 4 and s[2] * s[3] * 4 >= full})
    out = [("first/last conv fp32", edges), ("full-resolution convs fp32", full_res), ("full and half resolution convs fp32", half)]
    return [s for i, s in enumerate(out) if i == 0 or s[1] != out[i - 1][1]]


def equalize_before_instance_norm(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> tuple[onnx.ModelProto, int]:
    """Rescale each convolution that feeds an InstanceNormalization so its output channels have equal spread.

    Instance norm (without affine) cancels a per-channel scale and bias of its input, so the fp32
    function is unchanged (up to the norm's epsilon). But INT8 quantizes a conv's output with ONE
    scale for all channels: a channel with a small spread gets a few levels, and instance norm then
    blows that quantization noise up to unit variance. Equal spreads give every channel the same
    resolution. Returns the new model and how many convolutions were rescaled.
    """
    import onnxruntime as ort
    from onnx import numpy_helper

    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    init = {t.name: t for t in model.graph.initializer}
    targets = [n for n in model.graph.node if n.op_type == "Conv" and len(n.input) >= 2 and n.input[1] in init
               and (c := consumers.get(n.output[0], [])) and all(x.op_type == "InstanceNormalization" for x in c)]
    if not targets or not feeds:
        return model, 0
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    outs = [n.output[0] for n in targets]
    probe.graph.output.extend([onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in outs])
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    sums = None
    for f in feeds:
        vals = sess.run(outs, f)
        std = [v.std(axis=(0, 2, 3)) for v in vals]
        sums = std if sums is None else [a + b for a, b in zip(sums, std, strict=True)]
    model = onnx.ModelProto()
    model.CopyFrom(probe)
    del model.graph.output[len(model.graph.output) - len(outs):]
    init = {t.name: t for t in model.graph.initializer}
    for n, total in zip(targets, sums, strict=True):
        std = total / len(feeds)
        scale = (1.0 / np.maximum(std, 1e-6 * max(float(std.max()), 1e-12))).astype(np.float32)
        w = numpy_helper.to_array(init[n.input[1]]).astype(np.float32)
        init[n.input[1]].CopyFrom(numpy_helper.from_array(w * scale.reshape(-1, *[1] * (w.ndim - 1)), n.input[1]))
        if len(n.input) >= 3 and n.input[2] in init:  # the mean is removed by the norm: drop the bias
            b = numpy_helper.to_array(init[n.input[2]])
            init[n.input[2]].CopyFrom(numpy_helper.from_array(np.zeros_like(b), n.input[2]))
    return model, len(targets)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def quantize(fp32_path: Path, out_path: Path, calib_feeds, parity_feeds, min_psnr: float, force: bool,
             what: str) -> dict:
    """Static QDQ INT8 (uint8 activations, per-channel int8 weights) with fp32 fall-back layers.

    Returns the report for the manifest; raises with the figures when no strategy reaches `min_psnr`.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(fp32_path))
    reference = run_onnx(cpu_session(fp32_path), parity_feeds)
    attempts, best = [], None
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    equalized, n_eq = equalize_before_instance_norm(model, calib_feeds)
    src = out_path.with_name(f".{out_path.name}.equalized.onnx")
    write_atomic(src, equalized.SerializeToString())
    for label, exclude in int8_strategies(model):
        logging.getLogger().disabled = True  # the quantizer logs through the root logger, noisily
        try:
            quantize_static(str(src), str(tmp), _Reader(calib_feeds), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=["Conv"], per_channel=True, reduce_range=False,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=exclude, calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
        finally:
            logging.getLogger().disabled = False
        fig = parity(reference, run_onnx(cpu_session(tmp), parity_feeds))
        attempt = {"strategy": label, "fp32_nodes": exclude, **fig}
        attempts.append(attempt)
        say(f"{what} INT8 ({label}): {fig['psnr_db']:.2f} dB PSNR vs fp32, max abs {fig['max_abs']:.4f}")
        if best is None or fig["psnr_db"] > best[0]["psnr_db"]:
            best = (attempt, tmp.read_bytes())
        if fig["psnr_db"] >= min_psnr:
            break
    tmp.unlink(missing_ok=True)
    src.unlink(missing_ok=True)
    chosen, data = best
    if chosen["psnr_db"] < min_psnr and not force:
        figures = "; ".join(f"{a['strategy']}: {a['psnr_db']:.2f} dB" for a in attempts)
        raise DanceNowError(f"{what} INT8 parity is below {min_psnr} dB against fp32 ({figures}): keep the fp32 "
                            "model (--format onnx) or write it anyway with --force")
    write_atomic(out_path, data)
    return {"parity_vs_fp32": {k: chosen[k] for k in ("max_abs", "psnr_db", "samples")},
            "strategy": chosen["strategy"], "fp32_nodes": chosen["fp32_nodes"], "attempts": attempts,
            "forced": chosen["psnr_db"] < min_psnr, "min_psnr_db": min_psnr, "equalized_convs": n_eq,
            "scheme": "QDQ, uint8 activations (MinMax), per-channel symmetric int8 weights, Conv only; "
                      "convs before instance norm equalized per channel"}
