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
from dancenow.training.background import load_changing
from dancenow.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from dancenow.training.discriminator import DiscriminatorConfig, MultiscaleDiscriminator
from dancenow.training.losses import VGGLoss
from dancenow.training.networks import FaceGenerator, Generator, GeneratorConfig
from dancenow.training.plate import changing_room, describe_region, over_plate
from dancenow.training.prepare import TargetData, load_prepared
from dancenow.training.profiles import Profile, get_profile
from dancenow.training.runtime import Budget, Stage, StopFlag, dist_setup, tensorboard
from dancenow.training.stages import Run, face_stage, generator_stage, to_tensor

log = logging.getLogger(__name__)
BLANK_PREVIOUS = "black"  # the previous frame for the first frame: a black image (-1 in tensor space)


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


def train(data_dir: str | os.PathLike, out: str | os.PathLike, profile: str | Profile = "cpu-realtime",
          steps: int | None = None, face_steps: int | None = None, vgg_weights: str | os.PathLike | None = None,
          seed: int = 0, temporal: bool = True, face: bool = True, *, checkpoint_every: int | None = None,
          log_every: int | None = None, progress: bool = True, bf16: bool = False,
          minutes: float | None = None, report: str | os.PathLike | None = None,
          enhance_steps: int | None = None) -> Path:
    """Train (or resume training) a target; returns the checkpoint path.

    `minutes`: a wall-clock budget instead of step counts: each stage's steps are set from its
    measured speed (`runtime.Budget`; the face stage gets the last `prof.face_share`). A resumed run keeps the
    plan its first run made. `report`: a folder where each stage keeps progress.json (step, total,
    ETA, losses) and preview.png (label | generated | real) up to date, for a page to show.

    `bf16`: bf16 autocast and channels_last on a CPU with native bf16 (AVX512_BF16 or AMX). Opt-in
    until it is measured on a quiet host: a first 40-step run (on a loaded machine) ended with
    higher losses than fp32, and speed could not be told apart from the load."""
    prof = get_profile(profile) if isinstance(profile, str) else profile
    hd = prof.generator.enhance
    steps_gen = prof.steps if steps is None else steps
    enhance_steps = (prof.enhance_steps if enhance_steps is None else enhance_steps) if hd else 0
    face_steps = (prof.face_steps if face_steps is None else face_steps) if face else 0
    checkpoint_every = checkpoint_every or prof.checkpoint_every
    log_every = log_every or prof.log_every
    data = load_prepared(data_dir)
    factor = prof.generator.factor
    h, w = data.size
    if h % factor or w % factor:
        raise DanceNowError(f"the data's size {h}x{w} is not a multiple of {factor} ({prof.name}): "
                            f"prepare again with --size (both sides multiples of {factor})")
    if not data.pairs(0, data.n_train):
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
    d2_cfg = DiscriminatorConfig(**{**prof.enhance_discriminator.to_dict(), "in_channels": d_cfg.in_channels})
    D2 = MultiscaleDiscriminator(d2_cfg).to(device) if hd else None  # HD: judges the full-size frames
    for d in (D, D2):
        if bf16 and d is not None:
            d.to(memory_format=torch.channels_last)
    F_net = FaceGenerator(prof.face).to(device) if face else None
    fd_cfg = DiscriminatorConfig(**{**prof.face_discriminator.to_dict(), "in_channels": 12 if prof.face_temporal else 6})
    FD = MultiscaleDiscriminator(fd_cfg).to(device) if face else None
    opt = lambda params: torch.optim.Adam(params, lr=prof.lr, betas=(prof.beta1, 0.999))  # noqa: E731
    opt_G, opt_D = opt((G.coarse if hd else G).parameters()), opt(D.parameters())
    opt_E, opt_D2 = (opt(G.parameters()), opt(D2.parameters())) if hd else (None, None)
    opt_F = opt(F_net.parameters()) if F_net else None
    opt_FD = opt(FD.parameters()) if FD else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    vgg = VGGLoss(vgg_weights).to(device) if vgg_weights else None
    objects = {"D": D, "opt_G": opt_G, "opt_D": opt_D, "scaler": scaler, "D2": D2, "opt_E": opt_E, "opt_D2": opt_D2,
               "FD": FD, "opt_F": opt_F, "opt_FD": opt_FD}

    steps = {"generator": 0, "enhancer": 0, "face": 0}
    summary: dict = {}
    if ckpt_path.is_file():
        ck = load_checkpoint(ckpt_path)
        if ck.get("profile") != prof.name or GeneratorConfig.from_dict(ck["generator_config"]) != prof.generator:
            raise DanceNowError(f"{ckpt_path} was trained with another profile ({ck.get('profile')}): use a new --out folder")
        if drift := data_drift(ck, data):
            raise DanceNowError(f"{ckpt_path} began on {drift}: resume with the data it began on, or use a new --out "
                                "folder (the run's checkpoint is left as it is)")
        G.load_state_dict(ck["generator"])
        steps.update(generator=int(ck.get("step", 0)), enhancer=int(ck.get("enhance_step", 0)),
                     face=int(ck.get("face_step", 0)))
        summary = dict(ck.get("summary") or {})
        ts = ck.get("train_state") or {}
        for key, obj in objects.items():  # the face stage's optimizers only once it has trained
            if key in ts and obj is not None and (key not in ("FD", "opt_F", "opt_FD") or ck.get("face")):
                try:
                    obj.load_state_dict(ts[key])
                except (RuntimeError, ValueError) as e:  # shapes changed: a profile changed since this run began
                    raise DanceNowError(f"{ckpt_path} cannot be resumed with today's {prof.name} profile: its {key} "
                                        f"differs ({str(e).splitlines()[-1].strip()[:160]}): use a new --out folder "
                                        "(the run's checkpoint is left as it is)") from None
        if F_net is not None and ck.get("face"):
            F_net.load_state_dict(ck["face"])
        rngs = ts.get("rng", {}).get(str(rank))
        if rngs:
            torch.set_rng_state(rngs["torch"])
            rng.bit_generator.state = rngs["numpy"]
        if rank == 0:
            log.info("resuming %s at step %d, face step %d%s", ckpt_path, steps["generator"], steps["face"],
                     f", enhancer step {steps['enhancer']}" if hd else "")
        summary.setdefault("resumed_at", []).append([steps["generator"], steps["face"]])

    face_share = prof.face_share if face else 0.0
    shares = [("generator", prof.coarse_share), ("enhancer", 1 - prof.coarse_share)] if hd else [("generator", 1.0)]
    budget = Budget(minutes, summary, [(n, f * (1 - face_share)) for n, f in shares] + [("face", face_share)]) \
        if minutes else None
    totals = {"generator": steps_gen, "enhancer": enhance_steps, "face": face_steps}
    if budget is not None:
        totals = {"generator": budget.total("generator"), "enhancer": budget.total("enhancer") if hd else 0,
                  "face": budget.total("face") if face else 0}
    writer = tensorboard(out) if rank == 0 else None
    timing = summary.setdefault("seconds", {"generator": 0.0, "face": 0.0})
    timing.setdefault("enhancer", 0.0)

    def checkpoint(reason: str) -> None:
        if rank != 0:
            return
        ts = {k: v.state_dict() for k, v in objects.items() if v is not None}
        ts.update(rng={str(rank): {"torch": torch.get_rng_state(), "numpy": rng.bit_generator.state}},
                  discriminator_config=d_cfg.to_dict())
        summary.update(
            profile=prof.name, temporal=temporal, seed=seed, world_size=world, device=str(device),
            blank_previous=BLANK_PREVIOUS, autocast=str(low).split(".")[-1] if autocast else None,
            target_steps=totals["generator"], target_enhance_steps=totals["enhancer"], target_face_steps=totals["face"],
            vgg=bool(vgg_weights), data={"dir": str(data.root), "source": data.manifest["source"],
                                         "source_sha256": data.manifest["source_sha256"],
                                         "frames": len(data.poses), "train": data.n_train},
        )
        with_face = F_net is not None and steps["face"] > 0
        save_checkpoint(ckpt_path, {
            "name": _target_name(data), "profile": prof.name, "resolution": [h, w],
            "generator_config": prof.generator.to_dict(), "generator": G.state_dict(),
            "plate": torch.from_numpy(np.array(data.plate)) if prof.generator.alpha else None,
            "face_config": prof.face.to_dict() if with_face else None,
            "face": F_net.state_dict() if with_face else None,
            "face_crop": data.face_crop if with_face else None,
            "renderer": data.manifest["renderer"], "pose_stats": data.stats,
            "step": steps["generator"], "enhance_step": steps["enhancer"], "face_step": steps["face"],
            "summary": summary, "train_state": ts,
        })
        log.info("checkpoint saved at step %d, face step %d%s (%s): %s", steps["generator"], steps["face"],
                 f", enhancer step {steps['enhancer']}" if hd else "", reason, ckpt_path)

    def make_stage(name: str, at: int, total: int) -> Stage:
        return Stage(name, at, total, summary, timing, writer, log_every, prof.image_every, checkpoint_every,
                     checkpoint, progress and rank == 0, Path(report) if report and rank == 0 else None)

    with StopFlag() as stop:
        run = Run(prof, data, device, world, temporal, rng, mixed, scaler, vgg, budget, make_stage,
                  lambda: stop.requested, steps, over_plate=plate_targets(prof, data))
        interrupted = False
        if steps["generator"] < totals["generator"]:  # the generator (HD: the coarse one, at half size)
            totals["generator"], interrupted = generator_stage(
                run, "generator", G.coarse if hd else G, D, opt_G, opt_D, totals["generator"], half=hd)
        if hd and not interrupted and steps["enhancer"] < totals["enhancer"]:  # HD: the enhancer, then both
            G.coarse.requires_grad_(False)
            totals["enhancer"], interrupted = generator_stage(
                run, "enhancer", G, D2, opt_E, opt_D2, totals["enhancer"], unfreeze=(G.coarse, prof.fix_global))
        if not interrupted and F_net is not None and steps["face"] < totals["face"]:
            totals["face"], interrupted = face_stage(run, G, F_net, FD, opt_F, opt_FD, totals["face"])
        checkpoint("interrupted" if interrupted else "done")
    if writer:
        writer.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    if interrupted:
        raise KeyboardInterrupt  # the CLI prints "interrupted"; the checkpoint holds every finished step
    return ckpt_path


