"""OpenVINO backend: the bundle's generator (OpenVINO IR, else its ONNX file) on the CPU.

Why OpenVINO: on a CPU with AVX512_BF16 or AMX it runs the generator in bf16 several times faster
than ONNX Runtime runs it in INT8, and its NNCF INT8 model is fast on AVX2/VNNI hosts too.

Precisions: "bf16" (INFERENCE_PRECISION_HINT bf16, only where the CPU has AVX512_BF16/AMX and
ONEDNN_MAX_CPU_ISA does not cap oneDNN below AVX-512: under such a cap compiling bf16 fails),
"fp32" (hint f32) and "int8" (the NNCF INT8 IR or the QDQ ONNX file, hint f32). The hint is always
set explicitly, so a capped host never hits OpenVINO's bf16 default.

Threads: INFERENCE_NUM_THREADS is set explicitly (default 1: the live loop gives MediaPipe the other
core), one stream, the LATENCY hint. CPU pinning is off by default: on Linux OpenVINO pins its
threads to cores, which makes two workloads (MediaPipe, a second engine or process) fight for the
same core (OpenVINO's docs advise disabling it when several workloads run in parallel). The
scheduling core type only matters on hybrid P/E-core CPUs, so it keeps its default (ANY_CORE).

Images in and out as uint8 H x W x 3: the conversions to and from float 1 x 3 x H x W in [-1, 1]
(`to_tensor`, `to_image`) are compiled into the graph with OpenVINO's pre/post-processing, where
they run fused and jitted: the same arithmetic (on the demo generator identical frames in INT8 and
bf16; in fp32 about 1 value in 100,000 one level apart, float rounding), and measured there (AMD
EPYC, 1 thread, interleaved) about 0.8 ms a frame faster than doing them in NumPy.

An engine owns ONE InferRequest per network: use an engine from one thread at a time (the live loop
has one generator worker). `infer()` releases the GIL, so other Python threads run meanwhile.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
from openvino.preprocess import PrePostProcessor

from dancenow.engines.base import Engine, to_alpha
from dancenow.errors import DanceNowError
from dancenow.host import bf16_cap, cpu_info

log = logging.getLogger(__name__)

HINTS = {"bf16": "bf16", "fp32": "f32", "int8": "f32"}
_core: ov.Core | None = None


class CompileError(DanceNowError):
    """OpenVINO could not compile a model at a precision on this CPU (not a fault of the bundle)."""


def core() -> ov.Core:
    """One OpenVINO Core per process (compiling models is thread-safe on it)."""
    global _core
    if _core is None:
        _core = ov.Core()
    return _core


def bf16_unavailable() -> str | None:
    """Why bf16 cannot run here, or None when it can."""
    info = cpu_info()
    if not info.get("bf16"):
        return f"this CPU ({info.get('model')}) has neither AVX512_BF16 nor AMX"
    cap = bf16_cap()
    if cap:
        return f"ONEDNN_MAX_CPU_ISA={cap} caps oneDNN below AVX-512, where OpenVINO cannot compile bf16"
    return None


def compile_config(precision: str, threads: int | None, pin: bool = False) -> dict:
    """The compile properties, all explicit (OpenVINO's defaults assume it owns the machine)."""
    if precision not in HINTS:
        raise DanceNowError(f"unknown OpenVINO precision {precision!r}: use {', '.join(HINTS)}")
    return {"INFERENCE_PRECISION_HINT": HINTS[precision], "INFERENCE_NUM_THREADS": int(threads or 1),
            "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": bool(pin)}


def read(path: Path, weights: Path | None = None) -> ov.Model:
    """An IR (.xml + .bin) or an ONNX file; nothing in either runs code (no extensions are loaded)."""
    try:
        return core().read_model(str(path), str(weights)) if weights else core().read_model(str(path))
    except Exception as e:  # OpenVINO raises RuntimeError subclasses for damaged files
        raise DanceNowError(f"OpenVINO cannot read {path.name} ({type(e).__name__}: {str(e).strip()[:300]}): "
                            "re-export the bundle with `export-engine`") from None


def check_io(model: ov.Model, path: Path, inputs: tuple[str, str], output: str, size: tuple[int, int]) -> None:
    """The model must take and give static 1x3xHxW at the manifest's resolution."""
    want = [1, 3, int(size[0]), int(size[1])]
    got = {i.get_any_name(): i.get_partial_shape() for i in model.inputs}
    got_out = {o.get_any_name(): o.get_partial_shape() for o in model.outputs}
    if set(got) != set(inputs) or output not in got_out:
        raise DanceNowError(f"{path.name} has inputs {sorted(got)} and outputs {sorted(got_out)}, expected "
                            f"{list(inputs)} -> {output}: re-export the bundle with `export-engine`")
    for name, shape in [*got.items(), (output, got_out[output])]:
        dims = [d.get_length() if d.is_static else "?" for d in shape]
        if dims != want:
            raise DanceNowError(f"{path.name} takes {name} of shape {dims} but the manifest says {want}: "
                                "the bundle is mismatched; re-export it with `export-engine`")


def _to_u8(y: ov.Output) -> ov.Node:
    """`to_image`'s arithmetic: floor(clip((y + 1) * 127.5 + 0.5, 0, 255)) as uint8."""
    y = ops.add(ops.multiply(ops.add(y, np.float32(1.0)), np.float32(127.5)), np.float32(0.5))
    return ops.convert(ops.floor(ops.clamp(y, 0.0, 255.0)), ov.Type.u8)


def _image_out(y: ov.Output) -> ov.Output:
    """1 x 3 x H x W float -> 1 x H x W x 3 uint8. When y is a pixel shuffle (v2's head, export/
    phase_head.py), the conversion runs before it and the shuffle and the move to H x W x 3 become one
    transpose (measured: about 0.3 ms a frame less than converting after a separate shuffle)."""
    node = y.get_node()
    if node.get_type_name() == "DepthToSpace" and node.get_attributes() == {"mode": "depth_first", "block_size": 2}:
        z = node.input_value(0)
        c, h, w = (int(d) for d in z.get_shape()[1:])
        u = ops.reshape(_to_u8(z), np.array([1, c // 4, 2, 2, h, w], np.int64), False)
        u = ops.transpose(u, np.array([0, 4, 2, 5, 3, 1], np.int64))
        return ops.reshape(u, np.array([1, 2 * h, 2 * w, c // 4], np.int64), False).output(0)
    return ops.transpose(_to_u8(y), np.array([0, 2, 3, 1], np.int64)).output(0)


_UNSHUFFLE = [0, 1, 3, 5, 2, 4]  # F.pixel_unshuffle(x, 2) as ONNX writes it: a reshape, this transpose, a reshape


def _unshuffled(param: ov.Node) -> ov.Node | None:
    """The last node of `pixel_unshuffle(param, 2)` when that is all the model does with `param`
    (an HD generator's inputs, export/phase_head.py: DeployHD), else None."""
    nodes, out = [], param.output(0)
    for kind in ("Reshape", "Transpose", "Reshape"):
        users = list(out.get_target_inputs())
        if len(users) != 1 or users[0].get_node().get_type_name() != kind:
            return None
        nodes.append(users[0].get_node())
        out = nodes[-1].output(0)
    perm = nodes[1].input_value(1).get_node()
    _, c, h, w = param.get_output_shape(0)
    if (perm.get_type_name() != "Constant" or list(perm.get_vector()) != _UNSHUFFLE
            or list(nodes[0].get_output_shape(0)) != [1, c, h // 2, 2, w // 2, 2]):
        return None
    return nodes[2]


def _fold_input(param: ov.Node, name: str) -> tuple[ov.Node, ov.Node]:
    """A uint8 1 x H x W x C parameter folded 2x2 into float channels as `pixel_unshuffle` orders
    them: one transpose of bytes does both the fold and the move to channels first (PPP's transpose
    of floats, then the model's own fold: two passes over four times the bytes)."""
    _, c, h, w = (int(d) for d in param.get_output_shape(0))
    new = ops.parameter([1, h, w, c], ov.Type.u8, name=name)
    new.output(0).set_names({name})
    y = ops.reshape(new, np.array([1, h // 2, 2, w // 2, 2, c], np.int64), False)
    y = ops.transpose(y, np.array([0, 5, 2, 4, 1, 3], np.int64))
    y = ops.reshape(y, np.array([1, 4 * c, h // 2, w // 2], np.int64), False)
    return new, ops.subtract(ops.divide(ops.convert(y, ov.Type.f32), np.float32(127.5)), np.float32(1.0))


def image_io(model: ov.Model, inputs: tuple[str, str], output: str) -> ov.Model:
    """`model` taking and giving uint8 1 x H x W x 3 images: the same arithmetic as `to_tensor`
    (x / 127.5 - 1) and `to_image`, inside the graph."""
    folded = {}
    for name in inputs:
        param = model.input(name).get_node()
        if (end := _unshuffled(param)) is not None:
            folded[name], y = _fold_input(param, name)
            end.output(0).replace(y.output(0))
    if folded:
        params = [folded.get(p.output(0).get_any_name(), p) for p in model.get_parameters()]
        model = ov.Model(model.get_results(), params, model.get_friendly_name())
    ppp = PrePostProcessor(model)
    for name in inputs:
        if name in folded:
            continue
        i = ppp.input(name)
        i.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
        i.model().set_layout(ov.Layout("NCHW"))
        i.preprocess().convert_element_type(ov.Type.f32).scale(127.5).mean(1.0)
    ppp.output(output).postprocess().custom(_image_out)
    return ppp.build()


class _Runner:
    """One compiled network with two image inputs, one image output and its own InferRequest."""

    def __init__(self, path: Path, weights: Path | None, inputs: tuple[str, str], output: str,
                 size: tuple[int, int], config: dict):
        model = read(path, weights)
        check_io(model, path, inputs, output, size)
        try:
            self.compiled = core().compile_model(image_io(model, inputs, output), "CPU", config)
        except Exception as e:
            raise CompileError(f"OpenVINO cannot compile {path.name} with {config} ({type(e).__name__}: "
                                f"{str(e).strip()[:300]}): try another precision (--precision fp32)") from None
        self.request = self.compiled.create_infer_request()
        self.inputs = inputs
        self._frame = self.compiled.output(output)
        self._alpha = next((o for o in self.compiled.outputs if "alpha" in o.get_names()), None)
        self.alpha: np.ndarray | None = None  # the last call's alpha, when the model has that output

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = self.request.infer({self.inputs[0]: np.ascontiguousarray(a, dtype=np.uint8)[None],
                                  self.inputs[1]: np.ascontiguousarray(b, dtype=np.uint8)[None]},
                                 share_inputs=True, share_outputs=True)
        if self._alpha is not None:
            self.alpha = to_alpha(out[self._alpha])  # copies: the output buffers are reused
        return out[self._frame][0].copy()


class OpenVinoEngine(Engine):
    """The generator (and face net) compiled by OpenVINO for this CPU. One thread at a time."""

    name = "openvino"
    device = "cpu"

    def __init__(self, generator: Path, resolution: tuple[int, int], precision: str,
                 face: Path | None = None, face_crop: int | None = None, threads: int | None = 1,
                 weights: Path | None = None, face_weights: Path | None = None, pin: bool = False):
        if precision == "bf16" and (why := bf16_unavailable()):
            raise DanceNowError(f"OpenVINO bf16 cannot run here: {why}; use --precision fp32 or int8"
                                + (" (or unset ONEDNN_MAX_CPU_ISA)" if "ONEDNN" in why else ""))
        config = compile_config(precision, threads, pin)
        self.precision = precision
        self.threads = int(threads or 1)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.source = generator.name
        self._gen = _Runner(generator, weights, ("pose", "previous"), "frame", self.resolution, config)
        self._face = None
        if face is not None and face_crop:
            self.face_crop = int(face_crop)
            # The face net is tiny (a 32-px crop): INT8 gains nothing there, so it runs fp32 then.
            fconfig = compile_config("fp32" if precision == "int8" else precision, threads, pin)
            self._face = _Runner(face, face_weights, ("label_crop", "frame_crop"), "refined",
                                 (self.face_crop, self.face_crop), fconfig)

    def describe(self) -> str:
        return f"{super().describe()} from {self.source}, {self.threads} thread{'s' * (self.threads > 1)}"
