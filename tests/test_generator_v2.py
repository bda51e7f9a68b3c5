"""Generator v2: no full-resolution layer (fold / unfold), the person's alpha over the target's
plate, the plate carried by the checkpoint into the exported model, and the background score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from dancenow.errors import DanceNowError
from dancenow.export.exporter import GEN_IO, to_onnx
from dancenow.training import metrics as M
from dancenow.training.checkpoint import build_generator, load_checkpoint, save_checkpoint
from dancenow.training.networks import Generator, GeneratorConfig
from dancenow.training.prepare import PrepareConfig, load_prepared, prepare
from dancenow.training.profiles import get_profile
from dancenow.training.trainer import train

V2 = get_profile("cpu-realtime").generator


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return prepare(None, tmp_path_factory.mktemp("synth") / "data",
                   PrepareConfig(size=(64, 48), frames=40, fps=3.0), synthetic=True)


def _plate(h: int, w: int) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_v2_runs_only_its_output_convolution_at_full_resolution() -> None:
    """Every convolution of the cpu-realtime generator but the last (to 4 channels) runs at half
    resolution or below: a small net's full-resolution layers are what cost the time."""
    g = Generator(V2).eval()
    seen = []
    for m in g.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, i, o: seen.append((mod, o.shape[2])))
    x = torch.zeros(1, 3, 64, 48)
    assert g(x, x).shape == (1, 3, 64, 48)
    head = g.model[-1]  # run on two-pixel strips along the edges only (the phase form, training/phase.py)
    assert head.out_channels == 4 and {id(m) for m, h in seen if h == 64} == {id(head)}
    assert max(h for m, h in seen if m is not head) == 32, seen


def test_alpha_composites_over_the_plate() -> None:
    """With alpha forced to 0 the frame is the plate exactly; forced to 1 it is not."""
    g = Generator(V2).eval()
    plate = _plate(64, 48)
    g.set_plate(plate)
    head = next(m for m in reversed(list(g.modules())) if isinstance(m, torch.nn.Conv2d))
    x = torch.rand(1, 3, 64, 48) * 2 - 1
    with torch.no_grad():
        head.weight[3:] = 0  # output channel 3 is the alpha
        head.bias[3:] = -40.0
        frame, alpha = g.layers(x, x)
        assert float(alpha.max()) < 1e-12
        torch.testing.assert_close(frame, plate, atol=1e-6, rtol=0)
        head.bias[3:] = 40.0
        frame, _ = g.layers(x, x)
        assert float((frame - plate).abs().mean()) > 0.05


