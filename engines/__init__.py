"""dancenow.engines: load a target bundle and run its generator on TensorRT, OpenVINO, ONNX Runtime or PyTorch."""

from dancenow.engines.base import Engine
from dancenow.engines.loader import load_engine

__all__ = ["Engine", "load_engine"]
