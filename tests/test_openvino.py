"""The OpenVINO engine and `backend="auto"` by measurement, on real OpenVINO / ONNX Runtime sessions.

The demo target's bundle (trained, so parity figures mean something) is used read-only; every test
that changes a bundle works on a copy, and every engine-choice cache goes to tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dancenow import host
from dancenow.engines import choice, load_engine
from dancenow.engines.bundle import MANIFEST, read_manifest, write_manifest
from dancenow.errors import DanceNowError

BF16 = host.cpu_info()["bf16"] and not os.environ.get("ONEDNN_MAX_CPU_ISA")
MIN_PSNR = {"bf16": 40.0, "int8": 30.0, "fp32": 50.0}
FEW = [("openvino", "bf16"), ("openvino", "int8"), ("onnxruntime", "int8")]  # where all six are not the point


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """Engine choices go to tmp_path; each candidate is timed for 0.05 s (figures are not the point)."""
    monkeypatch.setenv("DANCENOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(choice, "SECONDS", 0.05)
    monkeypatch.setattr(choice, "GAP", 0.0)
    return tmp_path / "cache" / "engine-choice"


def samples(bundle: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    return choice.sample_inputs(bundle, read_manifest(bundle, verify=False))[0][:4]


def copy_bundle(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(bundle, dst)
    return dst


def make_old(bundle: Path, tmp_path: Path) -> Path:
    """A copy as export wrote it before OpenVINO: no IR files, no samples.npz."""
    b = copy_bundle(bundle, tmp_path)
    m = read_manifest(b)
    for rel, entry in list(m.artifacts.items()):
        if entry.get("kind") in ("openvino", "openvino-weights", "samples"):
            (b / rel).unlink()
            del m.artifacts[rel]
    m.generator.pop("openvino", None)
    write_manifest(b, m)
    return b


# --- the engine ----------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["bf16", "int8", "fp32"])
def test_openvino_matches_fp32(demo_bundle, precision):
    if precision == "bf16" and not BF16:
        pytest.skip(f"this CPU runs no bf16 ({host.describe_cpu()})")
    eng = load_engine(demo_bundle, "openvino", precision=precision)
    assert (eng.name, eng.precision, eng.device, eng.threads) == ("openvino", precision, "cpu", 1)
    assert eng.source == ("generator.int8.xml" if precision == "int8" else "generator.xml")
    ref = load_engine(demo_bundle, "onnxruntime", precision="fp32")
    pairs = samples(demo_bundle)
    got = [eng.generate(a, b) for a, b in pairs]
    assert choice.psnr([ref.generate(a, b) for a, b in pairs], got) >= MIN_PSNR[precision]
    crop = np.ascontiguousarray(pairs[0][0][:32, :32])
    assert eng.refine_face(crop, np.ascontiguousarray(got[0][:32, :32])).shape == (32, 32, 3)


def test_forced_openvino_without_precision_takes_the_fastest_unmeasured(demo_bundle):
    eng = load_engine(demo_bundle, "openvino", threads=2)
    assert eng.precision == ("bf16" if BF16 else "int8") and eng.threads == 2


@pytest.mark.parametrize("suffix", [".xml", ".bin"])
def test_tampered_ir_is_refused(demo_bundle, tmp_path, suffix):
    b = copy_bundle(demo_bundle, tmp_path)
    p = b / f"generator{suffix}"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    for backend in ("openvino", "auto"):
        with pytest.raises(DanceNowError, match=f"generator{suffix} does not match the sha256"):
            load_engine(b, backend)


def test_ir_of_another_resolution_is_refused(demo_bundle, tmp_path):
    b = copy_bundle(demo_bundle, tmp_path)
    raw = json.loads((b / MANIFEST).read_text())
    raw["resolution"] = [128, 96]
    for group in ("inputs", "outputs"):
        raw["generator"][group] = {k: [1, 1 if k == "alpha" else 3, 128, 96] for k in raw["generator"][group]}
    (b / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(DanceNowError, match=r"generator.xml takes .* \[1, 3, 256, 192\] but the manifest says \[1, 3, 128, 96\]"):
        load_engine(b, "openvino", precision="fp32")


def test_old_bundle_without_ir_still_loads(demo_bundle, tmp_path, cache, monkeypatch, caplog):
    old = make_old(demo_bundle, tmp_path)
    fp32 = load_engine(old, "openvino", precision="fp32")
    int8 = load_engine(old, "openvino", precision="int8")
    assert (fp32.source, int8.source) == ("generator.onnx", "generator.int8.onnx")
    pairs = choice.synthetic_inputs(fp32.resolution)
    ref = load_engine(old, "onnxruntime", precision="fp32")
    assert choice.psnr([ref.generate(a, b) for a, b in pairs], [fp32.generate(a, b) for a, b in pairs]) >= 50
    caplog.set_level("WARNING", logger="dancenow.engines.loader")
    for backend in ("onnxruntime", "torch"):
        assert load_engine(old, backend).generate(*pairs[0]).shape == (*fp32.resolution, 3)
    assert "TorchScript: a program" in caplog.text  # asked for by name: it runs, and says what it is
    monkeypatch.setattr(choice, "CANDIDATES", FEW)
    auto = load_engine(old)
    assert auto.choice["inputs"].startswith("synthetic") and auto.choice["cached"] is False


def test_cached_bundle_without_ir_is_rebuilt_by_ensure_bundle(demo_bundle, tmp_path):
    from dancenow.demo import assets
    from dancenow.export.bundle_cache import stale_reason
    from dancenow.export.exporter import FORM

    if os.environ.get("DANCENOW_TEST_BUNDLE"):
        pytest.skip("DANCENOW_TEST_BUNDLE is not the demo checkpoint's bundle")
    assert stale_reason(assets.DEMO_CHECKPOINT, demo_bundle) is None
    reason = stale_reason(assets.DEMO_CHECKPOINT, make_old(demo_bundle, tmp_path))
    assert "built without openvino, openvino-int8" in reason
    # a bundle written before v2's head got its inference form (export/phase_head.py) is rebuilt too
    b = tmp_path / "form1"
    shutil.copytree(demo_bundle, b)
    m = read_manifest(b, verify=False)
    m.export.pop("form")
    write_manifest(b, m)
    assert f"older export-engine (form 1 < {FORM})" in stale_reason(assets.DEMO_CHECKPOINT, b)
    m.export["form"] = FORM - 1  # and one quantized before every layer's weights were 7-bit
    write_manifest(b, m)
    assert f"(form {FORM - 1} < {FORM})" in stale_reason(assets.DEMO_CHECKPOINT, b)


# --- auto: picks, remembers, measures again ----------------------------------------------------

def test_auto_picks_remembers_and_remeasures(demo_bundle, cache, monkeypatch, caplog):
    import torch

    def tripwire(*args, **kwargs):
        raise AssertionError("auto loaded the bundle's TorchScript")

    monkeypatch.setattr(torch.jit, "load", tripwire)  # a program from the bundle: auto reads graphs only
    caplog.set_level("INFO", logger="dancenow.engines.choice")
    first = load_engine(demo_bundle)
    c = first.choice
    assert c["cached"] is False and c["inputs"].startswith("samples.npz")
    measured = {(f["backend"], f["precision"]): f for f in c["candidates"]}
    assert {("openvino", "fp32"), ("onnxruntime", "int8"), ("onnxruntime", "fp32")} <= set(measured)
    assert all(backend != "torch" for backend, _ in measured) and not any(k.startswith("torch") for k in c["skipped"])
    assert ("openvino", "bf16") in measured if BF16 else "openvino bf16" in c["skipped"]
    best = measured[(first.name, first.precision)]
    assert best["passed"] and best["median_ms"] == min(f["median_ms"] for f in measured.values() if f["passed"])
    assert all(f["psnr_db"] >= choice.MIN_PSNR[f["precision"]] for f in measured.values() if f["passed"])
    assert "auto: " in caplog.text and " ms" in caplog.text
    files = list(cache.glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["backend"] == first.name
    stamp = files[0].stat().st_mtime_ns

    second = load_engine(demo_bundle)  # remembered: nothing measured, the file untouched
    assert second.choice["cached"] is True and (second.name, second.precision) == (first.name, first.precision)
    assert files[0].stat().st_mtime_ns == stamp

    monkeypatch.setattr(choice, "CANDIDATES", FEW)
    assert load_engine(demo_bundle, threads=2).choice["cached"] is False  # another key: measured again
    other = dict(host.cpu_info(), model="Another CPU", flags=["avx2"])
    monkeypatch.setattr(host, "cpu_info", lambda: other)
    assert load_engine(demo_bundle).choice["cached"] is False
    assert len(list(cache.glob("*.json"))) == 3


@pytest.mark.parametrize("damage", ["not json", '{"version": 1}', "wrong type", "unknown key"])
def test_a_bad_cache_entry_is_measured_again(demo_bundle, cache, monkeypatch, caplog, damage):
    monkeypatch.setattr(choice, "CANDIDATES", FEW[1:])
    path = Path(load_engine(demo_bundle).choice["file"])
    record = json.loads(path.read_text())
    if damage == "wrong type":
        record["candidates"][0]["median_ms"] = "fast"
    elif damage == "unknown key":
        record["surprise"] = True
    path.write_text(damage if damage in ("not json", '{"version": 1}') else json.dumps(record))
    caplog.set_level("WARNING", logger="dancenow.engines.choice")
    again = load_engine(demo_bundle)
    assert again.choice["cached"] is False and "measuring again" in caplog.text
    assert json.loads(path.read_text())["backend"] == again.name  # rewritten, valid


# --- the AVX2 picture on any host -------------------------------------------------------------

def test_bf16_under_an_avx2_cap_is_a_clear_error_and_auto_skips_it(demo_bundle, tmp_path):
    code = f"""
