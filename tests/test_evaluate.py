"""evaluate() end to end on a tiny synthetic target with a tiny trained checkpoint (fast)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from dancenow.errors import DanceNowError
from dancenow.realtime.pose.face import face_box
from dancenow.training import evaluate as E
from dancenow.training.discriminator import DiscriminatorConfig
from dancenow.training.networks import FaceConfig, GeneratorConfig
from dancenow.training.prepare import PrepareConfig, load_prepared, prepare
from dancenow.training.profiles import Profile
from dancenow.training.trainer import train

SIZE = (96, 64)


def tiny_profile() -> Profile:
    return Profile(
        name="cpu-realtime", size=SIZE,
        generator=GeneratorConfig(ngf=4, n_downsample=2, n_blocks=1, upsample="resize"),
        face=FaceConfig(ngf=4, n_downsample=1, n_blocks=1),
        discriminator=DiscriminatorConfig(in_channels=12, ndf=8, n_layers=2, num_scales=1),
        face_discriminator=DiscriminatorConfig(in_channels=6, ndf=8, n_layers=1, num_scales=1),
        steps=3, face_steps=2,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = prepare(None, root / "data", PrepareConfig(size=SIZE, frames=16, holdout=0.25), synthetic=True)
    run = root / "run"
    train(data, run, profile=tiny_profile(), seed=0, progress=False)
    return data, run, root


def test_evaluate_writes_a_report_and_contact_sheet(tiny):
    data, run, root = tiny
    report = E.evaluate(run, data, root / "report")
    saved = json.loads((root / "report" / E.REPORT_NAME).read_text())
    assert saved == report  # the JSON on disk is the report returned (no NaN / inf in it)
    assert report["heldout_frames"] == 4 and report["train_frames"] == 12
    assert report["temporal"] is True and report["face"] is True
    m = report["methods"]
    assert set(m) == set(E.METHODS) - {"coarse", "upscaled"}  # those two: HD targets, --upscaled
    for name in ("generated", "nearest", "mean_frame"):
        assert 0.0 < m[name]["body"]["ssim"] < 1.0 and m[name]["body"]["frames"] == 4
        assert m[name]["pose"]["frames"] == 4
    # Real frames score perfectly against themselves and flicker like themselves.
    assert m["real"]["whole"]["ssim"] == pytest.approx(1.0) and m["real"]["flicker_ratio"] == pytest.approx(1.0)
    # The mean frame never changes.
    assert m["mean_frame"]["flicker"] == 0.0
    import cv2

    sheet = cv2.imread(str(root / "report" / E.SHEET_NAME))
    assert sheet.shape == (4 * SIZE[0], 3 * SIZE[1], 3)  # 4 held-out rows of label | generated | real
    table = E.format_table(report)
    assert "nearest pose (baseline)" in table and "generated" in table


class _Recorder:
    """An engine that records what it was fed: checks the recurrence and face refinement order."""

    name, resolution, face_crop = "recorder", SIZE, 16

    def __init__(self):
        self.previous, self.faces, self.count = [], 0, 0

    def generate(self, label_map, previous):
        self.previous.append(previous.copy())
        self.count += 1
        return np.full((*SIZE, 3), self.count * 10, np.uint8)

    def refine_face(self, label_crop, frame_crop):
        self.faces += 1
        return np.zeros_like(frame_crop)


def test_holdout_is_generated_recurrently_with_the_raw_frame_fed_back(tiny):
    data_dir, _, _ = tiny
    data = load_prepared(data_dir)
    eng = _Recorder()
    raw, out = E.generate_holdout(eng, data, temporal=True)
    assert eng.count == 4 and (eng.previous[0] == 0).all()  # a black first previous frame
    for k in range(1, 4):  # then the raw (unrefined) previous output, as the live pipeline does
        assert (eng.previous[k] == raw[k - 1]).all()
    boxes = [face_box(p, SIZE, 16) for p in data.poses[data.n_train:]]
    assert eng.faces == sum(b is not None for b in boxes) > 0
    x0, y0, x1, y1 = next(b for b in boxes if b is not None)
    k = next(i for i, b in enumerate(boxes) if b is not None)
    assert (raw[k, y0:y1, x0:x1] != 0).all()
    assert (out[k, y0 + 2:y1 - 2, x0 + 2:x1 - 2] == 0).all()  # the refined crop inside its feathered edge
    assert out[k, y0, x0].astype(int).min() > raw[k, y0, x0].astype(int).max() // 2  # fading into the frame
    eng = _Recorder()
    E.generate_holdout(eng, data, temporal=False)
    assert all((p == 0).all() for p in eng.previous)  # a plain generator always sees black


def test_bad_inputs_fail_with_a_clear_error(tiny, tmp_path):
    data, run, _ = tiny
    with pytest.raises(DanceNowError, match="export"):
        E.evaluate(run, data, tmp_path, backend="onnxruntime")
    with pytest.raises(DanceNowError, match="not a prepared data folder"):
        E.evaluate(run, tmp_path, tmp_path)
    eng = _Recorder()
    eng.resolution = (128, 64)
    target = SimpleNamespace(engine=eng, training={}, bundle=tmp_path / "bundle")  # what evaluate reads of a Target
    with pytest.raises(DanceNowError, match="trained on"):
        E.evaluate(run, data, tmp_path, target=target)


def test_ablation_trains_three_variants_at_equal_steps_and_tabulates_them(tiny, tmp_path):
    from dancenow.training.ablation import VARIANTS, format_table, run_ablation
    from dancenow.training.checkpoint import load_checkpoint

    data, _, _ = tiny
    result = run_ablation(data, tmp_path, profile=tiny_profile(), seed=0, progress=False,
                          config=E.EvalConfig(detect=False))
    assert list(result["variants"]) == list(VARIANTS)
    ck = {name: load_checkpoint(tmp_path / name.replace("+", "_")) for name in VARIANTS}
    assert all(c["step"] == 3 for c in ck.values())
    assert [c["summary"]["temporal"] for c in ck.values()] == [False, True, True]
    assert [c["face_step"] for c in ck.values()] == [0, 0, 2]
    # (c) is (b)'s generator plus the face stage: the generators are identical.
    g_b, g_c = ck["temporal"]["generator"], ck["temporal+face"]["generator"]
    assert all((g_b[k] == g_c[k]).all() for k in g_b)
    assert [r["face"] for r in result["variants"].values()] == [False, False, True]
    table = format_table(result)
    assert all(name in table for name in VARIANTS) and "mean frame (baseline)" in table
    assert (tmp_path / "ablation.json").is_file()