def data_drift(ck: dict, data: TargetData) -> str | None:
    """What differs between the data checkpoint `ck` began on and `data` (None: nothing). A run
    resumed on label maps drawn another way would learn two drawings at once, while its bundle
    records only the last one for the live loop to draw."""
    began = (ck.get("summary") or {}).get("data") or {}
    old_sha, new_sha = began.get("source_sha256"), data.manifest["source_sha256"]
    if old_sha and old_sha != new_sha:
        return f"another video (sha256 {old_sha[:12]}..., the data's is {new_sha[:12]}...)"
    old, new = ck.get("renderer"), data.manifest["renderer"]
    if isinstance(old, dict) and old != new:
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return f"label maps drawn another way ({', '.join(keys)} differ)"
    return None


def plate_targets(prof: Profile, data: TargetData) -> np.ndarray | None:
    """The frames over their plate where the profile learns those and the data has a plate: all
    of the room where the camera moved; on a tripod (its frames already show the plate's room) only
    where prepare --clean-room painted a changing room out of the plate; None where the frames are
    learnt as they are."""
    if not prof.plate_target or data.plate is None or data.masks is None or data.manifest.get("synthetic"):
        return None
    radius = int(data.manifest["plate"]["dilate_px"])
    if not (data.manifest.get("registration") or {}).get("still", True):
        log.info("the camera moved in %s: learning its frames over the background plate", data.root)
        return over_plate(data.frames, data.masks, data.plate, radius)
    if not data.manifest["plate"].get("painted"):  # prepare --clean-room painted a changing room out of the plate
        return None
    where = load_changing(data.root, data.manifest, f"prepare {data.root} again")
    if where is None:  # a folder prepared before prepare kept the mask: find it again
        where = changing_room(data.frames, data.masks, data.plate, radius)
    if not where.any():
        return None
    log.info("the room changes with nobody there in %s (%s): learning the plate there", data.root,
             describe_region(where))
    return over_plate(data.frames, data.masks, data.plate, radius, where)


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
