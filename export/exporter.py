"""`export-engine`: a checkpoint to a verified target bundle.

Every artifact is checked before it is listed: the fp32 ONNX graph against PyTorch (max absolute
error), the INT8 graph against fp32 (PSNR, with layers kept in fp32 until it holds), the OpenVINO
IR against PyTorch and its bf16/INT8 runs against fp32 (export/openvino_ir.py), the TorchScript
copy against eager PyTorch. A few held-out label maps go into the bundle (`samples.npz`), so that
`backend="auto"` times the engines on the target's own inputs. The figures go into the manifest, which is written last and
atomically: a folder with a manifest is a complete bundle.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import torch

from dancenow.engines.bundle import MANIFEST, Manifest, read_manifest, write_manifest
from dancenow.engines.tensorrt_target import ENGINE_KIND, TIMING_CACHE_KIND
from dancenow.errors import DanceNowError
from dancenow.export.calibration import Samples, from_data, synthetic
from dancenow.export.messages import say
from dancenow.export.ort_int8 import cpu_session, quantize
from dancenow.export.parity import parity, run_onnx
from dancenow.export.phase_head import deploy_form
from dancenow.files import sha256, write_atomic
from dancenow.realtime.pose.renderer import RenderConfig
from dancenow.training.checkpoint import (
    build_face,
    build_generator,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from dancenow.training.networks import GeneratorConfig, count_gflop

log = logging.getLogger(__name__)

FORMATS = ("onnx", "ort-int8", "openvino", "openvino-int8", "tensorrt")
CPU_FORMATS = ("onnx", "ort-int8", "openvino", "openvino-int8")  # the default bundle
TRT_PRECISIONS = ("fp32", "fp16", "int8")
# what each format adds for the generator: (kind, precision); a cached bundle without one is rebuilt
FORMAT_ARTIFACTS = {"onnx": ("onnx", "fp32"), "ort-int8": ("onnx", "int8"), "openvino": ("openvino", "fp32"),
                    "openvino-int8": ("openvino", "int8")}
SAMPLES = "samples.npz"
# What this export-engine writes, by generation: 2 = v2's output stage as a PhaseHead (3 Dec 2026);
# 3 = OpenVINO INT8 with 7-bit weights in every layer (7 Dec 2026: openvino_ir.write_int8).
# ensure_bundle rebuilds a cached bundle of an older form; bundles elsewhere load as they are.
FORM = 3
MIN_OPSET = 17
GEN_IO = (("pose", "previous"), "frame")
ALPHA = "alpha"  # an alpha generator's second output: 1x1xHxW in [0, 1], for other backgrounds live
PLATE = "plate.png"
FACE_IO = (("label_crop", "frame_crop"), "refined")


@dataclass
class ExportConfig:
    """What to build; the defaults are the CPU bundle (fp32 ONNX, ONNX Runtime INT8, OpenVINO IR fp32 + INT8)."""

    formats: tuple[str, ...] = CPU_FORMATS
    precision: str = "fp32"  # TensorRT precision: fp32, fp16 or int8
    calib: str | None = None  # prepared data folder; None: the built-in choreography
    opset: int = MIN_OPSET
    simplify: bool = True
    workspace: float = 4.0  # TensorRT memory pool limit, GiB
    device: str = "cpu"
    name: str | None = None
    force: bool = False  # keep an INT8 model below the PSNR threshold
    # HD: the half size from this checkpoint (the same target trained at exactly half the size, with
    # its own face stage) instead of the coarse network alone, which has none
    half: str | None = None
    max_abs: float = 1e-3  # fp32 ONNX vs PyTorch, outputs in [-1, 1]
    min_psnr: float = 30.0  # INT8 vs fp32, dB
    min_bf16_psnr: float = 40.0  # OpenVINO bf16 vs fp32, dB (measured where the CPU has bf16)
    calib_samples: int = 32
    parity_samples: int = 8

    def validate(self) -> None:
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise DanceNowError(f"unknown format {', '.join(bad) or '(none)'}: use a comma list of {', '.join(FORMATS)}")
        if self.precision not in TRT_PRECISIONS:
            raise DanceNowError(f"unknown precision {self.precision!r}: use {', '.join(TRT_PRECISIONS)}")
        newest = onnx.defs.onnx_opset_version()
        if not MIN_OPSET <= self.opset <= newest:
            raise DanceNowError(f"--opset {self.opset} is not supported: use {MIN_OPSET} to {newest}")
        if not self.workspace > 0:
            raise DanceNowError(f"--workspace must be a positive number of GiB, got {self.workspace}")
        if self.device != "cpu" and not (self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise DanceNowError(f"--device {self.device!r} is not a device: use cpu or cuda:N")
        if self.device != "cpu" and not torch.cuda.is_available():
            raise DanceNowError(f"--device {self.device}: no CUDA GPU is visible here; use --device cpu")
        if self.calib is not None and not Path(self.calib).is_dir():
            raise DanceNowError(f"--calib {self.calib} is not a folder: pass the target's prepared data (`dancenow prepare`)")
        if self.calib_samples < 1 or self.parity_samples < 1:
            raise DanceNowError("calib_samples and parity_samples must be at least 1")


# --- ONNX ----------------------------------------------------------------------------------------

class WithAlpha(torch.nn.Module):
    """An alpha generator with both outputs (frame, alpha) for export: the frame first, so every
    parity check and runner that reads output 0 is unchanged."""

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, pose: torch.Tensor, previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.generator.layers(pose, previous)


def exported(generator: torch.nn.Module) -> tuple[torch.nn.Module, list[str]]:
    """The module to export for `generator` and its output names: a v2 generator in its exact
    half-resolution-head form (export/phase_head.py), for every engine."""
    generator = deploy_form(generator)
    if getattr(generator.config, "alpha", False):
        return WithAlpha(generator).eval(), [GEN_IO[1], ALPHA]
    return generator, [GEN_IO[1]]


def to_onnx(module: torch.nn.Module, size: tuple[int, int], io_names, opset: int, simplify: bool) -> onnx.ModelProto:
    """Static-shape ONNX of a two-input image network, checked, shape-inferred and simplified
    (an alpha generator's second output, `alpha`, is 1x1xHxW)."""
    inputs, output = io_names
    outputs = [output]
    if output == GEN_IO[1]:
        module, outputs = exported(module)
    dummy = tuple(torch.zeros(1, 3, *size) for _ in inputs)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, dummy, buf, input_names=list(inputs), output_names=outputs,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        except Exception as e:  # the exporter raises many types
            raise DanceNowError(f"ONNX export at opset {opset} failed ({type(e).__name__}: {e}): try --opset {MIN_OPSET}") from None
    model = onnx.load_from_string(buf.getvalue())
    if simplify:
        import onnxslim

        model = onnxslim.slim(model)
    onnx.checker.check_model(model, full_check=True)
    model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    want = [1, 3, int(size[0]), int(size[1])]
    for v in [*model.graph.input, *model.graph.output]:
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
        if dims != (want[:1] + [1] + want[2:] if v.name == ALPHA else want):
            raise DanceNowError(f"exported {v.name} has shape {dims}, expected static {want}: this is a bug in export")
    return model


# --- TorchScript ---------------------------------------------------------------------------------

def to_torchscript(module: torch.nn.Module, size: tuple[int, int], path: Path, samples: Samples | None) -> dict:
    """A traced copy for the PyTorch backend (engines never import the training code)."""
    dummy = tuple(torch.zeros(1, 3, *size) for _ in range(2))
    module = exported(module)[0] if hasattr(module, "layers") else module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, dummy, check_trace=False)
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    write_atomic(path, buf.getvalue())
    if not samples or not samples.labels:
        return {}
    from dancenow.engines.base import to_tensor

    loaded = torch.jit.load(str(path))
    with torch.inference_mode():
        outs = [_first(loaded(torch.from_numpy(to_tensor(a)), torch.from_numpy(to_tensor(b)))).numpy()
                for a, b in zip(samples.labels, samples.previous, strict=True)]
    return {"parity_vs_eager": parity(samples.outputs, outs)}


