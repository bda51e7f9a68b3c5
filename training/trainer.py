"""EDN's training loop: the temporal generator stage, then the face stage with the generator frozen.

Temporal stage (EDN): for consecutive frames t, t+1 the generator makes frame t from a blank
previous frame and frame t+1 from its own frame t, with gradients through both; the 12-channel
multi-scale PatchGAN judges the pair. `temporal=False` trains the plain pix2pixHD generator (the
previous frame is always blank; the discriminator judges single frames). Face stage: the face
residual net refines the crop around the nose of the frozen generator's output. Losses: LSGAN,
feature matching and L1 on the frame (the composite over the plate for alpha generators, whose
alpha also learns the prepared person mask by cross-entropy); Adam with pix2pixHD's linear decay.

The blank previous frame is black (every channel -1 in [-1, 1]; a uint8 zeros image). Both
stages resume from the run folder's checkpoint (saved atomically every `checkpoint_every` steps,
at the end, and on Ctrl-C / SIGTERM). Under `torchrun` each process trains on its own samples
with DistributedDataParallel (gloo on CPU, nccl on CUDA); rank 0 writes checkpoints and logs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from dancenow import host
from dancenow.errors import DanceNowError
from dancenow.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from dancenow.training.discriminator import DiscriminatorConfig, MultiscaleDiscriminator
from dancenow.training.losses import VGGLoss, adversarial, discriminator
from dancenow.training.networks import FaceGenerator, Generator, GeneratorConfig
from dancenow.training.prepare import TargetData, load_prepared
from dancenow.training.profiles import Profile, get_profile
from dancenow.training.runtime import Budget, Stage, StopFlag, any_rank, dist_setup, tensorboard, wrap_ddp

log = logging.getLogger(__name__)
BLANK_PREVIOUS = "black"  # the previous frame for the first frame: a black image (-1 in tensor space)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    t = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)).to(device)
    return t.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """float (N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3)."""
    return t.detach().float().clamp(-1, 1).add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def generate_sequence(generator: nn.Module, labels: np.ndarray, temporal: bool = True,
                      device: torch.device | str = "cpu") -> np.ndarray:
    """Frames for consecutive label maps, generated recurrently from a blank first previous frame."""
    generator.eval()
    out, prev = [], None
    for lab in labels:
        x = to_tensor(lab[None], torch.device(device))
        if prev is None or not temporal:
            prev = torch.full_like(x, -1.0)
        prev = generator(x, prev)
        out.append(to_uint8(prev)[0])
    return np.stack(out)


class TemporalPair(nn.Module):
    """EDN's two-frame unrolling in one forward call (so DDP sees one forward per backward)."""

    def __init__(self, generator: Generator, temporal: bool):
        super().__init__()
        self.generator, self.temporal = generator, temporal

    def forward(self, l0: torch.Tensor, l1: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Frames t and t+1, and their alphas' logits (None without alpha)."""
        blank = torch.full_like(l0, -1.0)
        f0, a0 = self.generator.layers(l0, blank, logits=True)
        f1, a1 = self.generator.layers(l1, f0 if self.temporal else blank, logits=True)
        return f0, f1, a0, a1


def train(data_dir: str | os.PathLike, out: str | os.PathLike, profile: str | Profile = "cpu-realtime",
          steps: int | None = None, face_steps: int | None = None, vgg_weights: str | os.PathLike | None = None,
          seed: int = 0, temporal: bool = True, face: bool = True, *, checkpoint_every: int | None = None,
          log_every: int | None = None, progress: bool = True, bf16: bool = False,
          minutes: float | None = None, report: str | os.PathLike | None = None) -> Path:
    """Train (or resume training) a target; returns the checkpoint path.

    `minutes`: a wall-clock budget instead of step counts: each stage's steps are set from its
    measured speed (`runtime.Budget`; the face stage gets the last 15%). A resumed run keeps the
    plan its first run made. `report`: a folder where each stage keeps progress.json (step, total,
    ETA, losses) and preview.png (label | generated | real) up to date, for a page to show.

    `bf16`: bf16 autocast and channels_last on a CPU with native bf16 (AVX512_BF16 or AMX). Opt-in
    until it is measured on a quiet host: a first 40-step run (on a loaded machine) ended with
    higher losses than fp32, and speed could not be told apart from the load."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    steps = prof.steps if steps is None else steps
    face_steps = (prof.face_steps if face_steps is None else face_steps) if face else 0
    checkpoint_every = checkpoint_every or prof.checkpoint_every
    log_every = log_every or prof.log_every
    data = load_prepared(data_dir)
    factor = prof.generator.factor
    h, w = data.size
    if h % factor or w % factor:
        raise DanceNowError(f"the data's size {h}x{w} is not a multiple of {factor} ({prof.name}): "
                            f"prepare again with --size (both sides multiples of {factor})")
    pairs = data.pairs(0, data.n_train)
    if not pairs:
        raise DanceNowError(f"{data_dir} has no two consecutive training frames: prepare a longer video")

    rank, world, device = dist_setup()
    out = Path(out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT_NAME
    amp = device.type == "cuda"  # fp16 autocast with a gradient scaler on a GPU
    if bf16 and device.type == "cpu" and not host.cpu_info()["bf16"]:
        raise DanceNowError("--bf16 needs a CPU with native bf16 (AVX512_BF16 or AMX); this one would emulate "
                            "it, slowly: train without --bf16")
    low = torch.float16 if amp else torch.bfloat16
    autocast = amp or bool(bf16)

    def mixed() -> torch.autocast:
        return torch.autocast(device.type, dtype=low, enabled=autocast)
    torch.manual_seed(seed * 1000 + rank)
    rng = np.random.default_rng(seed * 1000 + rank)

    G = Generator(prof.generator).to(device)
    if prof.generator.alpha:
        if data.plate is None or data.masks is None:
            raise DanceNowError(f"{data_dir} has no background plate and person masks, which {prof.name}'s generator "
                                "composites over: prepare it again (the plate is built by default), or train with "
                                "--profile cpu-realtime-v1")
        G.set_plate(to_tensor(data.plate[None], device))
    if bf16:
        G.to(memory_format=torch.channels_last)  # oneDNN's bf16 convolutions want NHWC
    d_cfg = prof.discriminator if temporal else DiscriminatorConfig(**{**prof.discriminator.to_dict(), "in_channels": 6})
    D = MultiscaleDiscriminator(d_cfg).to(device)
    if bf16:
        D.to(memory_format=torch.channels_last)
    F_net = FaceGenerator(prof.face).to(device) if face else None
    FD = MultiscaleDiscriminator(prof.face_discriminator).to(device) if face else None
    opt = lambda params: torch.optim.Adam(params, lr=prof.lr, betas=(prof.beta1, 0.999))  # noqa: E731
    opt_G, opt_D = opt(G.parameters()), opt(D.parameters())
    opt_F = opt(F_net.parameters()) if F_net else None
    opt_FD = opt(FD.parameters()) if FD else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    vgg = VGGLoss(vgg_weights).to(device) if vgg_weights else None

    step = face_step = 0
    summary: dict = {}
    if ckpt_path.is_file():
        ck = load_checkpoint(ckpt_path)
        if ck.get("profile") != prof.name or GeneratorConfig.from_dict(ck["generator_config"]) != prof.generator:
            raise DanceNowError(f"{ckpt_path} was trained with another profile ({ck.get('profile')}): use a new --out folder")
        G.load_state_dict(ck["generator"])
        step, face_step, summary = int(ck.get("step", 0)), int(ck.get("face_step", 0)), dict(ck.get("summary") or {})
        ts = ck.get("train_state") or {}
        if "D" in ts:
            D.load_state_dict(ts["D"])
            opt_G.load_state_dict(ts["opt_G"])
            opt_D.load_state_dict(ts["opt_D"])
        if F_net is not None and ck.get("face"):
            F_net.load_state_dict(ck["face"])
            if "FD" in ts:
                FD.load_state_dict(ts["FD"])
                opt_F.load_state_dict(ts["opt_F"])
                opt_FD.load_state_dict(ts["opt_FD"])
        if "scaler" in ts:
            scaler.load_state_dict(ts["scaler"])
        rngs = ts.get("rng", {}).get(str(rank))
        if rngs:
            torch.set_rng_state(rngs["torch"])
            rng.bit_generator.state = rngs["numpy"]
        if rank == 0:
            log.info("resuming %s at step %d, face step %d", ckpt_path, step, face_step)
        summary.setdefault("resumed_at", []).append([step, face_step])

    budget = Budget(minutes, summary, face_share=0.15 if face else 0.0) if minutes else None
    if budget is not None:
        steps, face_steps = budget.total("generator"), budget.total("face") if face else 0
    pair_model = wrap_ddp(TemporalPair(G, temporal), world, device)
    D_model = wrap_ddp(D, world, device)
    writer = tensorboard(out) if rank == 0 else None
    timing = summary.setdefault("seconds", {"generator": 0.0, "face": 0.0})

    def checkpoint(reason: str) -> None:
        if rank != 0:
            return
        rng_states = {str(rank): {"torch": torch.get_rng_state(), "numpy": rng.bit_generator.state}}
        ts = {"D": D.state_dict(), "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
              "scaler": scaler.state_dict(), "rng": rng_states, "discriminator_config": d_cfg.to_dict()}
        if F_net is not None:
            ts.update(FD=FD.state_dict(), opt_F=opt_F.state_dict(), opt_FD=opt_FD.state_dict())
        summary.update(
            profile=prof.name, temporal=temporal, seed=seed, world_size=world, device=str(device),
            blank_previous=BLANK_PREVIOUS, autocast=str(low).split(".")[-1] if autocast else None,
            target_steps=steps, target_face_steps=face_steps,
            vgg=bool(vgg_weights), data={"dir": str(data.root), "source": data.manifest["source"],
                                         "source_sha256": data.manifest["source_sha256"],
                                         "frames": len(data.poses), "train": data.n_train},
        )
        save_checkpoint(ckpt_path, {
            "name": _target_name(data), "profile": prof.name, "resolution": [h, w],
            "generator_config": prof.generator.to_dict(), "generator": G.state_dict(),
            "plate": torch.from_numpy(np.array(data.plate)) if prof.generator.alpha else None,
            "face_config": prof.face.to_dict() if F_net is not None and face_step > 0 else None,
            "face": F_net.state_dict() if F_net is not None and face_step > 0 else None,
            "face_crop": data.face_crop if F_net is not None and face_step > 0 else None,
            "renderer": data.manifest["renderer"], "pose_stats": data.stats,
            "step": step, "face_step": face_step, "summary": summary, "train_state": ts,
        })
        log.info("checkpoint saved at step %d, face step %d (%s): %s", step, face_step, reason, ckpt_path)

    def make_stage(name: str, at: int, total: int) -> Stage:
        return Stage(name, at, total, summary, timing, writer, log_every, prof.image_every, checkpoint_every,
                     checkpoint, progress and rank == 0, Path(report) if report and rank == 0 else None)

    def sample(n: int) -> np.ndarray:
        return np.asarray(pairs)[rng.integers(0, len(pairs), n)]

    interrupted = False
    with StopFlag() as stop:
        # --- stage 1: the (temporal) generator -------------------------------------------------
        if step < steps:
            G.train()
            D.train()
            stage = make_stage("generator", step, steps)
            while step < steps and not (interrupted := any_rank(stop.requested, world, device)):
                set_lr(prof, step, steps, opt_G, opt_D)
                idx = sample(prof.batch)
                l0, l1 = to_tensor(data.labels[idx], device), to_tensor(data.labels[idx + 1], device)
                r0, r1 = to_tensor(data.frames[idx], device), to_tensor(data.frames[idx + 1], device)
                with mixed():
                    f0, f1, a0, a1 = pair_model(l0, l1)
                    if temporal:
                        fake = torch.cat([l0, f0, l1, f1], 1)
                        real = torch.cat([l0, r0, l1, r1], 1)
                    else:
                        fake = torch.cat([torch.cat([l0, f0], 1), torch.cat([l1, f1], 1)])
                        real = torch.cat([torch.cat([l0, r0], 1), torch.cat([l1, r1], 1)])
                    # Generator: fool D, match D's features on the real pair, stay close in L1 (and VGG).
                    D.requires_grad_(world > 1)  # DDP expects every parameter's gradient; alone, skip D's
                    g_gan, g_feat = adversarial(D_model, fake, real, prof.lambda_feat)
                    losses = {"g_gan": g_gan, "g_feat": g_feat,
                              "g_l1": (torch.nn.functional.l1_loss(f0, r0) + torch.nn.functional.l1_loss(f1, r1))
                              * prof.lambda_l1 / 2}
                    boxes = [data.face_boxes[i + 1] for i in idx]
                    if prof.lambda_face_region and all(b is not None for b in boxes):
                        losses["g_face"] = torch.nn.functional.l1_loss(_cut(f1, boxes), _cut(r1, boxes)) \
                            * prof.lambda_face_region
                    if a0 is not None:  # the alpha learns the prepared person mask (cross-entropy on logits)
                        m0, m1 = (_masks(data, idx + k, device) for k in (0, 1))
                        bce = torch.nn.functional.binary_cross_entropy_with_logits
                        losses["g_mask"] = (bce(a0.float(), m0) + bce(a1.float(), m1)) * prof.lambda_mask / 2
                    if vgg is not None:
                        losses["g_vgg"] = (vgg(f0.float(), r0) + vgg(f1.float(), r1)) * prof.lambda_vgg / 2
                gan_update(losses, opt_G, D, D_model, fake, real, opt_D, scaler, mixed, "d")
                step += 1
                steps = _replan(budget, "generator", step, steps, stage)
                stage.after(step, losses, (l1, f1, r1))
            stage.close()

        # --- stage 2: the face residual net, generator frozen -----------------------------------
        if not interrupted and F_net is not None and face_step < face_steps:
            with_face = [i for i in pairs if data.face_boxes[i + 1] is not None]
            if not with_face:
                raise DanceNowError(f"no face was found in {data_dir}'s training frames: train with --no-face")
            G.eval().requires_grad_(False)
            F_model, FD_model = wrap_ddp(F_net, world, device), wrap_ddp(FD, world, device)
            stage = make_stage("face", face_step, face_steps)
            while face_step < face_steps and not (interrupted := any_rank(stop.requested, world, device)):
                set_lr(prof, face_step, face_steps, opt_F, opt_FD)
                idx = np.asarray(with_face)[rng.integers(0, len(with_face), prof.batch)]
                with torch.no_grad():
                    l0, l1 = to_tensor(data.labels[idx], device), to_tensor(data.labels[idx + 1], device)
                    f1 = TemporalPair(G, temporal)(l0, l1)[1]
                    r1 = to_tensor(data.frames[idx + 1], device)
                crops = [data.face_boxes[i + 1] for i in idx]
                lc, gc, rc = (_cut(t, crops) for t in (l1, f1, r1))
                with mixed():
                    fc = F_model(lc, gc)
                    FD.requires_grad_(world > 1)
                    fake, real = torch.cat([lc, fc], 1), torch.cat([lc, rc], 1)
                    f_gan, f_feat = adversarial(FD_model, fake, real, prof.lambda_feat)
                    losses = {"f_gan": f_gan, "f_feat": f_feat,
                              "f_l1": torch.nn.functional.l1_loss(fc, rc) * prof.lambda_face_l1}
                    if vgg is not None:
                        losses["f_vgg"] = vgg(fc.float(), rc) * prof.lambda_vgg
                gan_update(losses, opt_F, FD, FD_model, fake, real, opt_FD, scaler, mixed, "fd")
                face_step += 1
                face_steps = _replan(budget, "face", face_step, face_steps, stage)
                stage.after(face_step, losses, (lc, fc, rc))
            stage.close()
        checkpoint("interrupted" if interrupted else "done")
    if writer:
        writer.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    if interrupted:
        raise KeyboardInterrupt  # the CLI prints "interrupted"; the checkpoint holds every finished step
    return ckpt_path


def _replan(budget: Budget | None, name: str, step: int, total: int, stage: Stage) -> int:
    """The stage's total after `step` under a wall-clock budget: planned once its speed is known,
    cut to `step` when it runs past its deadline."""
    if budget is None:
        return total
    planned = budget.after(name, step)
    if planned is None and budget.over(name) and total > step:
        planned = step  # the machine got slower than measured: the stage ends at its deadline
        budget.plan[name] = step
    if planned is not None:
        stage.set_total(planned)
        return planned
    return total


def set_lr(prof: Profile, step: int, total: int, *optimizers: torch.optim.Optimizer) -> None:
    """pix2pixHD's schedule: the profile's rate, then a linear fall to 0 over the last `lr_decay`
    of the stage. A function of the step alone, so a resumed run follows the same schedule."""
    start = total * (1.0 - prof.lr_decay)
    scale = 1.0 if step < start or total <= start else (total - step) / (total - start)
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = prof.lr * scale


def gan_update(losses: dict[str, torch.Tensor], opt: torch.optim.Optimizer, D: nn.Module, D_model: nn.Module,
               fake: torch.Tensor, real: torch.Tensor, opt_d: torch.optim.Optimizer, scaler, mixed, name: str) -> None:
    """One generator update on the sum of `losses`, then one discriminator update on the same
    (fake, real): real pairs are real, generated pairs (detached) are fake. D's losses are added to
    `losses` as NAME_real and NAME_fake (for the logs)."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(sum(losses.values())).backward()
    scaler.step(opt)
    D.requires_grad_(True)
    with mixed():
        d_real, d_fake = discriminator(D_model, fake, real)
    opt_d.zero_grad(set_to_none=True)
    scaler.scale(0.5 * (d_fake + d_real)).backward()
    scaler.step(opt_d)
    scaler.update()
    losses.update({f"{name}_real": d_real, f"{name}_fake": d_fake})


def _masks(data: TargetData, idx: np.ndarray, device: torch.device) -> torch.Tensor:
    """The prepared person masks of frames `idx` as (N, 1, H, W) float in [0, 1]."""
    return torch.from_numpy(np.asarray(data.masks[idx], np.float32)[:, None]).to(device)


def _cut(t: torch.Tensor, boxes) -> torch.Tensor:
    """The face crops (x0, y0, x1, y1) of a batch."""
    return torch.stack([t[k, :, y0:y1, x0:x1] for k, (x0, y0, x1, y1) in enumerate(boxes)])


def _target_name(data: TargetData) -> str:
    if data.manifest.get("synthetic"):
        return "synthetic"
    return Path(data.manifest["source"]).stem



def compact_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """A shippable copy: generator and face weights in fp16, configs and statistics, no train_state.

    `load_checkpoint` / `build_generator` read it as any checkpoint (weights go back to fp32).
    """
    ck = load_checkpoint(src)
    small = {k: v for k, v in ck.items() if k not in ("train_state", "format")}
    for key in ("generator", "face"):
        if small.get(key):
            small[key] = {k: (v.half() if v.is_floating_point() else v) for k, v in small[key].items()}
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dst, small)
    return dst
