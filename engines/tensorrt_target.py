"""What a TensorRT engine was built for, and the file names that say so.

A serialized TensorRT engine only runs on the GPU model (compute capability) and the TensorRT
version that built it, and a timing cache is only valid there too. So both are named for their
device and version, one bundle can hold engines for several machines, and the loader picks the one
that fits or says what to rebuild. Everything here except `current_target` is pure (tested without
a GPU).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from dancenow.errors import DanceNowError

ENGINE_KIND = "tensorrt"
TIMING_CACHE_KIND = "tensorrt-timing-cache"
CPU_FORMATS_HINT = "--format onnx,ort-int8,openvino,openvino-int8"


@dataclass(frozen=True)
class DeviceTarget:
    """A GPU model and the TensorRT version an engine is built with."""

    gpu: str  # e.g. "NVIDIA GeForce RTX 3090"
    compute_capability: str  # e.g. "8.6"
    tensorrt: str  # e.g. "10.3.0"

    def to_dict(self) -> dict:
        return asdict(self)


def slug(text: str) -> str:
    """Lower-case file-name-safe form of a GPU name: "NVIDIA GeForce RTX 3090" -> "nvidia-geforce-rtx-3090"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "gpu"


def device_tag(target: DeviceTarget) -> str:
    """The part of a file name that says which machine it is for: gpu-sm86-trt10.3.0."""
    sm = target.compute_capability.replace(".", "")
    return f"{slug(target.gpu)}-sm{sm}-trt{target.tensorrt}"


def engine_filename(role: str, target: DeviceTarget, precision: str) -> str:
    """generator.nvidia-geforce-rtx-3090-sm86-trt10.3.0.fp16.engine"""
    return f"{role}.{device_tag(target)}.{precision}.engine"


def timing_cache_filename(target: DeviceTarget) -> str:
    """The timing cache is per device and TensorRT version (its header is checked on load)."""
    return f"timing.{device_tag(target)}.cache"


def cache_key(onnx_sha256: str, target: DeviceTarget, precision: str, workspace_bytes: int) -> str:
    """What an engine depends on: reuse a built engine only when all of these are unchanged."""
    return f"{onnx_sha256[:16]}:{device_tag(target)}:{precision}:{workspace_bytes}"


def engine_entry(role: str, target: DeviceTarget, precision: str, key: str) -> dict:
    """The manifest entry for an engine (sha256 and size are added by write_manifest)."""
    return {"kind": ENGINE_KIND, "role": role, "precision": precision, "cache_key": key, **target.to_dict()}


def matches(entry: dict, target: DeviceTarget) -> bool:
    """An engine runs only on the same GPU model (compute capability) and TensorRT version."""
    return (entry.get("kind") == ENGINE_KIND and entry.get("compute_capability") == target.compute_capability
            and entry.get("tensorrt") == target.tensorrt and slug(entry.get("gpu", "")) == slug(target.gpu))


def pick_engine(artifacts: dict, target: DeviceTarget, role: str = "generator",
                precision: str | None = None) -> str:
    """The bundle's engine file for this machine, or a DanceNowError saying what to rebuild."""
    engines = {rel: e for rel, e in artifacts.items() if e.get("kind") == ENGINE_KIND and e.get("role") == role}
    if not engines:
        raise DanceNowError(
            f"the bundle has no TensorRT engine: build one with `export-engine CHECKPOINT --format tensorrt` "
            f"on this machine, or use the CPU formats ({CPU_FORMATS_HINT})")
    fit = {rel: e for rel, e in engines.items() if matches(e, target)}
    if precision:
        fit = {rel: e for rel, e in fit.items() if e.get("precision") == precision}
    if not fit:
        built = ", ".join(f"{e.get('gpu')} sm{e.get('compute_capability')} TensorRT {e.get('tensorrt')} "
                          f"{e.get('precision')}" for e in engines.values())
        want = f"{target.gpu} sm{target.compute_capability} TensorRT {target.tensorrt}"
        raise DanceNowError(
            f"the bundle's TensorRT engines were built for {built}, this machine is {want}"
            f"{' ' + precision if precision else ''}: rebuild with `export-engine CHECKPOINT --out BUNDLE "
            f"--format tensorrt` here")
    order = {"int8": 0, "fp16": 1, "fp32": 2}
    return min(fit, key=lambda rel: order.get(fit[rel].get("precision"), 3))


def current_target(device: int = 0) -> DeviceTarget:
    """This machine's GPU and TensorRT version; DanceNowError naming what is missing."""
    try:
        import tensorrt as trt
    except ImportError:
        raise DanceNowError(
            f"TensorRT is not installed (pip install 'dancenow[tensorrt]' on a machine with an NVIDIA GPU): "
            f"use the CPU formats instead ({CPU_FORMATS_HINT})") from None
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        raise DanceNowError(
            f"no CUDA GPU is visible (TensorRT {trt.__version__} is installed but needs an NVIDIA GPU and "
            f"a CUDA build of torch): use the CPU formats instead ({CPU_FORMATS_HINT})")
    major, minor = torch.cuda.get_device_capability(device)
    return DeviceTarget(gpu=torch.cuda.get_device_name(device), compute_capability=f"{major}.{minor}",
                        tensorrt=trt.__version__)
