"""TensorRT engines for a bundle (TensorRT 10 Python API), named for the GPU and TensorRT version.

The ONNX graphs already in the bundle are parsed with `trt.OnnxParser`; fp16 and int8 are builder
flags (INT8 comes from the bundle's QDQ model, calibrated on the target's data: TensorRT 10's
implicit calibrators are deprecated). Normalization layers are pinned to fp32 with
`OBEY_PRECISION_CONSTRAINTS`, because instance norm in fp16 turns frames into noise. The timing
cache is kept in the bundle per device and reused by the next build. Everything but `build_engine`
and `build_bundle_engines` is pure and runs without a GPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from dancenow.engines.tensorrt_target import (
    TIMING_CACHE_KIND,
    DeviceTarget,
    cache_key,
    engine_entry,
    engine_filename,
    timing_cache_filename,
)
from dancenow.errors import DanceNowError
from dancenow.files import sha256, write_atomic

log = logging.getLogger(__name__)

# Layer types kept in fp32 whatever the precision (TensorRT's LayerType names).
FP32_LAYER_TYPES = ("NORMALIZATION", "REDUCE", "SOFTMAX")


@dataclass
class TensorRTConfig:
    precision: str = "fp16"  # fp32, fp16 or int8
    workspace_gib: float = 4.0

    @property
    def workspace_bytes(self) -> int:
        return int(self.workspace_gib * (1 << 30))


def builder_flags(precision: str, fast_fp16: bool, fast_int8: bool) -> list[str]:
    """The BuilderFlag names for `precision` on a GPU with these capabilities, or a DanceNowError.

    fp16 and int8 also set OBEY_PRECISION_CONSTRAINTS so the fp32 pins on normalization hold; int8
    also allows fp16 for the layers the QDQ model leaves unquantized.
    """
    if precision == "fp32":
        return []
    if precision == "fp16":
        if not fast_fp16:
            raise DanceNowError("this GPU has no fast fp16: build with --precision fp32")
        return ["FP16", "OBEY_PRECISION_CONSTRAINTS"]
    if precision == "int8":
        if not fast_int8:
            raise DanceNowError("this GPU has no fast int8: build with --precision fp16")
        return ["INT8", *(["FP16"] if fast_fp16 else []), "OBEY_PRECISION_CONSTRAINTS"]
    raise DanceNowError(f"unknown TensorRT precision {precision!r}: use fp32, fp16 or int8")


def source_model(precision: str, role: str = "generator") -> str:
    """Which ONNX file in the bundle an engine of `precision` is built from."""
    return f"{role}.int8.onnx" if precision == "int8" else f"{role}.onnx"


def pin_layers(layer_types: list[str], precision: str) -> list[int]:
    """Indices of the layers to pin to fp32 (pure: takes the network's layer type names)."""
    if precision == "fp32":
        return []
    return [i for i, t in enumerate(layer_types) if t in FP32_LAYER_TYPES]


def build_engine(onnx_path: Path, engine_path: Path, cache_path: Path, cfg: TensorRTConfig) -> dict:
    """Parse, configure and build one engine; updates the timing cache file. Needs tensorrt and a GPU."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: always explicit batch (the flag is deprecated)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise DanceNowError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_bytes)
    for flag in builder_flags(cfg.precision, builder.platform_has_fast_fp16, builder.platform_has_fast_int8):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    types = [network.get_layer(i).type.name for i in range(network.num_layers)]
    pinned = pin_layers(types, cfg.precision)
    for i in pinned:
        layer = network.get_layer(i)
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise DanceNowError(f"TensorRT failed to build {engine_path.name}: run with -v for TensorRT's log, "
                            "or try --precision fp32 / a larger --workspace")
    write_atomic(engine_path, bytes(serialized))
    write_atomic(cache_path, bytes(config.get_timing_cache().serialize()))
    return {"fp32_layers": len(pinned), "layers": len(types)}


def build_bundle_engines(bundle: Path, target: DeviceTarget, cfg: TensorRTConfig, face: bool) -> dict:
    """Engines for the generator (and face net) in `bundle`, plus the timing cache: manifest entries."""
    entries: dict = {}
    cache_rel = timing_cache_filename(target)
    for role in ["generator", *(["face"] if face else [])]:
        src = bundle / source_model(cfg.precision, role)
        if not src.is_file():
            raise DanceNowError(f"{src.name} is missing: TensorRT int8 builds from the QDQ model; add ort-int8 to --format")
        rel = engine_filename(role, target, cfg.precision)
        info = build_engine(src, bundle / rel, bundle / cache_rel, cfg)
        entries[rel] = {**engine_entry(role, target, cfg.precision, cache_key(sha256(src), target, cfg.precision,
                                                                               cfg.workspace_bytes)),
                        "source": src.name, **info}
        log.info("built %s", rel)
    entries[cache_rel] = {"kind": TIMING_CACHE_KIND, **target.to_dict()}
    return entries
