"""HD (cpu-hd): v2 at half size inside a full-size enhancer; the coarse-to-fine training stages
and their resume; one bundle with two sizes, the size chosen by measurement; evaluate's
upscaled rows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn.functional import avg_pool2d, interpolate

from dancenow.engines.bundle import read_manifest
from dancenow.engines.sizes import open_sized
from dancenow.errors import DanceNowError
from dancenow.export.exporter import ExportConfig, export
from dancenow.export.phase_head import deploy_form
from dancenow.realtime.live.target import Target
from dancenow.training.checkpoint import build_generator, half_checkpoint, load_checkpoint
from dancenow.training.evaluate import EvalConfig, evaluate
from dancenow.training.networks import Generator, count_gflop
from dancenow.training.prepare import PrepareConfig, load_prepared, prepare
from dancenow.training.profiles import get_profile
from dancenow.training.runtime import Budget
from dancenow.training.trainer import train

HD = get_profile("cpu-hd")
SIZE = (128, 96)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return prepare(None, tmp_path_factory.mktemp("hd") / "data", PrepareConfig(size=SIZE, frames=40, fps=3.0),
                   synthetic=True)


@pytest.fixture(scope="module")
def hd_run(synth: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hd") / "run"
    train(synth, out, profile="cpu-hd", steps=6, enhance_steps=6, face_steps=3, checkpoint_every=4, progress=False)
    return out


@pytest.fixture(scope="module")
def hd_bundle(hd_run: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hd") / "bundle"
    export(hd_run, out, ExportConfig(formats=("onnx", "openvino")))
    return out


def _plate(h: int, w: int) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_hd_runs_one_convolution_at_full_size_and_its_coarse_net_alone_makes_the_half_frame() -> None:
    g = Generator(HD.generator).eval()
    g.set_plate(_plate(*SIZE))
    seen = []
    for m in g.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda mod, i, o: seen.append((o.shape[2], mod.out_channels)))
    x = torch.zeros(1, 3, *SIZE)
    frame, alpha = g.layers(x, x)
    assert frame.shape == (1, 3, *SIZE) and alpha.shape == (1, 1, *SIZE)
    assert [c for h, c in seen if h == SIZE[0]] == [4], seen  # only the enhancer's head
    half = torch.zeros(1, 3, SIZE[0] // 2, SIZE[1] // 2)
    assert g.coarse(half, half).shape == half.shape
    # cheaper than v2 run at the full size (issue 24: thin full-size layers are what cost the time)
    v2 = Generator(get_profile("cpu-realtime").generator).eval()
    assert count_gflop(g, x, x) < count_gflop(v2, x, x)


@pytest.mark.parametrize("residual", [True, False])
def test_the_deployed_form_is_the_same_function(residual: bool) -> None:
    torch.manual_seed(0)
    g = Generator(replace(HD.generator, enhance_residual=residual)).eval()
    g.set_plate(_plate(*SIZE))
    for p in g.parameters():
        p.data += 0.02 * torch.randn_like(p)
    d = deploy_form(g)
    assert type(d).__name__ == "DeployHD"
    x, y = (torch.rand(1, 3, *SIZE) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        for a, b in zip(g.layers(x, y), d.layers(x, y), strict=True):
            assert (a - b).abs().max() < 1e-5


def test_a_residual_enhancer_starts_as_its_half_frame_upscaled() -> None:
    """Before the enhancer stage the full-size frame is the coarse network's, bilinear x2 (its logits
    upscaled, then composited): the enhancer learns only what to add."""
    assert HD.generator.enhance_residual
    torch.manual_seed(0)
    g = Generator(HD.generator).eval()
    g.set_plate(_plate(*SIZE))
    x, y = (torch.rand(1, 3, *SIZE) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        frame, alpha = g.layers(x, y)
        logits = g.coarse._head(g.coarse.model[:-2](avg_pool2d(torch.cat([x, y], 1), 2)))
        up = g._compose(interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False), False)
    assert (frame - up[0]).abs().max() < 1e-4 and (alpha - up[1]).abs().max() < 1e-4
    assert frame.std() > 0.01  # not trivially equal: the coarse network draws something


def test_budget_gives_each_stage_its_share_in_order() -> None:
    b = Budget(10, {}, [("generator", 0.34), ("enhancer", 0.51), ("face", 0.15)], started=0.0)
    assert b.deadline == pytest.approx({"generator": 204.0, "enhancer": 510.0, "face": 600.0})


def test_stages_train_coarse_then_enhancer_with_the_coarse_net_frozen_first(synth: Path, tmp_path: Path) -> None:
    """After the generator stage the coarse net stays fixed while the enhancer learns (fix_global
    1.0), and joins in when it is let go (fix_global 0.0): pix2pixHD's schedule, as a test."""
    fixed = replace(HD, fix_global=1.0)
    train(synth, tmp_path / "a", profile=fixed, steps=4, enhance_steps=0, face=False, progress=False)
    before = load_checkpoint(tmp_path / "a")["generator"]
    train(synth, tmp_path / "a", profile=fixed, steps=4, enhance_steps=4, face=False, progress=False)
    after = load_checkpoint(tmp_path / "a")
    assert (after["step"], after["enhance_step"]) == (4, 4)
    coarse = [k for k in before if k.startswith("coarse.")]
    enhancer = [k for k in before if k.startswith("enhancer.") and before[k].is_floating_point()]
    assert coarse and all(torch.equal(before[k], after["generator"][k]) for k in coarse)
    assert any(not torch.equal(before[k], after["generator"][k]) for k in enhancer)

    # Let go (fix_global 0.0), the coarse trunk trains for the enhancer, and its own head (which the
    # full-size frame never uses) only through the half-size loss: without it the half size drifted.
    # A residual enhancer reads that head's logits, so it then trains through the full-size frame too.
    head = [k for k in coarse if k.startswith(f"coarse.model.{len(Generator(HD.generator).coarse.model) - 1}.")]
    for weight, residual, head_moves in ((0.5, False, True), (0.0, False, False), (0.0, True, True)):
        free = replace(HD, fix_global=0.0, lambda_coarse=weight,
                       generator=replace(HD.generator, enhance_residual=residual))
        run = tmp_path / f"free{weight}{residual}"
        train(synth, run, profile=free, steps=4, enhance_steps=0, face=False, progress=False)
        before = load_checkpoint(run)["generator"]
        train(synth, run, profile=free, steps=4, enhance_steps=4, face=False, progress=False)
        after = load_checkpoint(run)["generator"]
        assert any(not torch.equal(before[k], after[k]) for k in coarse)
        assert head and any(not torch.equal(before[k], after[k]) for k in head) == head_moves, weight


