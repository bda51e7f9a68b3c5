"""OpenVINO IR for the bundle: the fp32 model and an NNCF INT8 model, each checked before it is listed.

Why an IR beside the ONNX file: OpenVINO reads it without converting (the engine loads faster and
sees exactly the graph that was checked here), and NNCF's INT8 model (quantized for OpenVINO's
CPU kernels, calibrated on the target's own label maps) is about twice as fast as the QDQ ONNX file
run by OpenVINO. Weights are saved as fp32 (`compress_to_fp16=False`): measured on the demo
generator, an fp16-compressed IR loads no faster (read + compile about 0.2 s either way) and would
make "fp32" inexact.

Gates, on held-out label maps against PyTorch fp32: the fp32 IR within `max_abs`, bf16 (where this
CPU has it) at least 40 dB PSNR, INT8 at least 30 dB. A bf16 result below its gate is recorded in
the manifest and the engine then refuses bf16 for the bundle; an INT8 model below its gate is not
written (unless forced).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from pathlib import Path

import numpy as np
import openvino as ov

from dancenow.engines.openvino_engine import bf16_unavailable, check_io, compile_config, core, read
from dancenow.errors import DanceNowError
from dancenow.export.parity import parity

KIND, WEIGHTS_KIND = "openvino", "openvino-weights"


def _say(msg: str) -> None:
    print(f"export: {msg}", file=sys.stderr, flush=True)


def run_ir(xml: Path, feeds: list[dict[str, np.ndarray]], precision: str) -> list[np.ndarray]:
    """The IR's float outputs on `feeds`, compiled at `precision` on every core (export owns the machine)."""
    compiled = core().compile_model(read(xml, xml.with_suffix(".bin")), "CPU",
                                    compile_config(precision, os.cpu_count() or 1))
    request = compiled.create_infer_request()
    return [np.array(request.infer(f)[0]) for f in feeds]


def _entries(stem: str, role: str, precision: str, **extra) -> dict:
    """Manifest entries for an IR: the .xml names its .bin, and both are hashed by write_manifest."""
    return {f"{stem}.xml": {"kind": KIND, "role": role, "precision": precision, "weights": f"{stem}.bin", **extra},
            f"{stem}.bin": {"kind": WEIGHTS_KIND, "role": role, "precision": precision}}


def write_fp32(onnx_path: Path, out: Path, stem: str, role: str, io: tuple, size: tuple[int, int],
               feeds: list[dict[str, np.ndarray]], reference: list[np.ndarray], max_abs: float,
               min_bf16_psnr: float) -> tuple[dict, dict]:
    """`stem`.xml/.bin from the checked ONNX file; returns (manifest entries, report)."""
    xml = out / f"{stem}.xml"
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as e:  # the converter raises several types
        raise DanceNowError(f"OpenVINO cannot convert {onnx_path.name} ({type(e).__name__}: {e}): "
                            "export without --format openvino") from None
    ov.save_model(model, str(xml), compress_to_fp16=False)
    check_io(read(xml, xml.with_suffix(".bin")), xml, *io, size)
    report: dict = {}
    if feeds:
        fig = parity(reference, run_ir(xml, feeds, "fp32"))
        _say(f"{role} OpenVINO IR fp32 vs PyTorch: max abs {fig['max_abs']:.2e}")
        if fig["max_abs"] > max_abs:
            raise DanceNowError(f"{xml.name} does not match PyTorch: max abs error {fig['max_abs']:.3e} > {max_abs:g}; "
                                "export without --format openvino or report the model")
        report["parity_vs_torch"] = fig
        why = bf16_unavailable()
        if why is None:
            bf = parity(reference, run_ir(xml, feeds, "bf16"))
            report["bf16"] = {**bf, "min_psnr_db": min_bf16_psnr, "passed": bf["psnr_db"] >= min_bf16_psnr}
            _say(f"{role} OpenVINO bf16 vs fp32: {bf['psnr_db']:.2f} dB PSNR"
                 + ("" if report["bf16"]["passed"] else f", below {min_bf16_psnr} dB: the engine will refuse bf16"))
        else:
            report["bf16"] = {"measured": False, "why": why}
    return _entries(stem, role, "fp32", **{k: v for k, v in report.items() if k == "parity_vs_torch"}), report


