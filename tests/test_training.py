"""Training really learns the synthetic target; checkpoints survive interrupts and damage; prepare's errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from dancenow.errors import DanceNowError
from dancenow.realtime.pose.figure import draw_figure
from dancenow.realtime.pose.pose import Pose
from dancenow.training.checkpoint import build_face, build_generator, load_checkpoint, save_checkpoint
from dancenow.training.networks import Generator
from dancenow.training.prepare import PrepareConfig, load_prepared, prepare
from dancenow.training.profiles import get_profile
from dancenow.training.stages import set_lr
from dancenow.training.trainer import compact_checkpoint, generate_sequence, train

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _body_ssim(frames: np.ndarray, reals: np.ndarray, poses) -> float:
    """Mean SSIM on the crop holding the person in every frame (the static background would dominate)."""
    boxes = np.array([p.bbox() for p in poses])
    h, w = reals.shape[1:3]
    x0, y0 = max(0, int(boxes[:, 0].min()) - 6), max(0, int(boxes[:, 1].min()) - 10)
    x1, y1 = min(w, int(boxes[:, 2].max()) + 6), min(h, int(boxes[:, 3].max()) + 6)
    return float(np.mean([structural_similarity(f[y0:y1, x0:x1], r[y0:y1, x0:x1], channel_axis=2, data_range=255)
                          for f, r in zip(frames, reals, strict=True)]))


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory) -> Path:
    return prepare(None, tmp_path_factory.mktemp("synth") / "data",
                   PrepareConfig(size=(64, 48), frames=60, fps=3.0), synthetic=True)


@pytest.mark.slow
def test_training_learns_the_synthetic_target(tmp_path: Path) -> None:
    """Held-out body SSIM (generated recurrently from a blank first frame) beats the mean
    training frame and the untrained generator."""
    data_dir = prepare(None, tmp_path / "data", PrepareConfig(size=(128, 96), frames=100, fps=5.0), synthetic=True)
    data = load_prepared(data_dir)
    n = data.n_train
    held_labels, held_real = np.asarray(data.labels[n:]), np.asarray(data.frames[n:])
    held_poses = data.poses[n:]
    mean_frame = np.asarray(data.frames[:n]).mean(0).round().astype(np.uint8)
    ssim_mean = _body_ssim(np.broadcast_to(mean_frame, held_real.shape), held_real, held_poses)
    torch.manual_seed(0)
    untrained = Generator(get_profile("cpu-realtime").generator)
    ssim_start = _body_ssim(generate_sequence(untrained, held_labels), held_real, held_poses)

    t0 = time.perf_counter()
    ckpt = train(data_dir, tmp_path / "run", steps=300, face=False, seed=0, progress=False)
    minutes = (time.perf_counter() - t0) / 60
    g = build_generator(load_checkpoint(ckpt))
    ssim_end = _body_ssim(generate_sequence(g, held_labels), held_real, held_poses)
    print(f"held-out body SSIM: mean frame {ssim_mean:.3f}, step 0 {ssim_start:.3f}, "
          f"after 300 steps {ssim_end:.3f} ({minutes:.1f} min)")
    assert ssim_end > ssim_mean + 0.05
    assert ssim_end > ssim_start + 0.2


@pytest.mark.slow
def test_resuming_on_data_drawn_another_way_says_so(tiny_synth: Path, tmp_path: Path) -> None:
    """A run resumed after its data folder was prepared again (the arms now drawn over the torso)
    went on silently, learning two drawings at once: now one line naming what differs, and the
    checkpoint untouched; the same data resumes."""
    import shutil

    run = tmp_path / "run"
    train(tiny_synth, run, steps=2, face_steps=0, progress=False)
    before = (run / "checkpoint.pt").read_bytes()
    for name, change, says in (("redrawn", ("renderer", "arms_over_torso"), r"label maps drawn another way \(arms_over_torso differ\)"),
                               ("other", ("source_sha256", None), "another video")):
        data = shutil.copytree(tiny_synth, tmp_path / name)
        manifest = json.loads((data / "manifest.json").read_text())
        key, sub = change
        if sub:
            manifest[key][sub] = not manifest[key][sub]
        else:
            manifest[key] = "0" * 64
        (data / "manifest.json").write_text(json.dumps(manifest))
        with pytest.raises(DanceNowError, match=f"began on {says}.*new --out folder"):
            train(data, run, steps=4, face_steps=0, progress=False)
        assert (run / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(train(tiny_synth, run, steps=4, face_steps=0, progress=False))["step"] == 4


@pytest.mark.slow
def test_interrupt_resumes_without_losing_steps(tiny_synth: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "dancenow.cli", "train", str(tiny_synth), "--out", str(run),
           "--steps", "40", "--face-steps", "6"]
    p = subprocess.Popen(cmd, cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True)
    seen = ""
    # tqdm skips counts when steps are fast (4/40 then 6/40): interrupt at the first count >= 5
    while not any(int(n) >= 5 for n in re.findall(r"generator:.*?\b(\d+)/40", seen.replace("\r", "\n"))):
        chunk = p.stderr.read(16)
        assert chunk, f"training ended early:\n{seen}"
        seen += chunk
    p.send_signal(signal.SIGINT)
    rest = p.stderr.read()
    assert p.wait(timeout=120) == 130, seen + rest
    interrupted = load_checkpoint(run)
    k = interrupted["step"]
    assert 5 <= k < 40
    assert f"checkpoint saved at step {k}, face step 0 (interrupted)" in rest
    assert list((run / "tb").glob("events.out.tfevents.*")), "TensorBoard event files are written"

    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {run / 'checkpoint.pt'} at step {k}" in done.stderr
    final = load_checkpoint(run)
    assert (final["step"], final["face_step"]) == (40, 6)
    assert final["summary"]["resumed_at"] == [[k, 0]]
    assert build_face(final) is not None and final["face_crop"] == load_prepared(tiny_synth).face_crop
    for key in ("name", "profile", "resolution", "renderer", "pose_stats", "summary", "generator_config"):
        assert final[key], key

    small = compact_checkpoint(run, tmp_path / "small.pt")
    ck = load_checkpoint(small)
    assert "train_state" not in ck and ck["generator"]["model.1.weight"].dtype == torch.float16
    assert small.stat().st_size < (run / "checkpoint.pt").stat().st_size / 2
    data = load_prepared(tiny_synth)
    full, half = build_generator(final), build_generator(ck)
    np.testing.assert_allclose(generate_sequence(half, data.labels[:3]), generate_sequence(full, data.labels[:3]), atol=8)


def test_learning_rate_holds_then_falls_to_zero_over_the_last_half() -> None:
    prof = get_profile("cpu-realtime")
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)

    def lr_at(step: int, total: int = 100) -> float:
        set_lr(prof, step, total, opt)
        return opt.param_groups[0]["lr"]

    assert lr_at(0) == lr_at(49) == prof.lr
    assert lr_at(50) == pytest.approx(prof.lr) and lr_at(75) == pytest.approx(prof.lr / 2)
    assert 0 < lr_at(99) < prof.lr / 40 and [lr_at(s) for s in range(50, 100)] == sorted(lr_at(s) for s in range(50, 100))[::-1]


def test_damaged_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    good = tmp_path / "checkpoint.pt"
    save_checkpoint(good, {"step": 3, "generator": {"w": torch.ones(2)}})
    assert load_checkpoint(good)["step"] == 3
    # A failed save (an object that cannot be pickled) leaves the previous file intact.
    with pytest.raises(Exception):  # noqa: B017
        save_checkpoint(good, {"step": 4, "bad": lambda: None})
    assert load_checkpoint(good)["step"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"], "no temporary file left behind"
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DanceNowError, match="not a readable checkpoint"):
        load_checkpoint(damaged)


def test_prepare_rejects_bad_videos(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DanceNowError, match="missing or empty"):
        prepare(empty, tmp_path / "a")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(DanceNowError, match="not a video|damaged|no frames"):
        prepare(corrupt, tmp_path / "b")
    nobody = tmp_path / "nobody.mp4"
    bg = draw_figure(Pose.missing((128, 96)), (128, 96))
    vw = cv2.VideoWriter(str(nobody), cv2.VideoWriter_fourcc(*"mp4v"), 10, (96, 128))
    for _ in range(12):
        vw.write(cv2.cvtColor(bg, cv2.COLOR_RGB2BGR))
    vw.release()
    with pytest.raises(DanceNowError, match="nobody was found"):
        prepare(nobody, tmp_path / "c")


def test_synthetic_prepare_is_reused_and_consistent(tiny_synth: Path) -> None:
    data = load_prepared(tiny_synth)
    m = data.manifest
    assert data.frames.shape == data.labels.shape == (60, 64, 48, 3)
    assert m["counts"] == {"decoded": 60, "kept": 60, "dropped": 0, "faces": 60}
    assert m["split"] == {"train": 51, "holdout": 9}
    assert m["renderer"]["face_lines"] is False, "the synthetic figure has no face mesh: it keeps the dots"
    assert m["renderer"]["arms_over_torso"] is True
    assert data.pairs(0, data.n_train) == list(range(50))
    mtime = (tiny_synth / "frames.npy").stat().st_mtime_ns
    prepare(None, tiny_synth, PrepareConfig(size=(64, 48), frames=60, fps=3.0), synthetic=True)
    assert (tiny_synth / "frames.npy").stat().st_mtime_ns == mtime, "a second run reuses the folder"
    assert json.loads((tiny_synth / "stats.json").read_text())["frame_size"] == [64, 48]


def test_vgg_loss_from_local_weights_only(tmp_path: Path) -> None:
    from dancenow.training.losses import VGGLoss

    # A torchvision-style vgg19 state dict (random weights: the layout is what is checked).
    convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28]
    chans = [3, 64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512]
    state = {}
    for i, n in enumerate(convs):
        state[f"features.{n}.weight"] = torch.randn(chans[i + 1], chans[i], 3, 3) * 0.05
        state[f"features.{n}.bias"] = torch.zeros(chans[i + 1])
    state["classifier.0.weight"] = torch.zeros(1)
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    vgg = VGGLoss(path)
    a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    assert float(vgg(a, a)) == 0.0 and float(vgg(a, b)) > 0
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(DanceNowError, match="VGG19"):
        VGGLoss(bad)


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tiny_synth: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).parent / "torchrun"
    out = tmp_path / "ddp"
    r = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "dancenow.cli", "train", str(tiny_synth),
                        "--out", str(out), "--steps", "4", "--face-steps", "2"],
                       cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ck = load_checkpoint(out)
    assert (ck["step"], ck["face_step"]) == (4, 2) and ck["summary"]["world_size"] == 2


def test_training_to_a_wall_clock_budget_plans_its_steps_and_keeps_the_plan(tiny_synth: Path, tmp_path: Path) -> None:
    from dancenow.training.trainer import train

    t0 = time.monotonic()
    ckpt = train(tiny_synth, tmp_path / "run", minutes=0.3, progress=False, checkpoint_every=50)
    took = time.monotonic() - t0
    ck = load_checkpoint(ckpt)
    plan = ck["summary"]["budget"]
    print(f"budget 18 s: took {took:.1f} s, plan {plan}")
    assert plan["minutes"] == 0.3 and plan["generator"] > 23 and plan["face"] > 23
    assert plan["generator_it_per_s"] > 0 and plan["face_it_per_s"] > 0  # planned from the measured speed
    assert ck["step"] == plan["generator"] and ck["face_step"] == plan["face"]
    assert 0.6 * 18 < took < 18 + 12  # about the budget (start-up and the last checkpoint on top)
    # run again: the plan is kept, nothing more is trained
    train(tiny_synth, tmp_path / "run", minutes=0.3, progress=False)
    again = load_checkpoint(ckpt)
    assert (again["step"], again["face_step"]) == (ck["step"], ck["face_step"])
    assert again["summary"]["budget"] == plan


def test_a_temporal_face_discriminator_judges_two_consecutive_crops(tiny_synth: Path, tmp_path: Path) -> None:
    """With `face_temporal` the face discriminator takes both frames' label and face crops (12
    channels, t before t+1), trains, and a run begun with the single-frame one is refused."""
    from dataclasses import replace

    from dancenow.training.stages import pairs_for_d

    labels, faces = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2), -torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    d_in = pairs_for_d(labels, faces, 2)  # batch 2, frames t (rows 0-1) then t+1 (rows 2-3)
    assert d_in.shape == (2, 12, 2, 2)
    assert [float(d_in[0, c, 0, 0]) for c in (0, 3, 6, 9)] == [0.0, 2.0, 0.0, -2.0]
    assert pairs_for_d(labels, faces, 1).shape == (4, 6, 2, 2)

    prof = replace(get_profile("cpu-realtime"), face_temporal=True)
    ck = load_checkpoint(train(tiny_synth, tmp_path / "run", prof, steps=2, face_steps=3, progress=False))
    assert ck["face_step"] == 3 and build_face(ck) is not None
    first = next(v for k, v in ck["train_state"]["FD"].items() if k.endswith("weight"))
    assert first.shape[1] == 12, first.shape
    single = tmp_path / "single"
    train(tiny_synth, single, steps=2, face_steps=2, progress=False)
    with pytest.raises(DanceNowError, match="FD differs"):
        train(tiny_synth, single, prof, steps=2, face_steps=4, progress=False)
