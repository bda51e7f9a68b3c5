"""`load_engine`: a verified bundle to the best backend this machine can run.

"auto" tries TensorRT first and logs why it was skipped. With a GPU provider it then walks ONNX
Runtime -> PyTorch as before; on a CPU it measures every backend and precision on the target's own
inputs and keeps the fastest that keeps parity (engines/choice.py, remembered per CPU and library
versions). The bundle is checked first (schema version, every artifact's sha256); a bundle whose
artifacts do not fit its manifest (another resolution, an engine for another GPU or TensorRT
version) is refused with what to rebuild.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from dancenow.engines.base import Engine
from dancenow.engines.bundle import Manifest, read_manifest
from dancenow.errors import DanceNowError

log = logging.getLogger(__name__)

BACKENDS = ("tensorrt", "openvino", "onnxruntime", "torch")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


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


def _openvino_model(bundle: Path, manifest: Manifest, role: str, precision: str) -> tuple[Path, Path | None] | None:
    """The IR (xml, bin) for `role` at `precision`, else the ONNX file (bundles exported before the IR)."""
    rel = find_artifact(manifest, "openvino", role, precision)
    if rel is not None:
        weights = manifest.artifacts[rel].get("weights")
        if not isinstance(weights, str) or weights not in manifest.artifacts:  # its sha256 must be checked too
            raise DanceNowError(f"{bundle}/manifest.json lists {rel} without its weights file: re-export the bundle")
        return bundle / rel, bundle / weights
    rel = find_artifact(manifest, "onnx", role, precision)
    return (bundle / rel, None) if rel else None


def _openvino(bundle: Path, manifest: Manifest, threads: int | None, precision: str | None) -> Engine:
    try:
        import openvino  # noqa: F401
    except ImportError:
        raise BackendUnavailable("the openvino package is not installed") from None
    from dancenow.engines.openvino_engine import CompileError, OpenVinoEngine, bf16_unavailable

    report = manifest.generator.get("openvino")  # export's bf16 parity, when it measured one
    bf16 = report.get("bf16") if isinstance(report, dict) else None
    bf16 = bf16 if isinstance(bf16, dict) else {}
    if precision is None:  # forced without a precision: the fastest that needs no measuring
        int8 = _openvino_model(bundle, manifest, "generator", "int8")
        precision = "bf16" if bf16_unavailable() is None and bf16.get("passed") is not False else "int8" if int8 else "fp32"
    if precision not in ("bf16", "fp32", "int8"):
        raise BackendUnavailable(f"OpenVINO runs bf16, int8 or fp32 here, not {precision}")
    if precision == "bf16" and (why := bf16_unavailable()):
        raise BackendUnavailable(f"OpenVINO bf16 cannot run here: {why}; use --precision fp32 or int8")
    if precision == "bf16" and bf16.get("passed") is False:
        raise BackendUnavailable(f"bf16 gave {bf16.get('psnr_db')} dB against fp32 at export (below "
                                 f"{bf16.get('min_psnr_db')} dB): use fp32 or int8")
    gen = _openvino_model(bundle, manifest, "generator", "int8" if precision == "int8" else "fp32")
    if gen is None:
        raise BackendUnavailable(f"the bundle has no {'INT8' if precision == 'int8' else 'fp32'} generator for "
                                 "OpenVINO (export it with --format openvino,openvino-int8)")
    face = _openvino_model(bundle, manifest, "face", "fp32") if _face_crop(manifest) else None
    try:
        return OpenVinoEngine(gen[0], manifest.resolution, precision, face[0] if face else None, _face_crop(manifest),
                              threads=threads, weights=gen[1], face_weights=face[1] if face else None)
    except CompileError as e:
        raise BackendUnavailable(str(e)) from None


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
    log.warning("backend torch runs %s, TorchScript: a program, not a graph; load it only from a bundle you "
                "exported or trust (auto and the other backends read graphs only)", bundle / rel)
    from dancenow.engines.torch_engine import TorchEngine

    return TorchEngine(bundle / rel, manifest.resolution, bundle / face_rel if face_rel else None,
                       _face_crop(manifest), threads=threads)


_LOADERS = {"tensorrt": _tensorrt, "openvino": _openvino, "onnxruntime": _onnxruntime, "torch": _torch}


def check_manifest(bundle: Path, manifest: Manifest) -> None:
    """What every backend relies on: a resolution, and generator I/O at that resolution (an alpha
    generator's `alpha` output has one channel)."""
    h, w = manifest.resolution
    if h <= 0 or w <= 0:
        raise DanceNowError(f"{bundle}/manifest.json has resolution {h}x{w}: re-export the bundle")
    want = [1, 3, h, w]
    tensors: dict = {}
    for part in ("inputs", "outputs"):
        block = manifest.generator.get(part, {})
        if not isinstance(block, dict):
            raise DanceNowError(f"{bundle}/manifest.json: field 'generator.{part}' must be a JSON object of "
                                "tensor shapes: re-export the bundle")
        tensors.update(block)
    for name, shape in tensors.items():
        if not isinstance(shape, list) or shape != ([1, 1, h, w] if name == "alpha" else want):
            raise DanceNowError(f"{bundle}/manifest.json gives generator tensor {name} shape {shape} at "
                                f"resolution {h}x{w}: the bundle is inconsistent; re-export it")


def _on_gpu() -> bool:
    """ONNX Runtime offers a CUDA provider: keep the GPU walk, measuring is for CPUs."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    from dancenow.engines.onnxruntime_engine import GPU_PROVIDERS

    return any(p in ort.get_available_providers() for p in GPU_PROVIDERS)


def _auto(bundle: Path, manifest: Manifest, threads: int | None, precision: str | None) -> Engine:
    """TensorRT when it runs here; on another GPU ONNX Runtime; on a CPU the measured best. Never
    the TorchScript: loading it runs a program from the bundle (`--backend torch` asks for that)."""
    gpu, skipped = _on_gpu(), []
    for name in ("tensorrt", "onnxruntime") if gpu else ("tensorrt",):
        try:
            return _LOADERS[name](bundle, manifest, threads, precision)
        except BackendUnavailable as e:
            log.info("backend %s skipped: %s", name, e)
            skipped.append(f"{name} ({e})")
        except DanceNowError as e:
            if name != "tensorrt":
                raise
            # A mismatched TensorRT engine is a reason to fall back under "auto", never silently.
            log.warning("backend tensorrt skipped: %s", e)
            skipped.append(f"tensorrt ({e})")
    if gpu:
        raise DanceNowError(f"no backend can run {bundle}: " + "; ".join(skipped))
    from dancenow.engines.choice import choose

    # BackendUnavailable: that candidate is skipped; any other error (a mismatched bundle) stops here.
    return choose(bundle, manifest, threads, lambda b, p: _LOADERS[b](bundle, manifest, threads, p), precision,
                  skip=BackendUnavailable)


def load_engine(bundle: str | os.PathLike, backend: str = "auto", threads: int | None = None,
                precision: str | None = None) -> Engine:
    """The bundle's generator on `backend` ("auto": the best here, see _auto), verified against its manifest.

    `threads`: intra-op threads (None: each backend's default; OpenVINO's is 1)."""
    if backend not in ("auto", *BACKENDS):
        raise DanceNowError(f"unknown backend {backend!r}: use auto, {', '.join(BACKENDS)}")
    if precision not in (None, *PRECISIONS):
        raise DanceNowError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise DanceNowError(f"threads must be a positive integer, got {threads!r}")
    bundle = Path(bundle)
    manifest = read_manifest(bundle, verify=True)
    check_manifest(bundle, manifest)
    if backend == "auto":
        engine = _auto(bundle, manifest, threads, precision)
    else:
        try:
            engine = _LOADERS[backend](bundle, manifest, threads, precision)
        except BackendUnavailable as e:
            raise DanceNowError(f"backend {backend} cannot run {bundle}: {e}") from None
    engine.manifest, engine.bundle = manifest, bundle
    log.info("target %s: %s", manifest.name, engine.describe())
    return engine