def _edge_convs(model: ov.Model) -> list[str]:
    """The first convolution and those that write the outputs (no convolution between them and a
    Result), as `ort_int8.output_convs` finds them in the ONNX file."""
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]

    def writes_output(op, seen: set) -> bool:
        for out in op.outputs():
            for target in out.get_target_inputs():
                node = target.get_node()
                if node.get_type_name() == "Result":
                    return True
                if node.get_type_name() != "Convolution" and node.get_name() not in seen:
                    seen.add(node.get_name())  # unique per node; id() is of a Python wrapper, which may be new each time
                    if writes_output(node, seen):
                        return True
        return False

    names = [op.get_friendly_name() for op in convs if writes_output(op, set())]
    return list(dict.fromkeys([convs[0].get_friendly_name(), *names])) if convs else []


def quiet_nncf() -> None:
    """NNCF's INFO lines off. Not `nncf.set_log_level`: that also sets the level of every handler
    attached to NNCF's logger, which can be a host application's (pytest's capture handler is one,
    and then no later test saw a warning)."""
    logging.getLogger("nncf").setLevel(logging.ERROR)


def write_int8(fp32_xml: Path, out: Path, stem: str, role: str, calib: list[dict[str, np.ndarray]],
               feeds: list[dict[str, np.ndarray]], reference: list[np.ndarray], min_psnr: float,
               force: bool) -> tuple[dict, dict]:
    """NNCF post-training INT8 of the fp32 IR, calibrated on `calib`; the first strategy that holds
    `min_psnr` on `feeds` is written (else the best, with `force`)."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    quiet_nncf()
    # 7-bit weights in every layer, not only the first: a CPU without VNNI (AVX2) multiplies u8 by
    # s8 in pairs summed to int16, which saturates with 8-bit weights. The HD demo's 512x384
    # generator under ONEDNN_MAX_CPU_ISA=AVX2: 31.5 dB against fp32 with NNCF's default, 43.9 dB
    # with this; 44.1 and 43.9 dB on the same host uncapped (VNNI), where it makes no difference.
    advanced = AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE)
    model = read(fp32_xml, fp32_xml.with_suffix(".bin"))
    edges = _edge_convs(model)
    strategies = [("all convolutions", None)]
    if len(edges) >= 2:  # they see or write 3-6 channels at full resolution
        strategies.append(("first/last conv fp32", nncf.IgnoredScope(names=edges)))
    attempts, best = [], None
    tmp = out / f".{stem}.tmp.xml"
    for label, scope in strategies:
        kwargs = {"ignored_scope": scope} if scope else {}
        kwargs["advanced_parameters"] = advanced
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars: rich, on stdout
                q = nncf.quantize(model, nncf.Dataset(calib), subset_size=len(calib), **kwargs)
        except Exception as e:  # NNCF raises many types
            raise DanceNowError(f"NNCF cannot quantize {fp32_xml.name} ({type(e).__name__}: {e}): "
                                "export without --format openvino-int8") from None
        ov.save_model(q, str(tmp), compress_to_fp16=False)
        fig = parity(reference, run_ir(tmp, feeds, "int8"))
        attempts.append({"strategy": label, **fig})
        _say(f"{role} OpenVINO INT8 (NNCF, {label}): {fig['psnr_db']:.2f} dB PSNR vs fp32")
        if best is None or fig["psnr_db"] > best[0]["psnr_db"]:
            best = (attempts[-1], tmp.read_text(), tmp.with_suffix(".bin").read_bytes())
        if fig["psnr_db"] >= min_psnr:
            break
    tmp.unlink(missing_ok=True)
    tmp.with_suffix(".bin").unlink(missing_ok=True)
    chosen, xml_text, weights = best
    if chosen["psnr_db"] < min_psnr and not force:
        figures = "; ".join(f"{a['strategy']}: {a['psnr_db']:.2f} dB" for a in attempts)
        raise DanceNowError(f"{role} OpenVINO INT8 parity is below {min_psnr} dB against fp32 ({figures}): "
                            "export without openvino-int8, or write it anyway with --force")
    (out / f"{stem}.xml").write_text(xml_text)
    (out / f"{stem}.bin").write_bytes(weights)
    fig = {k: chosen[k] for k in ("max_abs", "psnr_db", "samples")}
    report = {"parity_vs_fp32": fig, "strategy": chosen["strategy"], "attempts": attempts,
              "forced": chosen["psnr_db"] < min_psnr, "min_psnr_db": min_psnr,
              "scheme": "NNCF post-training quantization (default preset, overflow fix in every layer), "
                        "calibrated on the target's label maps"}
    return _entries(stem, role, "int8", parity_vs_fp32=fig), report
