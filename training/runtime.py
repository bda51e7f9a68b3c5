"""What a training run needs around its loop: Ctrl-C handling, torchrun set-up, loss means,
TensorBoard. Kept apart so that trainer.py is the model's training loop and little else."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


class StopFlag:
    """Turns Ctrl-C / SIGTERM into a flag the loop checks after each step (then it saves)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, object] = {}

    def __enter__(self) -> StopFlag:
        for s in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def dist_setup() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank when any rank says so (keeps DDP ranks stopping at the same step)."""
    if world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def wrap_ddp(m: nn.Module, world: int, device: torch.device) -> nn.Module:
    if world == 1:
        return m
    return nn.parallel.DistributedDataParallel(m, device_ids=[device.index] if device.type == "cuda" else None)


class Meter:
    """Running means of the losses between log lines."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.n = 0

    def add(self, losses: dict[str, torch.Tensor]) -> None:
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.n += 1

    def means(self) -> dict[str, float]:
        out = {k: v / max(1, self.n) for k, v in self.sums.items()}
        self.sums, self.n = {}, 0
        return out


def tensorboard(out: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tb"))


def grid(label: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """label | generated | real, side by side, CHW in [0, 1] for TensorBoard."""
    return torch.cat([label[0], fake[0], real[0]], dim=2).detach().float().clamp(-1, 1).add(1).div(2).cpu()


class Stage:
    """One training stage's bookkeeping after each step: progress bar, loss means in the summary
    and TensorBoard, the image grid, wall time, and periodic checkpoints."""

    def __init__(self, name: str, step: int, total: int, summary: dict, timing: dict, writer,
                 log_every: int, image_every: int, checkpoint_every: int, checkpoint, progress: bool,
                 report: Path | None = None) -> None:
        from tqdm import tqdm

        self.name, self.total, self.summary, self.timing, self.writer = name, total, summary, timing, writer
        self.report = report  # a folder for progress.json and preview.png (the studio page reads them)
        self.log_every, self.image_every, self.checkpoint_every = log_every, image_every, checkpoint_every
        self.checkpoint = checkpoint
        self.meter, self.t0, self.n0 = Meter(), time.perf_counter(), step
        self.bar = tqdm(total=None if total >= UNPLANNED else total, initial=step, desc=name, unit="step",
                        disable=not progress)  # no total while a wall-clock budget is still measuring

    def after(self, step: int, losses: dict[str, torch.Tensor], images) -> None:
        """Account for finished step `step`; `images` = (label, generated, real) batches for the grid."""
        self.meter.add({k: v.detach() for k, v in losses.items()})
        self.bar.update(1)
        if step % self.log_every == 0 or step == self.total:
            means = self.meter.means()
            rate = (step - self.n0) / max(1e-9, time.perf_counter() - self.t0)
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in means.items()})
            self.summary[f"{self.name}_losses"], self.summary[f"{self.name}_it_per_s"] = means, round(rate, 3)
            if self.report is not None:
                self._report(step, rate, means)
            if self.writer:
                for k, v in means.items():
                    self.writer.add_scalar(f"{self.name}/{k}", v, step)
                self.writer.add_scalar(f"{self.name}/it_per_s", rate, step)
        if step % self.image_every == 0 or step == self.total or step == self.n0 + 1:
            if self.writer:
                self.writer.add_image(f"{self.name}/label|generated|real", grid(*images), step)
            if self.report is not None:
                self._preview(grid(*images))
        if step % self.checkpoint_every == 0 and step < self.total:
            self.timing[self.name] += time.perf_counter() - self.t0
            self.t0, self.n0 = time.perf_counter(), step
            self.checkpoint("periodic")

    def _report(self, step: int, rate: float, losses: dict[str, float]) -> None:
        from dancenow.files import write_atomic

        total = None if self.total >= UNPLANNED else self.total
        eta = (total - step) / rate if total and rate > 0 else None
        write_atomic(self.report / "progress.json", json.dumps(
            {"stage": self.name, "step": step, "total": total, "it_per_s": round(rate, 3),
             "eta_s": None if eta is None else round(eta, 1), "losses": {k: round(v, 4) for k, v in losses.items()},
             "time": time.time()}).encode())

    def _preview(self, image: torch.Tensor) -> None:
        import cv2

        from dancenow.files import write_atomic

        rgb = image.mul(255).round().byte().permute(1, 2, 0).numpy()
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if ok:
            write_atomic(self.report / "preview.png", png.tobytes())

    def set_total(self, total: int) -> None:
        """The stage's step count changed (a wall-clock budget planned it)."""
        self.total = total
        self.bar.total = total
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()
        self.timing[self.name] += time.perf_counter() - self.t0


UNPLANNED = 10**9  # a stage's step count before its speed was measured (the rate stays flat meanwhile)


class Budget:
    """Training to a wall-clock budget (`train --minutes N`): each stage times its first `probe`
    steps (after `warmup` more) and then sets its step count so that it ends at its deadline: the
    generator at (1 - face_share) of the budget, the face stage at its end. A stage still running
    past its deadline (the machine got slower) stops there. The plan lives in the run's summary,
    so a run killed and started again keeps its step counts (and the learning-rate schedule)."""

    def __init__(self, minutes: float, summary: dict, shares: list[tuple[str, float]], probe: int = 20,
                 warmup: int = 3, started: float | None = None) -> None:
        """`shares`: each stage's name and share of the budget, in the order they run."""
        if not minutes > 0:
            raise ValueError(f"--minutes must be above 0, got {minutes}")
        self.plan = summary.setdefault("budget", {"minutes": minutes, **{name: None for name, _ in shares}})
        self.probe, self.warmup = probe, warmup
        self.margin = 0.9
        now = time.monotonic() if started is None else started
        seconds, end = 60.0 * minutes, 0.0
        self.deadline = {}
        for name, share in shares:
            end += share
            self.deadline[name] = now + seconds * end
        self._t: dict[str, tuple[int, float]] = {}

    def total(self, stage: str) -> int:
        """The stage's step count: planned, or UNPLANNED until its speed is known."""
        return self.plan.get(stage) or UNPLANNED

    def after(self, stage: str, step: int) -> int | None:
        """Call after each step; returns the stage's new total once, when it is planned."""
        if self.plan.get(stage):
            return None
        now = time.monotonic()
        start, t0 = self._t.setdefault(stage, (step + self.warmup, None))
        if t0 is None:  # the first steps allocate and pick kernels: the clock starts after them
            if step >= start:
                self._t[stage] = (step, now)
            return None
        if step - start < self.probe:
            return None
        rate = (step - start) / max(1e-6, now - t0)
        # the probe saw no checkpoint, image grid or progress write: plan on 90% of its speed (a 10
        # minute run planned on the full speed was cut at its deadline 9% short of its plan)
        self.plan[stage] = step + max(1, int(self.margin * rate * max(0.0, self.deadline[stage] - now)))
        self.plan[f"{stage}_it_per_s"] = round(rate, 3)
        return self.plan[stage]

    def over(self, stage: str) -> bool:
        return time.monotonic() > self.deadline[stage]
