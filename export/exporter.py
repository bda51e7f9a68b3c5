"""`export-engine`: a checkpoint to a verified target bundle.

Every artifact is checked before it is listed: the fp32 ONNX graph against PyTorch (max absolute
error), the INT8 graph against fp32 (PSNR, with layers kept in fp32 until it holds), the
TorchScript copy against eager PyTorch. The figures go into the manifest, which is written last and
atomically: a folder with a manifest is a complete bundle.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from dancenow.engines.bundle import MANIFEST, Manifest, read_manifest, write_manifest
from dancenow.engines.loader import PRECISIONS
from dancenow.engines.tensorrt_target import ENGINE_KIND, TIMING_CACHE_KIND
from dancenow.errors import DanceNowError
from dancenow.export.calibration import Samples, from_data, synthetic
from dancenow.export.parity import parity, run_onnx
from dancenow.files import sha256, write_atomic
from dancenow.realtime.pose.renderer import RenderConfig
from dancenow.training.checkpoint import build_face, build_generator, find_checkpoint, load_checkpoint
from dancenow.training.networks import GeneratorConfig, count_gflop

log = logging.getLogger(__name__)

FORMATS = ("onnx", "ort-int8", "tensorrt")
MIN_OPSET = 17
GEN_IO = (("pose", "previous"), "frame")
FACE_IO = (("label_crop", "frame_crop"), "refined")


@dataclass
class ExportConfig:
    """What to build; the defaults are the CPU bundle (fp32 ONNX + ONNX Runtime INT8)."""

    formats: tuple[str, ...] = ("onnx", "ort-int8")
    precision: str = "fp32"  # TensorRT precision: fp32, fp16 or int8
    calib: str | None = None  # prepared data folder; None: the built-in choreography
    opset: int = MIN_OPSET
    simplify: bool = True
    workspace: float = 4.0  # TensorRT memory pool limit, GiB
    device: str = "cpu"
    name: str | None = None
    force: bool = False  # keep an INT8 model below the PSNR threshold
    max_abs: float = 1e-3  # fp32 ONNX vs PyTorch, outputs in [-1, 1]
    min_psnr: float = 30.0  # INT8 vs fp32, dB
    calib_samples: int = 32
    parity_samples: int = 8

    def validate(self) -> None:
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise DanceNowError(f"unknown format {', '.join(bad) or '(none)'}: use a comma list of {', '.join(FORMATS)}")
        if self.precision not in PRECISIONS:
            raise DanceNowError(f"unknown precision {self.precision!r}: use {', '.join(PRECISIONS)}")
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


def _say(msg: str) -> None:
    print(f"export: {msg}", file=sys.stderr, flush=True)


# --- ONNX ----------------------------------------------------------------------------------------

def to_onnx(module: torch.nn.Module, size: tuple[int, int], io_names, opset: int, simplify: bool) -> onnx.ModelProto:
    """Static-shape ONNX of a two-input image network, checked, shape-inferred and simplified."""
    inputs, output = io_names
    dummy = tuple(torch.zeros(1, 3, *size) for _ in inputs)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, dummy, buf, input_names=list(inputs), output_names=[output],
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
        if dims != want:
            raise DanceNowError(f"exported {v.name} has shape {dims}, expected static {want}: this is a bug in export")
    return model


def cpu_session(path: Path):
    import onnxruntime as ort

    from dancenow.engines.onnxruntime_engine import session_options

    return ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])


# --- INT8 -----------------------------------------------------------------------------------------

def conv_nodes(model: onnx.ModelProto) -> list[tuple[str, list[int]]]:
    """Conv node names in graph order with their output shapes (from shape inference)."""
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*model.graph.value_info, *model.graph.output]}
    return [(n.name, shapes.get(n.output[0], [])) for n in model.graph.node if n.op_type == "Conv"]


def int8_strategies(model: onnx.ModelProto) -> list[tuple[str, list[str]]]:
    """Which convolutions stay fp32, tried in order until INT8 parity holds.

    The first and last 7x7 convolutions see 3-6 channels at full resolution: they are the most
    sensitive to quantization and, with so few channels, not faster in INT8 either.
    """
    convs = conv_nodes(model)
    names = [n for n, _ in convs]
    if not names:
        return [("all", [])]
    full = max((s[2] * s[3] for _, s in convs if len(s) == 4), default=0)
    edges = sorted({names[0], names[-1]})
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
        _say(f"{what} INT8 ({label}): {fig['psnr_db']:.2f} dB PSNR vs fp32, max abs {fig['max_abs']:.4f}")
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


# --- TorchScript ---------------------------------------------------------------------------------

def to_torchscript(module: torch.nn.Module, size: tuple[int, int], path: Path, samples: Samples | None) -> dict:
    """A traced copy for the PyTorch backend (engines never import the training code)."""
    dummy = tuple(torch.zeros(1, 3, *size) for _ in range(2))
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
        outs = [loaded(torch.from_numpy(to_tensor(a)), torch.from_numpy(to_tensor(b))).numpy()
                for a, b in zip(samples.labels, samples.previous, strict=True)]
    return {"parity_vs_eager": parity(samples.outputs, outs)}


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
    _say(f"{ckpt_path} -> {out} ({size[0]}x{size[1]}, formats {','.join(cfg.formats)})")

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
    gen_info: dict = {"inputs": {"pose": shape, "previous": shape}, "outputs": {"frame": shape},
                      "config": ckpt["generator_config"], "opset": cfg.opset,
                      "gflop": round(count_gflop(generator, torch.zeros(*shape), torch.zeros(*shape)), 3)}

    # fp32 ONNX, checked against PyTorch on held-out label maps.
    gen_path = out / "generator.onnx"
    write_atomic(gen_path, to_onnx(generator, size, GEN_IO, cfg.opset, cfg.simplify).SerializeToString())
    fig = parity(held.outputs, run_onnx(cpu_session(gen_path), held.feeds()))
    _say(f"generator fp32 ONNX vs PyTorch: max abs {fig['max_abs']:.2e}, {fig['psnr_db']:.2f} dB")
    if fig["max_abs"] > cfg.max_abs:
        raise DanceNowError(f"generator.onnx does not match PyTorch: max abs error {fig['max_abs']:.3e} > {cfg.max_abs:g} "
                            f"({fig['psnr_db']:.2f} dB PSNR over {fig['samples']} held-out label maps); try another --opset")
    gen_info["parity"] = {**fig, "max_abs_limit": cfg.max_abs}
    artifacts["generator.onnx"] = {"kind": "onnx", "role": "generator", "precision": "fp32", "parity_vs_torch": fig}

    face_info = None
    if face_net is not None and face_crop:
        fshape = [1, 3, face_crop, face_crop]
        face_info = {"crop": face_crop, "config": ckpt.get("face_config"), "inputs": {"label_crop": fshape, "frame_crop": fshape},
                     "outputs": {"refined": fshape}}
        face_path = out / "face.onnx"
        write_atomic(face_path, to_onnx(face_net, (face_crop, face_crop), FACE_IO, cfg.opset, cfg.simplify).SerializeToString())
        with torch.inference_mode():
            face_ref = [face_net(torch.from_numpy(f["label_crop"]), torch.from_numpy(f["frame_crop"])).numpy()
                        for f in held.face_feeds()]
        if face_ref:
            ffig = parity(face_ref, run_onnx(cpu_session(face_path), held.face_feeds()))
            _say(f"face fp32 ONNX vs PyTorch: max abs {ffig['max_abs']:.2e}")
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
                _say(f"face net stays fp32 ({e})")  # the generator's INT8 does not depend on it
            else:
                face_info["int8"] = freport
                artifacts["face.int8.onnx"] = {"kind": "onnx", "role": "face", "precision": "int8",
                                               "parity_vs_fp32": freport["parity_vs_fp32"]}

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

    import onnxruntime
    import onnxslim

    manifest = Manifest(
        name=cfg.name or ckpt.get("name") or ckpt_path.parent.name,
        resolution=size, profile=ckpt.get("profile") or "cpu-realtime", generator=gen_info, face=face_info,
        renderer=renderer.to_dict(), pose_stats=ckpt.get("pose_stats"),
        training={"step": ckpt.get("step"), "face_step": ckpt.get("face_step"), "summary": ckpt.get("summary") or {}},
        artifacts=artifacts,
        export={"checkpoint_sha256": ckpt_sha, "checkpoint": str(ckpt_path.resolve()),
                "config": {**asdict(cfg), "formats": list(cfg.formats)},
                "calibration": {"source": calib_source, "samples": len(calib.labels), "parity_samples": len(held.labels),
                                "face_samples": len(calib.face_labels)},
                "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                             "onnxslim": onnxslim.__version__},
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(time.monotonic() - t0, 1)},
    )
    path = write_manifest(out, manifest)
    _say(f"wrote {out} ({', '.join(sorted(artifacts))}) in {time.monotonic() - t0:.1f} s")
    return path


def stale_reason(checkpoint: Path, bundle_dir: Path) -> str | None:
    """Why `bundle_dir` must be (re)built from `checkpoint`, or None when it is current."""
    if not (bundle_dir / MANIFEST).is_file():
        return f"first use: exporting {checkpoint.name} to {bundle_dir} (ONNX + INT8, about a minute)"
    try:
        built_from = read_manifest(bundle_dir, verify=False).export.get("checkpoint_sha256")
    except DanceNowError as e:
        return f"{bundle_dir} is not usable ({e}): exporting it again"
    if built_from != sha256(checkpoint):
        return f"{checkpoint.name} changed since {bundle_dir} was built: exporting it again"
    return None


def ensure_bundle(checkpoint: str | os.PathLike, bundle_dir: str | os.PathLike) -> Path:
    """The bundle for `checkpoint` in `bundle_dir`: exported (onnx + ort-int8) on first use, and again
    whenever the checkpoint's sha256 changed. Safe against two processes doing it at once."""
    checkpoint, bundle_dir = Path(checkpoint), Path(bundle_dir)
    if not checkpoint.is_file():
        raise DanceNowError(f"checkpoint {checkpoint} not found: the built-in demo target needs it "
                            "(demo/assets/demo_checkpoint.pt, made by `dancenow train` on `dancenow prepare --synthetic`)")
    bundle_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(bundle_dir.parent / f".{bundle_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits, then finds the bundle current
        reason = stale_reason(checkpoint, bundle_dir)
        if reason is None:
            return bundle_dir
        _say(reason)
        if bundle_dir.exists():
            shutil.rmtree(bundle_dir)  # our cache: an old or half-written bundle
        export(checkpoint, bundle_dir, ExportConfig(formats=("onnx", "ort-int8")))
    return bundle_dir
