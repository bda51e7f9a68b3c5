"""TensorRT backend (TensorRT 10 Python API): a deserialized engine run with `execute_async_v3`.

Device buffers are CUDA tensors allocated once per I/O tensor and bound with `set_tensor_address`.
The output alternates between two device buffers, and when `previous_frame` is the frame this
engine just returned, the `previous` input is pointed at that output on the device: the previous
frame never goes back up the bus. Imported only when `tensorrt` is importable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorrt as trt
import torch

from dancenow.engines.base import Engine
from dancenow.errors import DanceNowError

_TORCH_DTYPE = {trt.float32: torch.float32, trt.float16: torch.float16}


class _TrtRunner:
    def __init__(self, path: Path, inputs: tuple[str, str], output: str, size: tuple[int, int], logger):
        self.runtime = trt.Runtime(logger)
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise DanceNowError(f"TensorRT could not deserialize {path.name} (built by another TensorRT version "
                                "or damaged): rebuild it with `export-engine CHECKPOINT --format tensorrt` here")
        self.context = self.engine.create_execution_context()
        self.inputs, self.output = inputs, output
        want = (1, 3, int(size[0]), int(size[1]))
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if sorted(names) != sorted([*inputs, output]):
            raise DanceNowError(f"{path.name} has tensors {names}, expected {[*inputs, output]}: rebuild the engine")
        self.buffers: dict[str, torch.Tensor] = {}
        for name in names:
            shape = tuple(self.engine.get_tensor_shape(name))
            if shape != want:
                raise DanceNowError(f"{path.name} has {name} of shape {shape}, the manifest says {want}: "
                                    "the bundle is mismatched; rebuild the engine with `export-engine`")
            dtype = _TORCH_DTYPE[self.engine.get_tensor_dtype(name)]
            self.buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())
        self.spare = torch.empty_like(self.buffers[output])  # the second output buffer
        self.stream = torch.cuda.Stream()
        self._last: np.ndarray | None = None

    def _upload(self, name: str, image: np.ndarray) -> None:
        t = torch.from_numpy(np.ascontiguousarray(image)).to("cuda", non_blocking=True)
        t = t.permute(2, 0, 1)[None].float().div_(127.5).sub_(1.0)
        self.buffers[name].copy_(t)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with torch.cuda.stream(self.stream):
            self._upload(self.inputs[0], a)
            if b is self._last:
                # The previous output is still on the device: read it there, write into the other buffer.
                prev, out = self.buffers[self.output], self.spare
            else:
                self._upload(self.inputs[1], b)
                prev, out = self.buffers[self.inputs[1]], self.buffers[self.output]
            self.context.set_tensor_address(self.inputs[1], prev.data_ptr())
            self.context.set_tensor_address(self.output, out.data_ptr())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise DanceNowError("TensorRT execution failed: run with -v for TensorRT's log")
            image = ((out[0].float() + 1.0) * 127.5 + 0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu()
        self.stream.synchronize()
        if out is self.spare:  # keep `buffers[output]` the one that holds the latest frame
            self.spare, self.buffers[self.output] = self.buffers[self.output], out
        self._last = image.numpy()
        return self._last


class TensorRTEngine(Engine):
    name = "tensorrt"

    def __init__(self, generator: Path, resolution: tuple[int, int], precision: str, face: Path | None = None,
                 face_crop: int | None = None, device: int = 0):
        torch.cuda.set_device(device)
        self.device = f"cuda:{device}"
        self.precision = precision
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._gen = _TrtRunner(generator, ("pose", "previous"), "frame", self.resolution, self._logger)
        self._face = None
        if face is not None and face_crop:
            self.face_crop = int(face_crop)
            self._face = _TrtRunner(face, ("label_crop", "frame_crop"), "refined",
                                    (self.face_crop, self.face_crop), self._logger)
