"""ONNX Runtime backend: the bundle's ONNX generator (fp32 or INT8 QDQ) on the best provider here.

Providers are tried TensorRT -> CUDA -> CPU as the installed onnxruntime offers them. On a GPU the
inputs and outputs go through I/O binding, and a `previous_frame` that is the frame this engine
just returned is fed from the output already on the device (no upload).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dancenow.engines.base import Engine, to_alpha, to_image, to_tensor
from dancenow.errors import DanceNowError

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def providers(device: str = "auto") -> list[str]:
    """The execution providers to ask for, best first; always ends with the CPU."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    return [p for p in GPU_PROVIDERS if p in available] + ["CPUExecutionProvider"]


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """All graph optimizations; `threads` intra-op threads (None: one per core, ORT's default)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3  # warnings from the optimizer are not the user's business
    return so


def _provider_options(name: str) -> dict:
    if name == "TensorrtExecutionProvider":
        cache = Path(os.environ.get("DANCENOW_CACHE", Path.home() / ".cache" / "dancenow")) / "ort-tensorrt"
        cache.mkdir(parents=True, exist_ok=True)
        return {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache)}
    return {}


def open_session(path: Path, provider_names: list[str], threads: int | None = None) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=provider_names,
                                    provider_options=[_provider_options(p) for p in provider_names])
    except Exception as e:  # onnxruntime raises its own exception types for bad models
        raise DanceNowError(f"ONNX Runtime cannot load {path} ({type(e).__name__}: {e}): re-export the bundle") from None


def check_io(session: ort.InferenceSession, path: Path, inputs: tuple[str, str], output: str,
             size: tuple[int, int]) -> None:
    """The model must take and give 1x3xHxW at the manifest's resolution: else the bundle is mismatched."""
    want = [1, 3, int(size[0]), int(size[1])]
    got = {i.name: list(i.shape) for i in session.get_inputs()}
    got_out = {o.name: list(o.shape) for o in session.get_outputs()}
    if set(got) != set(inputs) or output not in got_out:
        raise DanceNowError(f"{path.name} has inputs {sorted(got)} and outputs {sorted(got_out)}, expected "
                            f"{list(inputs)} -> {output}: re-export the bundle with `export-engine`")
    for name, shape in [*got.items(), (output, got_out[output])]:
        if shape != want:
            raise DanceNowError(f"{path.name} takes {name} of shape {shape} but the manifest says {want}: "
                                "the bundle is mismatched; re-export it with `export-engine`")


class _Runner:
    """One ONNX session with two image inputs and one image output."""

    def __init__(self, path: Path, provider_names: list[str], threads: int | None, inputs: tuple[str, str],
                 output: str, size: tuple[int, int]):
        self.session = open_session(path, provider_names, threads)
        check_io(self.session, path, inputs, output, size)
        self.inputs, self.output, self.size = inputs, output, size
        self.alpha: np.ndarray | None = None  # the last call's alpha, when the model has that output
        self._fetch = [output] + [o.name for o in self.session.get_outputs() if o.name == "alpha"]
        self.on_gpu = self.session.get_providers()[0] in GPU_PROVIDERS
        self._last: np.ndarray | None = None  # the image last returned ...
        self._last_device: ort.OrtValue | None = None  # ... and the same output on the device
        self._flip = 0

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if not self.on_gpu:
            outs = self.session.run(self._fetch, {self.inputs[0]: to_tensor(a), self.inputs[1]: to_tensor(b)})
            if len(outs) > 1:
                self.alpha = to_alpha(outs[1])
            return to_image(outs[0])
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.inputs[0], to_tensor(a))
        if b is self._last and self._last_device is not None:
            binding.bind_ortvalue_input(self.inputs[1], self._last_device)
        else:
            binding.bind_cpu_input(self.inputs[1], to_tensor(b))
        # Two output buffers used in turn, so the previous output is never overwritten while read.
        if not hasattr(self, "_outs"):
            shape = [1, 3, int(self.size[0]), int(self.size[1])]
            self._outs = [ort.OrtValue.ortvalue_from_shape_and_type(shape, np.float32, "cuda", 0) for _ in range(2)]
        out = self._outs[self._flip]
        self._flip ^= 1
        binding.bind_ortvalue_output(self.output, out)
        self.session.run_with_iobinding(binding)
        image = to_image(out.numpy())
        self._last, self._last_device = image, out
        return image


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, generator: Path, resolution: tuple[int, int], precision: str, face: Path | None = None,
                 face_crop: int | None = None, device: str = "auto", threads: int | None = None):
        names = providers(device)
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.precision = precision
        self.threads = threads
        self._gen = _Runner(generator, names, threads, ("pose", "previous"), "frame", self.resolution)
        self.device = "cuda:0" if self._gen.on_gpu else "cpu"
        self.provider = self._gen.session.get_providers()[0]
        self._face = None
        if face is not None and face_crop:
            self.face_crop = int(face_crop)
            self._face = _Runner(face, names, threads, ("label_crop", "frame_crop"), "refined",
                                 (self.face_crop, self.face_crop))

    def describe(self) -> str:
        return f"{super().describe()} via {self.provider}"
