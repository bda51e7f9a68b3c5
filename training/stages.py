"""The training stages, each a short function over one small state object (`Run`), so that
`trainer.train` reads top to bottom: set up, then stage after stage.

Stages: "generator" (EDN's temporal generator; for HD the coarse network at half the frame's
size), "enhancer" (HD only: the full-size network, the coarse one frozen for the first
`fix_global` of the stage, then both together: pix2pixHD's schedule), and "face" (the face
residual net on the frozen generator's output).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.functional import avg_pool2d, binary_cross_entropy_with_logits, interpolate, l1_loss

from dancenow.errors import DanceNowError
from dancenow.realtime.pose.face import mouth_box
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.skeleton import FOREARM_LIMBS, HAND_LIMBS, LIMBS
from dancenow.training.face_pixels import upscaled_faces
from dancenow.training.losses import adversarial, discriminator
from dancenow.training.prepare import TargetData
from dancenow.training.profiles import Profile
from dancenow.training.runtime import Budget, Stage, any_rank, wrap_ddp

log = logging.getLogger(__name__)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    t = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)).to(device)
    return t.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


class TemporalPair(nn.Module):
    """EDN's two-frame unrolling in one forward call (so DDP sees one forward per backward)."""

    def __init__(self, generator: nn.Module, temporal: bool, coarse: bool = False):
        super().__init__()
        self.generator, self.temporal, self.coarse = generator, temporal, coarse

    def forward(self, l0: torch.Tensor, l1: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Frames t and t+1, and their alphas' logits (None without alpha); with `coarse` (HD), then
        the coarse network's own half-size frames and logits."""
        blank = torch.full_like(l0, -1.0)
        if self.coarse:
            f0, a0, c0, ca0 = self.generator.hd_layers(l0, blank)
            f1, a1, c1, ca1 = self.generator.hd_layers(l1, f0 if self.temporal else blank)
            return f0, f1, a0, a1, c0, c1, ca0, ca1
        f0, a0 = self.generator.layers(l0, blank, logits=True)
        f1, a1 = self.generator.layers(l1, f0 if self.temporal else blank, logits=True)
        return f0, f1, a0, a1


@dataclass
class Run:
    """What every stage reads: the profile, the data, the device and the run's bookkeeping."""

    prof: Profile
    data: TargetData
    device: torch.device
    world: int
    temporal: bool
    rng: np.random.Generator
    mixed: Callable
    scaler: torch.amp.GradScaler
    vgg: nn.Module | None
    budget: Budget | None
    make_stage: Callable[[str, int, int], Stage]
    stop: Callable[[], bool]
    steps: dict[str, int] = field(default_factory=lambda: {"generator": 0, "enhancer": 0, "face": 0})
    over_plate: np.ndarray | None = None  # the frames to learn with the plate as their room (Profile.plate_target)

    @property
    def real(self) -> np.ndarray:
        """The frames the generator and the face stage learn to make."""
        return self.data.frames if self.over_plate is None else self.over_plate

    def stopped(self) -> bool:
        return any_rank(self.stop(), self.world, self.device)

    def sample(self, pool: list[int]) -> np.ndarray:
        return np.asarray(pool)[self.rng.integers(0, len(pool), self.prof.batch)]

    def images(self, source: np.ndarray, idx: np.ndarray, half: bool) -> torch.Tensor:
        t = to_tensor(source[idx], self.device)
        return avg_pool2d(t, 2) if half else t


def generator_stage(run: Run, name: str, G: nn.Module, D: nn.Module, opt_G: torch.optim.Optimizer,
                    opt_D: torch.optim.Optimizer, total: int, half: bool = False,
                    unfreeze: tuple[nn.Module, float] | None = None) -> tuple[int, bool]:
    """Train `G` (a generator with `layers`) against `D` from run.steps[name] to `total`; with
    `half`, on the data at half size. `unfreeze` = (module, fraction): the module (frozen by the
    caller) joins the training after that fraction of the stage, and then, for HD, the coarse
    network's own half-size frames keep the frame terms (`frame_terms`, weighted by
    `prof.lambda_coarse`) so that the bundle's half size stays good. Returns (total, interrupted)."""
    prof, data = run.prof, run.data
    pairs = data.pairs(0, data.n_train)
    keep_coarse = unfreeze is not None and prof.lambda_coarse > 0 and G.config.enhance
    pair_model = wrap_ddp(TemporalPair(G, run.temporal, keep_coarse), run.world, run.device)
    D_model = wrap_ddp(D, run.world, run.device)
    G.train()
    D.train()
    step = run.steps[name]
    stage = run.make_stage(name, step, total)
    interrupted = False
    while step < total and not (interrupted := run.stopped()):
        joint = unfreeze is not None and step >= unfreeze[1] * total
        if joint:
            unfreeze[0].requires_grad_(True)
        set_lr(prof, step, total, opt_G, opt_D)
        idx = run.sample(pairs)
        l0, l1 = run.images(data.labels, idx, half), run.images(data.labels, idx + 1, half)
        r0, r1 = run.images(run.real, idx, half), run.images(run.real, idx + 1, half)
        with run.mixed():
            f0, f1, a0, a1, *coarse = pair_model(l0, l1)
            if run.temporal:
                fake, real = torch.cat([l0, f0, l1, f1], 1), torch.cat([l0, r0, l1, r1], 1)
            else:
                fake = torch.cat([torch.cat([l0, f0], 1), torch.cat([l1, f1], 1)])
                real = torch.cat([torch.cat([l0, r0], 1), torch.cat([l1, r1], 1)])
            # Generator: fool D, match D's features on the real pair, stay close in L1 (and VGG).
            D.requires_grad_(run.world > 1)  # DDP expects every parameter's gradient; alone, skip D's
            g_gan, g_feat = adversarial(D_model, fake, real, prof.lambda_feat)
            losses = {"g_gan": g_gan, "g_feat": g_feat, **frame_terms(run, idx, (f0, f1, a0, a1), r0, r1, half)}
            if run.vgg is not None:
                losses["g_vgg"] = (run.vgg(f0.float(), r0) + run.vgg(f1.float(), r1)) * prof.lambda_vgg / 2
            if coarse and joint:  # HD: the coarse network's own half-size frames, the same terms
                h0, h1 = avg_pool2d(r0, 2), avg_pool2d(r1, 2)
                losses["g_coarse"] = sum(frame_terms(run, idx, coarse, h0, h1, True).values()) * prof.lambda_coarse
        gan_update(losses, opt_G, D, D_model, fake, real, opt_D, run.scaler, run.mixed, "d")
        step = run.steps[name] = step + 1
        total = replan(run.budget, name, step, total, stage)
        stage.after(step, losses, (l1, f1, r1))
    stage.close()
    return total, interrupted


def frame_terms(run: Run, idx: np.ndarray, out: tuple, r0: torch.Tensor, r1: torch.Tensor,
                half: bool) -> dict[str, torch.Tensor]:
    """The generator's terms on its two frames `out` = (f0, f1, alpha logit 0, alpha logit 1) against
    the real frames r0, r1 of pairs `idx` (at half size with `half`): L1, L1 on the face crop, L1
    on the forearms and hands, and the alpha's cross-entropy to the prepared person mask."""
    prof, data = run.prof, run.data
    f0, f1, a0, a1 = out
    terms = {"g_l1": (l1_loss(f0, r0) + l1_loss(f1, r1)) * prof.lambda_l1 / 2}
    boxes = [data.face_boxes[i + 1] for i in idx]
    if prof.lambda_face_region and all(b is not None for b in boxes):
        boxes = [half_box(b, data.face_crop) for b in boxes] if half else boxes
        terms["g_face"] = l1_loss(cut(f1, boxes), cut(r1, boxes)) * prof.lambda_face_region
    if prof.lambda_limb:
        w = limb_weights([data.poses[i + 1] for i in idx], tuple(f1.shape[-2:])).to(f1.device)
        if float(w.sum()) > 0:
            terms["g_limb"] = (torch.abs(f1 - r1) * w).sum() / (w.sum() * f1.shape[1]) * prof.lambda_limb
    if a0 is not None:  # the alpha learns the prepared person mask (cross-entropy on logits)
        m0, m1 = (masks(run, idx + k, half) for k in (0, 1))
        bce = binary_cross_entropy_with_logits
        terms["g_mask"] = (bce(a0.float(), m0) + bce(a1.float(), m1)) * prof.lambda_mask / 2
    return terms


def face_stage(run: Run, G: nn.Module, F_net: nn.Module, FD: nn.Module, opt_F: torch.optim.Optimizer,
               opt_FD: torch.optim.Optimizer, total: int) -> tuple[int, bool]:
    """The face residual net on the crops of the frozen generator's frames. With
    `prof.face_temporal` its discriminator judges two consecutive crops (frames t and t+1, both cut
    at frame t+1's box, with their labels): EDN's temporal discriminator at the face's own scale,
    so that a mouth or an eye that flickers between frames is judged as fake."""
    prof, data = run.prof, run.data
    with_face = [i for i in data.pairs(0, data.n_train) if data.face_boxes[i + 1] is not None]
    if not with_face:
        raise DanceNowError(f"no face was found in {data.root}'s training frames: train with --no-face")
    G.eval().requires_grad_(False)
    F_model, FD_model = wrap_ddp(F_net, run.world, run.device), wrap_ddp(FD, run.world, run.device)
    frames = (0, 1) if prof.face_temporal else (1,)  # which of the pair's frames the face net refines
    scale = prof.face.scale
    hi = face_targets(data, scale) if scale > 1 else None  # the real crops at the face net's own size
    step = run.steps["face"]
    stage = run.make_stage("face", step, total)
    interrupted = False
    while step < total and not (interrupted := run.stopped()):
        set_lr(prof, step, total, opt_F, opt_FD)
        idx = run.sample(with_face)
        crops = [data.face_boxes[i + 1] for i in idx]
        with torch.no_grad():
            ls = run.images(data.labels, idx, False), run.images(data.labels, idx + 1, False)
            fs = TemporalPair(G, run.temporal)(*ls)[:2]
            lc, gc = (torch.cat([cut(t[k], crops) for k in frames]) for t in (ls, fs))
            rc = (torch.cat([run.images(hi, idx + k, False) for k in frames]) if hi is not None  # only the frames refined
                  else torch.cat([cut(run.images(run.real, idx + k, False), crops) for k in frames]))
        with run.mixed():
            fc = F_model(lc, gc, hi=True)  # the chosen frames stacked along the batch: (len(frames) * B, 3, c, c)
            lc = interpolate(lc, scale_factor=scale, mode="bilinear") if scale > 1 else lc
            FD.requires_grad_(run.world > 1)
            fake, real = pairs_for_d(lc, fc, len(frames)), pairs_for_d(lc, rc, len(frames))
            f_gan, f_feat = adversarial(FD_model, fake, real, prof.lambda_feat)
            losses = {"f_gan": f_gan, "f_feat": f_feat, "f_l1": l1_loss(fc, rc) * prof.lambda_face_l1}
            if prof.lambda_mouth:
                m = torch.cat([mouth_weights(data, idx + k, crops) for k in frames]).to(run.device)
                m = interpolate(m, scale_factor=scale, mode="nearest") if scale > 1 else m
                losses["f_mouth"] = (torch.abs(fc - rc) * m).sum() / (m.sum() * fc.shape[1]).clamp_min(1.0) * prof.lambda_mouth
            if run.vgg is not None:
                losses["f_vgg"] = run.vgg(fc.float(), rc) * prof.lambda_vgg
        gan_update(losses, opt_F, FD, FD_model, fake, real, opt_FD, run.scaler, run.mixed, "fd")
        step = run.steps["face"] = step + 1
        total = replan(run.budget, "face", step, total, stage)
        n = len(idx)
        stage.after(step, losses, (lc[-n:], fc[-n:], rc[-n:]))
    stage.close()
    return total, interrupted


def face_targets(data: TargetData, scale: int) -> np.ndarray:
    """The real face crops at `scale` times the frame's: prepare's, from the footage's own pixels,
    else (an older folder, the synthetic dance) the frame's crops upsampled, said once."""
    have = (data.manifest.get("faces_hi") or {}).get("scale")
    if data.faces_hi is not None and have == scale:
        return data.faces_hi
    if data.manifest.get("synthetic"):  # a drawn figure: its crops upsampled are all there is
        log.info("the synthetic dance's face crops, upsampled %dx, for the face stage", scale)
    else:
        log.warning("%s has no face crops at %dx (%s): the face stage learns from the frames' crops upsampled; "
                    "prepare the video again for the footage's own pixels", data.root, scale,
                    f"it has {have}x" if have else "prepared before them")
    return upscaled_faces(data.frames, data.face_boxes, scale)


def pairs_for_d(labels: torch.Tensor, faces: torch.Tensor, frames: int) -> torch.Tensor:
    """The face discriminator's input: label and face crops side by side, and with two frames
    (stacked along the batch, t first) both frames' labels then both faces (12 channels)."""
    if frames == 1:
        return torch.cat([labels, faces], 1)
    (l0, l1), (f0, f1) = labels.chunk(2), faces.chunk(2)
    return torch.cat([l0, l1, f0, f1], 1)


def mouth_weights(data: TargetData, idx: np.ndarray, crops: list) -> torch.Tensor:
    """(B, 1, crop, crop): 1 around the lips of each frame `idx` inside its face crop, 0
    elsewhere (and all 0 without a mesh): the mouth is a few pixels of the crop, so the crop's L1
    hardly sees whether it opens."""
    c = data.face_crop
    w = torch.zeros(len(idx), 1, c, c)
    for k, (i, (x0, y0, _, _)) in enumerate(zip(idx, crops, strict=True)):
        if (b := mouth_box(data.poses[i], data.size)) is not None:
            w[k, 0, max(0, b[1] - y0):max(0, b[3] - y0), max(0, b[0] - x0):max(0, b[2] - x0)] = 1.0
    return w


# The forearms and hands: a forearm held across the chest covers a few hundred pixels of a
# 256x192 frame, so the frame's L1 barely sees whether it is drawn (it came out as a faint smear).
_FOREARMS = tuple(LIMBS[i] for i in (*FOREARM_LIMBS, *HAND_LIMBS))
LIMB_WIDTH = 0.04  # of the frame's height: the band's width around each segment


def limb_weights(poses: list[Pose], size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) at `size` = (H, W): 1 on a band along each visible forearm and hand of each
    pose, 0 elsewhere (all 0 for a pose without them)."""
    h, w = size
    out = np.zeros((len(poses), 1, h, w), np.float32)
    width = max(2, round(LIMB_WIDTH * h))
    for k, pose in enumerate(poses):
        if not pose.detected:
            continue
        pts, vis = pose.resized((h, w)).points, pose.visible()
        for a, b in _FOREARMS:
            if vis[a] and vis[b]:
                cv2.line(out[k, 0], tuple(int(round(v)) for v in pts[a]), tuple(int(round(v)) for v in pts[b]),
                         1.0, width, cv2.LINE_8)
    return torch.from_numpy(out)


def replan(budget: Budget | None, name: str, step: int, total: int, stage: Stage) -> int:
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


def masks(run: Run, idx: np.ndarray, half: bool = False) -> torch.Tensor:
    """The prepared person masks of frames `idx` as (N, 1, H, W) float in [0, 1]."""
    m = torch.from_numpy(np.asarray(run.data.masks[idx], np.float32)[:, None]).to(run.device)
    return avg_pool2d(m, 2) if half else m


def half_box(box: tuple[int, int, int, int], crop: int) -> tuple[int, int, int, int]:
    """A face box in the half-size frame (same size for every box of a batch)."""
    x0, y0 = box[0] // 2, box[1] // 2
    return x0, y0, x0 + crop // 2, y0 + crop // 2


def cut(t: torch.Tensor, boxes) -> torch.Tensor:
    """The face crops (x0, y0, x1, y1) of a batch."""
    return torch.stack([t[k, :, y0:y1, x0:x1] for k, (x0, y0, x1, y1) in enumerate(boxes)])