def test_hd_layers_give_the_coarse_networks_own_half_frame() -> None:
    torch.manual_seed(0)
    g = Generator(HD.generator).eval()
    g.set_plate(_plate(*SIZE))
    x, y = (torch.rand(1, 3, *SIZE) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        frame, logit, half, half_logit = g.hd_layers(x, y)
        full = g.layers(x, y, logits=True)
        own = g.coarse.layers(avg_pool2d(x, 2), avg_pool2d(y, 2), logits=True)
    assert torch.allclose(frame, full[0]) and torch.allclose(logit, full[1])
    assert torch.allclose(half, own[0], atol=1e-6) and torch.allclose(half_logit, own[1], atol=1e-6)


def test_hd_checkpoint_resumes_every_stage_and_halves_into_a_v2_checkpoint(hd_run: Path) -> None:
    ck = load_checkpoint(hd_run)
    assert (ck["step"], ck["enhance_step"], ck["face_step"]) == (6, 6, 3)
    assert ck["summary"]["seconds"]["enhancer"] > 0
    half = half_checkpoint(ck)
    assert half["resolution"] == [SIZE[0] // 2, SIZE[1] // 2] and half["face"] is None
    assert tuple(half["plate"].shape) == (SIZE[0] // 2, SIZE[1] // 2, 3)
    stats, full = half["pose_stats"], ck["pose_stats"]
    assert stats["frame_size"] == [SIZE[0] // 2, SIZE[1] // 2]
    assert stats["height_median"] == pytest.approx(full["height_median"] / 2)
    g, coarse = build_generator(half), build_generator(ck).coarse
    x = torch.rand(1, 3, SIZE[0] // 2, SIZE[1] // 2) * 2 - 1
    with torch.no_grad():
        # the same network; only the plate differs, by its rounding to uint8 at half size
        assert (g(x, x) - coarse(x, x)).abs().max() < 2 / 127.5
    with pytest.raises(DanceNowError, match="only an HD checkpoint"):
        half_checkpoint(half)


def test_one_bundle_two_sizes_chosen_by_measurement(hd_bundle: Path, tmp_path: Path) -> None:
    manifest = read_manifest(hd_bundle, verify=True)
    assert manifest.half == "half" and tuple(manifest.resolution) == SIZE
    assert tuple(read_manifest(hd_bundle / "half", verify=True).resolution) == (SIZE[0] // 2, SIZE[1] // 2)
    full = Target.open(hd_bundle, backend="openvino", precision="fp32", size="full")
    half = Target.open(hd_bundle, backend="openvino", size="half")
    assert full.resolution == SIZE and half.resolution == (SIZE[0] // 2, SIZE[1] // 2)
    assert "asked for the half size" in half.size_note
    # auto: the full size when its generator fits the budget here, else the half size, saying why
    engine, note = open_sized(hd_bundle, backend="openvino", size="auto", budget_ms=1e6)
    assert engine.resolution == SIZE and "within" in note and "its face pass" in note  # the face's time counts
    engine, note = open_sized(hd_bundle, backend="openvino", size="auto", budget_ms=0.0)
    assert engine.resolution == (SIZE[0] // 2, SIZE[1] // 2) and "--size full forces it" in note
    # the exported model is the checkpoint's generator at both sizes
    ck = load_checkpoint(hd_bundle / "checkpoint.pt")
    g = build_generator(ck)
    label = np.random.default_rng(0).integers(0, 255, (*SIZE, 3), np.uint8)
    blank = np.zeros((*SIZE, 3), np.uint8)
    with torch.no_grad():
        t = torch.from_numpy(label).permute(2, 0, 1)[None].float() / 127.5 - 1
        ref = g(t, torch.full_like(t, -1.0))[0].permute(1, 2, 0).add(1).mul(127.5).round().clamp(0, 255).byte().numpy()
    out = full.generate(label, blank)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 2
    with pytest.raises(DanceNowError, match="one size only"):
        open_sized(hd_bundle / "half", backend="openvino", size="half")


def test_evaluate_adds_the_upscaled_rows(hd_run: Path, synth: Path, tmp_path: Path) -> None:
    low = prepare(None, tmp_path / "low", PrepareConfig(size=(SIZE[0] // 2, SIZE[1] // 2), frames=40, fps=3.0),
                  synthetic=True)
    run = train(low, tmp_path / "low_run", steps=3, face=False, progress=False)
    report = evaluate(hd_run, synth, tmp_path / "report", config=EvalConfig(detect=False), upscaled=(run, low))
    m = report["methods"]
    assert {"generated", "coarse", "upscaled", "nearest", "real"} <= set(m)
    assert m["coarse"]["body"]["ssim"] != m["generated"]["body"]["ssim"]
    with pytest.raises(DanceNowError, match="splits its clip"):
        other = prepare(None, tmp_path / "other", PrepareConfig(size=(64, 48), frames=30, fps=3.0), synthetic=True)
        evaluate(hd_run, synth, tmp_path / "r2", config=EvalConfig(detect=False), upscaled=(run, other))


def test_the_refined_faces_colour_is_low_passed_and_its_luma_kept() -> None:
    """The face stage painted pink and green speckle on the skin (issue 24): with chroma_sigma the
    refined crop's colour (each channel minus the luma) is the sharp net's colour blurred, the luma as is."""
    from torch.nn.functional import conv2d, pad

    from dancenow.training.networks import LUMA, FaceConfig, FaceGenerator

    torch.manual_seed(0)
    sharp = FaceGenerator(FaceConfig(ngf=8, n_downsample=1, n_blocks=1))
    soft = FaceGenerator(FaceConfig(ngf=8, n_downsample=1, n_blocks=1, chroma_sigma=1.0))
    soft.load_state_dict(sharp.state_dict())  # no weights added: old face checkpoints load as they were
    label, frame = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 0.2
    with torch.no_grad():
        r_sharp, r_soft = sharp(label, frame), soft(label, frame)
    assert r_sharp.abs().max() < 1 and r_soft.abs().max() < 1  # (no clamping to blur the comparison)
    w = torch.tensor(LUMA).view(1, 3, 1, 1)
    luma = lambda r: (r * w).sum(1, keepdim=True)  # noqa: E731
    assert torch.allclose(luma(r_sharp), luma(r_soft), atol=1e-5)
    blurred = conv2d(pad(r_sharp - luma(r_sharp), (2, 2, 2, 2), mode="reflect"), soft.chroma_kernel, groups=3)
    assert torch.allclose(r_soft - luma(r_soft), blurred, atol=1e-5)
    speckle = lambda c: (c[..., 1:, :] - c[..., :-1, :]).abs().mean()  # noqa: E731
    assert speckle(r_soft - luma(r_soft)) < 0.5 * speckle(r_sharp - luma(r_sharp))
    noisy = frame + 0.1 * torch.randn_like(frame)  # the generator's own speckle is smoothed as well
    with torch.no_grad():
        out = soft(label, noisy) - luma(soft(label, noisy))
        assert speckle(out) < 0.5 * speckle(sharp(label, noisy) - luma(sharp(label, noisy)))


def test_the_synthetic_target_takes_the_long_side(tmp_path: Path) -> None:
    """`prepare --synthetic --size 512` made 256x192 data before (the long side was ignored): the HD
    demo target is the synthetic dance rendered at 512."""
    cfg = PrepareConfig(frames=12, fps=3.0, holdout=0.25, plate=False, long_side=512, multiple=16)
    data = prepare(None, tmp_path / "synth512", cfg, synthetic=True)
    assert load_prepared(data).size == (512, 384)


def test_resuming_after_the_profile_changed_says_so(hd_run: Path, synth: Path, tmp_path: Path) -> None:
    """A run begun before the enhancer's discriminator changed width failed with torch's size-mismatch
    traceback when resumed: now one line naming the part and the fix, and the checkpoint untouched."""
    import shutil

    from dancenow.training.discriminator import DiscriminatorConfig

    run = shutil.copytree(hd_run, tmp_path / "run")
    before = (run / "checkpoint.pt").read_bytes()
    other = replace(HD, enhance_discriminator=DiscriminatorConfig(in_channels=12, ndf=8, n_layers=3, num_scales=3))
    with pytest.raises(DanceNowError, match="D2 differs .*use a new --out folder"):
        train(synth, run, profile=other, steps=8, enhance_steps=8, face_steps=4, progress=False)
    assert (run / "checkpoint.pt").read_bytes() == before


def test_the_half_size_can_be_the_same_target_trained_at_half_size(hd_run: Path, tmp_path: Path) -> None:
    """export --half: the HD bundle's half size from a target trained at half the size, with its own
    face stage (the coarse network alone has none: the HD demo's half size was a faceless blur);
    refused at any other size; the demo cache rebuilds when that checkpoint changes."""
    from dancenow.export.bundle_cache import stale_reason
    from dancenow.training.checkpoint import find_checkpoint

    half = (SIZE[0] // 2, SIZE[1] // 2)
    low = prepare(None, tmp_path / "low", PrepareConfig(size=half, frames=40, fps=3.0), synthetic=True)
    low_ck = find_checkpoint(train(low, tmp_path / "low_run", steps=3, face_steps=2, progress=False))
    out = tmp_path / "bundle"
    export(hd_run, out, ExportConfig(formats=("onnx",), half=str(low_ck)))
    small = read_manifest(out / read_manifest(out, verify=True).half, verify=True)
    assert tuple(small.resolution) == half and small.face is not None
    assert stale_reason(find_checkpoint(hd_run), out, formats=("onnx",), half=low_ck) is None
    assert "changed" in stale_reason(find_checkpoint(hd_run), out, formats=("onnx",), half=find_checkpoint(hd_run))
    with pytest.raises(DanceNowError, match="not the .* half"):
        export(hd_run, tmp_path / "bad", ExportConfig(formats=("onnx",), half=str(find_checkpoint(hd_run))))


def test_openvino_folds_each_input_once_as_bytes(hd_bundle: Path) -> None:
    """The deployed HD form folds each image 2x2 into channels (no full-size pooling for the coarse
    net), and the OpenVINO engine does that fold on the uint8 image in one transpose; the frames
    are checked against PyTorch in test_one_bundle_two_sizes_chosen_by_measurement."""
    from dancenow.engines.openvino_engine import image_io, read

    model = read(hd_bundle / "generator.onnx")
    assert "AvgPool" not in {op.get_type_name() for op in model.get_ops()}
    io = image_io(model, ("pose", "previous"), "frame")
    for name in ("pose", "previous"):
        param = io.input(name).get_node()
        assert (param.get_element_type().get_type_name(), list(param.get_output_shape(0))) == ("u8", [1, *SIZE, 3])
        users = [u.get_node().get_type_name() for u in param.output(0).get_target_inputs()]
        assert users == ["Reshape"]  # the fold itself, not a conversion of the whole image to floats first