def test_mask_loss_pulls_a_saturated_alpha_back() -> None:
    """The trainer's mask loss works on the alpha's logit: where alpha is saturated at 0 inside
    the person (the hole a first v2 left in faces), its gradient is still strong, where an L1 on
    the sigmoid's output gives almost none."""
    from dancenow.training.stages import TemporalPair

    g = Generator(V2)
    g.set_plate(_plate(64, 48))
    head = next(m for m in reversed(list(g.modules())) if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        head.bias[3:] = -20.0
    x = torch.rand(1, 3, 64, 48) * 2 - 1
    _, _, logit, _ = TemporalPair(g, True)(x, x)
    torch.testing.assert_close(torch.sigmoid(logit), g.layers(x, torch.full_like(x, -1.0))[1])
    person = torch.ones_like(logit)
    torch.nn.functional.binary_cross_entropy_with_logits(logit, person).backward(retain_graph=True)
    strong = float(head.bias.grad[3])
    head.bias.grad = None
    torch.nn.functional.l1_loss(torch.sigmoid(logit), person).backward()
    assert strong < -0.9 and abs(float(head.bias.grad[3])) < 1e-6, (strong, float(head.bias.grad[3]))


def test_checkpoint_carries_the_plate_into_the_exported_model(synth: Path, tmp_path: Path) -> None:
    ckpt_path = train(synth, tmp_path / "run", steps=3, face=False, progress=False)
    ckpt = load_checkpoint(ckpt_path)
    # v2 also learns the face crop with its own L1 (v1 trained without it, and still does)
    assert ckpt["summary"]["generator_losses"]["g_face"] > 0
    assert get_profile("cpu-realtime-v1").lambda_face_region == 0.0
    data = load_prepared(synth)
    assert torch.equal(ckpt["plate"], torch.from_numpy(np.array(data.plate)))
    g = build_generator(ckpt)
    want = torch.from_numpy(np.array(data.plate)).permute(2, 0, 1)[None].float() / 127.5 - 1
    torch.testing.assert_close(g.plate, want)
    # The plate is a constant of the exported graph: ONNX Runtime gives PyTorch's frame.
    model = to_onnx(g, data.size, GEN_IO, 17, True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, *data.size) * 2 - 1
    y = sess.run(None, {"pose": x.numpy(), "previous": x.numpy()})[0]
    np.testing.assert_allclose(y, g(x, x).detach().numpy(), atol=1e-4)
    # Without its plate the checkpoint is refused, with a message.
    del ckpt["plate"]
    save_checkpoint(tmp_path / "noplate.pt", ckpt)
    with pytest.raises(DanceNowError, match="plate"):
        build_generator(load_checkpoint(tmp_path / "noplate.pt"))


def test_the_limb_term_weighs_a_band_along_each_forearm(synth: Path, tmp_path: Path) -> None:
    """The forearm L1 (training/stages.py limb_weights) covers each elbow-wrist segment of the
    pose at the frame's size or at half of it, nothing far from it, nothing without a person; a
    run with it on logs the term."""
    from dataclasses import replace

    from dancenow.realtime.pose.pose import Pose
    from dancenow.realtime.pose.skeleton import INDEX
    from dancenow.training.stages import limb_weights

    data = load_prepared(synth)
    pose = data.poses[5]
    h, w = data.size
    for size in ((h, w), (h // 2, w // 2)):
        m = limb_weights([pose, Pose.missing(data.size)], size).numpy()[:, 0]
        assert m.shape == (2, *size) and m[1].max() == 0
        sy, sx = size[0] / pose.frame_size[0], size[1] / pose.frame_size[1]
        for side in ("left", "right"):
            e, wr = pose.points[INDEX[f"{side}_elbow"]], pose.points[INDEX[f"{side}_wrist"]]
            x, y = (e + wr) / 2 * (sx, sy)
            assert m[0, int(y), int(x)] == 1.0, (side, x, y)
        assert 0 < m[0].mean() < 0.1  # a band, not the frame
        ys, xs = np.nonzero(m[0])
        head = pose.points[INDEX["nose"]] * (sx, sy)
        assert np.hypot(xs - head[0], ys - head[1]).min() > 0.04 * size[0]
    prof = replace(get_profile("cpu-realtime"), lambda_limb=20.0)
    ckpt = load_checkpoint(train(synth, tmp_path / "run", prof, steps=3, face=False, progress=False))
    assert ckpt["summary"]["generator_losses"]["g_limb"] > 0


def test_training_an_alpha_generator_on_data_without_a_plate_says_what_to_do(tmp_path: Path) -> None:
    data_dir = prepare(None, tmp_path / "data", PrepareConfig(size=(64, 48), frames=20, fps=3.0, plate=False),
                       synthetic=True)
    with pytest.raises(DanceNowError, match="cpu-realtime-v1"):
        train(data_dir, tmp_path / "run", steps=1, face=False, progress=False)
    # The v1 profile trains on it.
    train(data_dir, tmp_path / "run1", profile="cpu-realtime-v1", steps=1, face=False, progress=False)


def test_background_psnr_ignores_the_grown_person() -> None:
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    person = np.zeros((40, 30), np.float32)
    person[10:20, 10:20] = 1.0
    wrong_person = real.copy()
    wrong_person[8:22, 8:22] = 0  # the person (and 2 px around it) wrong: the room is exact
    assert M.background_psnr(wrong_person, real, person, dilate=3) == M.PSNR_CAP
    assert M.background_psnr(wrong_person, real, person, dilate=1) < 40
    assert M.background_psnr(real, real, np.ones((40, 30)), dilate=1) is None


def test_v1_checkpoints_still_build() -> None:
    """A generator config written before v2 (no fold/alpha keys) builds the v1 network."""
    old = {k: v for k, v in get_profile("cpu-realtime-v1").generator.to_dict().items() if k not in ("fold", "alpha")}
    g = Generator(GeneratorConfig.from_dict(old))
    ckpt = {"generator_config": old, "generator": g.state_dict()}
    assert not build_generator(ckpt).config.alpha


@pytest.fixture(scope="module")
def v2_bundle(synth: Path, tmp_path_factory) -> Path:
    from dancenow.export.exporter import ExportConfig, export

    root = tmp_path_factory.mktemp("v2bundle")
    ckpt = train(synth, root / "run", steps=4, face=False, progress=False)
    export(ckpt, root / "bundle", ExportConfig(formats=("onnx", "openvino"), calib_samples=2, parity_samples=2))
    return root / "bundle"


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch"])
def test_every_cpu_backend_gives_the_alpha_and_other_backgrounds(v2_bundle: Path, backend: str) -> None:
    """The bundle carries the plate; each backend returns the generator's alpha (as PyTorch's),
    and `over` swaps the room for a key colour or an image without touching the fed-back frame."""
    import cv2

    from dancenow.realtime.live.target import KEY_COLOURS, Target

    target = Target.open(v2_bundle, backend=backend, precision="fp32" if backend == "openvino" else None)
    ckpt = load_checkpoint(v2_bundle / "checkpoint.pt")
    np.testing.assert_array_equal(target.plate, ckpt["plate"].numpy())
    rng = np.random.default_rng(0)
    label = rng.integers(0, 256, (*target.resolution, 3), dtype=np.uint8)
    frame = target.generate(label, target.blank())
    alpha = target.engine.alpha
    assert alpha is not None and alpha.shape == target.resolution and alpha.dtype == np.float32
    g = build_generator(ckpt)
    with torch.no_grad():
        x = torch.from_numpy(label).permute(2, 0, 1)[None].float() / 127.5 - 1
        _, want = g.layers(x, torch.full_like(x, -1.0))
    np.testing.assert_allclose(alpha, want[0, 0].numpy(), atol=2e-3)

    assert target.backdrop("plate") is None and target.over(frame, None) is frame
    green = target.over(frame, target.backdrop("green"))
    expect = frame + (1 - alpha[..., None]) * (np.array(KEY_COLOURS["green"], np.float32) - target.plate)
    assert np.abs(green.astype(np.float32) - np.clip(expect, 0, 255)).max() <= 1.0
    image = rng.integers(0, 256, (300, 100, 3), dtype=np.uint8)  # another aspect: cropped, not stretched
    path = v2_bundle.parent / "room.png"
    cv2.imwrite(str(path), image)
    assert target.backdrop(str(path)).shape == (*target.resolution, 3)
    with pytest.raises(DanceNowError, match="not an image|no such file"):
        target.backdrop(str(v2_bundle / "manifest.json"))


@pytest.fixture(scope="module")
def v1_bundle(tmp_path_factory) -> Path:
    """A bundle made before v2: a generator without alpha, no plate."""
    from live_helpers import make_bundle

    return make_bundle(tmp_path_factory.mktemp("v1bundle") / "bundle")


def test_a_target_without_alpha_refuses_another_background(v1_bundle: Path) -> None:
    from dancenow.realtime.live.target import Target

    target = Target.open(v1_bundle, backend="onnxruntime")
    assert target.plate is None and target.backdrop("plate") is None
    with pytest.raises(DanceNowError, match="no alpha"):
        target.backdrop("green")


def test_run_with_a_background_the_target_cannot_take_fails_before_starting(v1_bundle: Path, tmp_path: Path) -> None:
    from dancenow.realtime.run import run

    with pytest.raises(DanceNowError, match="no alpha"):
        run("demo", v1_bundle, out=tmp_path / "x.mp4", seconds=1.0, background="green")
    assert not (tmp_path / "x.mp4").exists()
