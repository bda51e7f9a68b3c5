"""`load_engine`: a verified bundle to the best backend this machine can run.

"auto" walks TensorRT -> ONNX Runtime -> PyTorch and logs why each skipped backend was skipped. The
bundle is checked first (schema version, every artifact's sha256); a bundle whose artifacts do not
fit its manifest (another resolution, an engine for another GPU or TensorRT version) is refused
with what to rebuild.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from dancenow.engines.base import Engine
from dancenow.engines.bundle import Manifest, read_manifest
from dancenow.errors import DanceNowError

log = logging.getLogger(__name__)

BACKENDS = ("tensorrt", "onnxruntime", "torch")
PRECISIONS = ("fp32", "fp16", "int8")


class BackendUnavailable(DanceNowError):
    """This backend cannot run here (not installed, no GPU, no artifact for it): try the next one."""


def find_artifact(manifest: Manifest, kind: str, role: str, precision: str | None = None) -> str | None:
    for rel, entry in manifest.artifacts.items():
        if entry.get("kind") == kind and entry.get("role") == role and (precision is None or entry.get("precision") == precision):
            return rel
    return None


def _face_crop(manifest: Manifest) -> int | None:
    return int(manifest.face["crop"]) if manifest.face and manifest.face.get("crop") else None


def _tensorrt(bundle: Path, manifest: Manifest, threads: int | None, precision: str | None) -> Engine:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise BackendUnavailable("the tensorrt package is not installed") from None
    from dancenow.engines.tensorrt_target import current_target, pick_engine

    try:
        target = current_target()
    except DanceNowError as e:
        raise BackendUnavailable(str(e).split(":")[0]) from None
    rel = pick_engine(manifest.artifacts, target, "generator", precision)  # raises with what to rebuild
    entry = manifest.artifacts[rel]
    face = None
    if _face_crop(manifest):
        try:
            face = bundle / pick_engine(manifest.artifacts, target, "face", entry["precision"])
        except DanceNowError:
            face = None
    from dancenow.engines.tensorrt_engine import TensorRTEngine

    return TensorRTEngine(bundle / rel, manifest.resolution, entry["precision"], face, _face_crop(manifest))


def _onnxruntime(bundle: Path, manifest: Manifest, threads: int | None, precision: str | None) -> Engine:
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable("the onnxruntime package is not installed") from None
    from dancenow.engines.onnxruntime_engine import GPU_PROVIDERS, OnnxRuntimeEngine

    on_gpu = any(p in ort.get_available_providers() for p in GPU_PROVIDERS)
    # INT8 QDQ pays off on the CPU; on a GPU provider the fp32 graph is the one to run (TensorRT EP: fp16).
    order = [precision] if precision else (["fp32", "int8"] if on_gpu else ["int8", "fp32"])
    for prec in order:
        rel = find_artifact(manifest, "onnx", "generator", prec)
        if rel is None:
            log.info("onnxruntime: the bundle has no %s ONNX generator", prec)
            continue
        face_rel = find_artifact(manifest, "onnx", "face", prec) or find_artifact(manifest, "onnx", "face", "fp32")
        return OnnxRuntimeEngine(bundle / rel, manifest.resolution, prec,
                                 bundle / face_rel if face_rel else None, _face_crop(manifest), threads=threads)
    raise BackendUnavailable(f"the bundle has no {'/'.join(order)} ONNX generator")


def _torch(bundle: Path, manifest: Manifest, threads: int | None, precision: str | None) -> Engine:
    if precision not in (None, "fp32"):
        raise BackendUnavailable(f"the PyTorch backend runs fp32 only, not {precision}")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise BackendUnavailable("the torch package is not installed") from None
    rel = find_artifact(manifest, "torchscript", "generator")
    if rel is None:
        raise BackendUnavailable("the bundle has no TorchScript generator")
    face_rel = find_artifact(manifest, "torchscript", "face")
    from dancenow.engines.torch_engine import TorchEngine

    return TorchEngine(bundle / rel, manifest.resolution, bundle / face_rel if face_rel else None,
                       _face_crop(manifest), threads=threads)


_LOADERS = {"tensorrt": _tensorrt, "onnxruntime": _onnxruntime, "torch": _torch}


def check_manifest(bundle: Path, manifest: Manifest) -> None:
    """What every backend relies on: a resolution, and generator I/O at that resolution."""
    h, w = manifest.resolution
    if h <= 0 or w <= 0:
        raise DanceNowError(f"{bundle}/manifest.json has resolution {h}x{w}: re-export the bundle")
    want = [1, 3, h, w]
    for name, shape in {**manifest.generator.get("inputs", {}), **manifest.generator.get("outputs", {})}.items():
        if list(shape) != want:
            raise DanceNowError(f"{bundle}/manifest.json gives generator tensor {name} shape {shape} at "
                                f"resolution {h}x{w}: the bundle is inconsistent; re-export it")


def load_engine(bundle: str | os.PathLike, backend: str = "auto", threads: int | None = None,
                precision: str | None = None) -> Engine:
    """The bundle's generator on `backend` ("auto": the best available), verified against its manifest."""
    if backend not in ("auto", *BACKENDS):
        raise DanceNowError(f"unknown backend {backend!r}: use auto, {', '.join(BACKENDS)}")
    if precision not in (None, *PRECISIONS):
        raise DanceNowError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    bundle = Path(bundle)
    manifest = read_manifest(bundle, verify=True)
    check_manifest(bundle, manifest)
    skipped = []
    for name in BACKENDS if backend == "auto" else (backend,):
        try:
            engine = _LOADERS[name](bundle, manifest, threads, precision)
        except BackendUnavailable as e:
            if backend != "auto":
                raise DanceNowError(f"backend {name} cannot run {bundle}: {e}") from None
            log.info("backend %s skipped: %s", name, e)
            skipped.append(f"{name} ({e})")
            continue
        except DanceNowError as e:
            # A mismatched TensorRT engine is a reason to fall back under "auto", never silently.
            if backend == "auto" and name == "tensorrt":
                log.warning("backend tensorrt skipped: %s", e)
                skipped.append(f"tensorrt ({e})")
                continue
            raise
        engine.manifest, engine.bundle = manifest, bundle
        log.info("target %s: %s", manifest.name, engine.describe())
        return engine
    raise DanceNowError(f"no backend can run {bundle}: " + "; ".join(skipped))