import json
from dancenow.engines import choice, load_engine
from dancenow.errors import DanceNowError
choice.SECONDS, choice.GAP = 0.05, 0.0
choice.CANDIDATES = {FEW!r}
b = {str(demo_bundle)!r}
try:
    load_engine(b, "openvino", precision="bf16")
    forced = "loaded"
except DanceNowError as e:
    forced = str(e)
plain = load_engine(b, "openvino")
auto = load_engine(b)
print(json.dumps({{"forced": forced, "plain": plain.precision, "auto": [auto.name, auto.precision],
                  "skipped": auto.choice["skipped"], "frame": list(plain.generate(*choice.synthetic_inputs(plain.resolution)[0]).shape)}}))
"""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "DANCENOW_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert "OpenVINO bf16 cannot run here" in r["forced"] and "--precision fp32 or int8" in r["forced"]
    assert r["plain"] == "int8" and r["frame"] == [256, 192, 3]
    assert r["auto"][1] != "bf16" and "openvino bf16" in r["skipped"]


def test_quieting_nncf_leaves_other_handlers_alone() -> None:
    """nncf.set_log_level also set every handler on NNCF's logger to ERROR; pytest attaches its
    capture handler there (the logger does not propagate), so no later test saw a warning."""
    import logging

    from dancenow.export.openvino_ir import quiet_nncf

    nncf_log = logging.getLogger("nncf")
    theirs = logging.Handler(logging.NOTSET)
    nncf_log.addHandler(theirs)
    try:
        quiet_nncf()
        assert theirs.level == logging.NOTSET
        assert not nncf_log.isEnabledFor(logging.INFO) and nncf_log.isEnabledFor(logging.ERROR)
    finally:
        nncf_log.removeHandler(theirs)


@pytest.mark.slow
def test_the_hd_generators_int8_keeps_parity_on_a_cpu_without_vnni(tmp_path):
    """NNCF's default INT8 gave the HD demo's 512x384 generator 31.5 dB against fp32 under
    ONEDNN_MAX_CPU_ISA=AVX2 (8-bit weights saturate AVX2's int16 pair sums; 44 dB with VNNI): an
    AVX2 laptop forced to 512 got a grainy picture. Export now quantizes with 7-bit weights."""
    import pickle

    from dancenow.demo.assets import DEMO_HD_CHECKPOINT
    from dancenow.export import openvino_ir
    from dancenow.export.calibration import synthetic
    from dancenow.export.exporter import GEN_IO, MIN_OPSET, to_onnx
    from dancenow.realtime.pose.renderer import RenderConfig
    from dancenow.training.checkpoint import build_generator, load_checkpoint

    ck = load_checkpoint(DEMO_HD_CHECKPOINT)
    generator, size = build_generator(ck), tuple(ck["resolution"])
    calib, held = synthetic(generator, size, RenderConfig.from_dict(ck["renderer"]), None, 12, 4)
    (tmp_path / "generator.onnx").write_bytes(to_onnx(generator, size, GEN_IO, MIN_OPSET, True).SerializeToString())
    openvino_ir.write_fp32(tmp_path / "generator.onnx", tmp_path, "generator", "generator", GEN_IO, size,
                           [], [], 1e-3, 40.0)
    _, report = openvino_ir.write_int8(tmp_path / "generator.xml", tmp_path, "q", "generator", calib.feeds(),
                                       held.feeds(), held.outputs, 30.0, False)
    assert "overflow fix" in report["scheme"]
    (tmp_path / "feeds.pkl").write_bytes(pickle.dumps(held.feeds()))
    code = f"""
import pickle
from pathlib import Path
from dancenow.export.openvino_ir import run_ir
from dancenow.export.parity import parity
d = Path({str(tmp_path)!r})
feeds = pickle.loads((d / "feeds.pkl").read_bytes())
print(parity(run_ir(d / "generator.xml", feeds, "fp32"), run_ir(d / "q.xml", feeds, "int8"))["psnr_db"])
"""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) >= 40.0