def _first(out):
    return out[0] if isinstance(out, tuple | list) else out


# --- the bundle ----------------------------------------------------------------------------------

def _prepare_out(out: Path, ckpt_sha: str) -> dict:
    """Make `out` ready; returns TensorRT entries of an earlier export of the same checkpoint to keep."""
    if out.exists() and not out.is_dir():
        raise DanceNowError(f"--out {out} is a file: give a folder for the bundle")
    keep: dict = {}
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise DanceNowError(f"--out {out} is a non-empty folder that is not a bundle: choose an empty or new folder")
        try:
            old = read_manifest(out, verify=False)
            if old.export.get("checkpoint_sha256") == ckpt_sha:
                keep = {rel: e for rel, e in old.artifacts.items()
                        if e.get("kind") in (ENGINE_KIND, TIMING_CACHE_KIND) and (out / rel).is_file()
                        and sha256(out / rel) == e.get("sha256")}
        except DanceNowError:
            pass
        (out / MANIFEST).unlink()  # the folder is not a valid bundle again until the new manifest lands
    out.mkdir(parents=True, exist_ok=True)
    return keep


def _check_resolution(ckpt: dict) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in ckpt["resolution"])
    except (KeyError, TypeError, ValueError):
        raise DanceNowError("the checkpoint has no valid resolution: retrain with this version's `dancenow train`") from None
    factor = GeneratorConfig.from_dict(ckpt["generator_config"]).factor
    if h % factor or w % factor:
        raise DanceNowError(f"resolution {h}x{w} is not a multiple of {factor} (the generator's downsampling): retrain at a fitting size")
    return h, w


def export(checkpoint_or_run_dir: str | os.PathLike, out: str | os.PathLike, cfg: ExportConfig | None = None) -> Path:
    """Build a verified bundle in `out` from a checkpoint (or a run folder); returns the manifest's path."""
    cfg = cfg or ExportConfig()
    cfg.validate()
    t0 = time.monotonic()
    target = None
    if "tensorrt" in cfg.formats:
        from dancenow.engines.tensorrt_target import current_target

        target = current_target(int(cfg.device[5:]) if cfg.device.startswith("cuda:") else 0)  # fails early, clearly
    ckpt_path = find_checkpoint(checkpoint_or_run_dir)
    ckpt = load_checkpoint(ckpt_path)
    size = _check_resolution(ckpt)
    ckpt_sha = sha256(ckpt_path)
    out = Path(out)
    kept = _prepare_out(out, ckpt_sha)
    say(f"{ckpt_path} -> {out} ({size[0]}x{size[1]}, formats {','.join(cfg.formats)})")

    generator = build_generator(ckpt)
    face_net = build_face(ckpt)
    face_crop = int(ckpt["face_crop"]) if face_net is not None and ckpt.get("face_crop") else None
    renderer = RenderConfig.from_dict(ckpt.get("renderer") or {})
    if cfg.calib:
        calib, held = from_data(cfg.calib, generator, size, renderer, face_crop, cfg.calib_samples, cfg.parity_samples)
        calib_source = str(Path(cfg.calib).resolve())
    else:
        calib, held = synthetic(generator, size, renderer, face_crop, cfg.calib_samples, cfg.parity_samples)
        calib_source = "synthetic: built-in choreography + renderer, generator run recurrently"

    artifacts: dict = dict(kept)
    shape = [1, 3, size[0], size[1]]
    outputs = {"frame": shape, **({ALPHA: [1, 1, size[0], size[1]]} if generator.config.alpha else {})}
    gen_info: dict = {"inputs": {"pose": shape, "previous": shape}, "outputs": outputs,
                      "config": ckpt["generator_config"], "opset": cfg.opset,
                      "gflop": round(count_gflop(generator, torch.zeros(*shape), torch.zeros(*shape)), 3)}

    # fp32 ONNX, checked against PyTorch on held-out label maps.
    gen_path = out / "generator.onnx"
    write_atomic(gen_path, to_onnx(generator, size, GEN_IO, cfg.opset, cfg.simplify).SerializeToString())
    fig = parity(held.outputs, run_onnx(cpu_session(gen_path), held.feeds()))
    say(f"generator fp32 ONNX vs PyTorch: max abs {fig['max_abs']:.2e}, {fig['psnr_db']:.2f} dB")
    if fig["max_abs"] > cfg.max_abs:
        raise DanceNowError(f"generator.onnx does not match PyTorch: max abs error {fig['max_abs']:.3e} > {cfg.max_abs:g} "
                            f"({fig['psnr_db']:.2f} dB PSNR over {fig['samples']} held-out label maps); try another --opset")
    gen_info["parity"] = {**fig, "max_abs_limit": cfg.max_abs}
    artifacts["generator.onnx"] = {"kind": "onnx", "role": "generator", "precision": "fp32", "parity_vs_torch": fig}

    face_info = None
    if face_net is not None and face_crop:
        fshape = [1, 3, face_crop, face_crop]
        face_ref: list = []
        face_info = {"crop": face_crop, "config": ckpt.get("face_config"), "inputs": {"label_crop": fshape, "frame_crop": fshape},
                     "outputs": {"refined": fshape}}
        face_path = out / "face.onnx"
        write_atomic(face_path, to_onnx(face_net, (face_crop, face_crop), FACE_IO, cfg.opset, cfg.simplify).SerializeToString())
        with torch.inference_mode():
            face_ref = [face_net(torch.from_numpy(f["label_crop"]), torch.from_numpy(f["frame_crop"])).numpy()
                        for f in held.face_feeds()]
        if face_ref:
            ffig = parity(face_ref, run_onnx(cpu_session(face_path), held.face_feeds()))
            say(f"face fp32 ONNX vs PyTorch: max abs {ffig['max_abs']:.2e}")
            if ffig["max_abs"] > cfg.max_abs:
                raise DanceNowError(f"face.onnx does not match PyTorch: max abs error {ffig['max_abs']:.3e} > {cfg.max_abs:g}")
            face_info["parity"] = ffig
        artifacts["face.onnx"] = {"kind": "onnx", "role": "face", "precision": "fp32", "parity_vs_torch": face_info.get("parity")}

    if "ort-int8" in cfg.formats:
        report = quantize(gen_path, out / "generator.int8.onnx", calib.feeds(), held.feeds(), cfg.min_psnr, cfg.force, "generator")
        gen_info["int8"] = report
        artifacts["generator.int8.onnx"] = {"kind": "onnx", "role": "generator", "precision": "int8",
                                            "parity_vs_fp32": report["parity_vs_fp32"]}
        if face_info is not None and calib.face_labels and held.face_labels:
            try:
                freport = quantize(out / "face.onnx", out / "face.int8.onnx", calib.face_feeds(), held.face_feeds(),
                                   cfg.min_psnr, cfg.force, "face")
            except DanceNowError as e:
                say(f"face net stays fp32 ({e})")  # the generator's INT8 does not depend on it
            else:
                face_info["int8"] = freport
                artifacts["face.int8.onnx"] = {"kind": "onnx", "role": "face", "precision": "int8",
                                               "parity_vs_fp32": freport["parity_vs_fp32"]}

    if "openvino" in cfg.formats or "openvino-int8" in cfg.formats:
        from dancenow.export import openvino_ir

        entries, report = openvino_ir.write_fp32(gen_path, out, "generator", "generator", GEN_IO, size, held.feeds(),
                                                 held.outputs, cfg.max_abs, cfg.min_bf16_psnr)
        artifacts.update(entries)
        gen_info["openvino"] = report
        if face_info is not None:
            entries, _ = openvino_ir.write_fp32(out / "face.onnx", out, "face", "face", FACE_IO, (face_crop, face_crop),
                                                held.face_feeds(), face_ref, cfg.max_abs, cfg.min_bf16_psnr)
            artifacts.update(entries)
        if "openvino-int8" in cfg.formats:
            entries, report = openvino_ir.write_int8(out / "generator.xml", out, "generator.int8", "generator",
                                                     calib.feeds(), held.feeds(), held.outputs, cfg.min_psnr, cfg.force)
            artifacts.update(entries)
            gen_info["openvino"]["int8"] = report

    # held-out label maps for backend="auto" to time the engines on (arrays only: np.load without pickle)
    buf = io.BytesIO()
    np.savez_compressed(buf, labels=np.stack(held.labels), previous=np.stack(held.previous))
    write_atomic(out / SAMPLES, buf.getvalue())
    artifacts[SAMPLES] = {"kind": "samples", "role": "timing", "count": len(held.labels)}

    if generator.config.alpha:  # the room the frames show: live, other backgrounds replace it through alpha
        import cv2

        plate = ckpt["plate"].numpy()
        write_atomic(out / PLATE, cv2.imencode(".png", cv2.cvtColor(plate, cv2.COLOR_RGB2BGR))[1].tobytes())
        artifacts[PLATE] = {"kind": "image", "role": "plate"}
    ts = to_torchscript(generator, size, out / "generator.ts", held)
    artifacts["generator.ts"] = {"kind": "torchscript", "role": "generator", "precision": "fp32", **ts}
    if face_info is not None:
        to_torchscript(face_net, (face_crop, face_crop), out / "face.ts", None)
        artifacts["face.ts"] = {"kind": "torchscript", "role": "face", "precision": "fp32"}
    if ckpt_path.resolve() != (out / "checkpoint.pt").resolve():
        shutil.copyfile(ckpt_path, out / ".checkpoint.pt.tmp")
        os.replace(out / ".checkpoint.pt.tmp", out / "checkpoint.pt")
    artifacts["checkpoint.pt"] = {"kind": "checkpoint", "role": "training"}

    if target is not None:
        from dancenow.export.tensorrt_build import TensorRTConfig, build_bundle_engines

        artifacts.update(build_bundle_engines(out, target, TensorRTConfig(precision=cfg.precision,
                                                                          workspace_gib=cfg.workspace), face_info is not None))

    half = None
    if generator.config.enhance:  # one bundle, two sizes: the coarse network alone, at half the size
        from dancenow.training.checkpoint import half_checkpoint

        half_ckpt = out / ".half.checkpoint.pt"
        save_checkpoint(half_ckpt, half_checkpoint(ckpt) if cfg.half is None else _own_half(ckpt, cfg.half))
        try:
            say("the half-size bundle (" + (f"from {cfg.half})" if cfg.half else "the coarse network alone)"))
            export(half_ckpt, out / HALF, replace(cfg, name=(cfg.name or ckpt.get("name") or "target") + " (half size)",
                                                 calib=None, half=None))
        finally:
            half_ckpt.unlink(missing_ok=True)
        half = HALF

    import onnxruntime
    import onnxslim
    import openvino

    manifest = Manifest(
        name=cfg.name or ckpt.get("name") or ckpt_path.parent.name,
        resolution=size, profile=ckpt.get("profile") or "cpu-realtime", generator=gen_info, face=face_info,
        renderer=renderer.to_dict(), pose_stats=ckpt.get("pose_stats"),
        training={"step": ckpt.get("step"), "face_step": ckpt.get("face_step"), "summary": ckpt.get("summary") or {}},
        artifacts=artifacts,
        export={"checkpoint_sha256": ckpt_sha, "checkpoint": str(ckpt_path.resolve()),
                **({"half_sha256": sha256(cfg.half)} if half and cfg.half else {}),
                "config": {**asdict(cfg), "formats": list(cfg.formats)},
                "calibration": {"source": calib_source, "samples": len(calib.labels), "parity_samples": len(held.labels),
                                "face_samples": len(calib.face_labels)},
                "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                             "onnxslim": onnxslim.__version__, "openvino": openvino.__version__,
                             **({"nncf": _nncf_version()} if "openvino-int8" in cfg.formats else {})},
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.monotonic() - t0, 1),
                "form": FORM},
        half=half,
    )
    path = write_manifest(out, manifest)
    say(f"wrote {out} ({', '.join(sorted(artifacts))}) in {time.monotonic() - t0:.1f} s")
    return path


HALF = "half"  # an HD bundle's half-size bundle, inside it


def _own_half(ckpt: dict, path: str) -> dict:
    """The checkpoint at `path` as an HD bundle's half size: refused unless it is one size, exactly
    half of `ckpt`'s, so the live switch between the two sizes keeps the same framing."""
    half = load_checkpoint(path)
    want = [int(v) // 2 for v in ckpt["resolution"]]
    if GeneratorConfig.from_dict(half["generator_config"]).enhance or [int(v) for v in half["resolution"]] != want:
        raise DanceNowError(f"--half {path} generates {half['resolution']} ({half.get('profile')}), not the "
                            f"{want[0]}x{want[1]} half of this {ckpt['resolution'][0]}x{ckpt['resolution'][1]} "
                            "target: train the same clip at half the size (e.g. prepare --size 256x160) without --profile cpu-hd")
    return {k: v for k, v in half.items() if k not in ("train_state", "format")}


def _nncf_version() -> str:
    import nncf

    return nncf.__version__
