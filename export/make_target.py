"""`dancenow make-target VIDEO --name NAME [--minutes N]`: one command from a video to a named target.

    check the footage ─► prepare ─► train to the time left ─► evaluate ─► export ─► TARGETS/NAME
    (refuse before        (reused     (steps from the          (held-out   (verified    (where `serve
     any training)         when done)  measured speed)          frames)     bundle)      --target NAME` looks)

The footage is checked first, on frames sampled across the whole video, so that a clip the chain
cannot use is refused with a reason a user can act on before any training time is spent: not a
video, too short, nobody in it, the feet out of view, too dark; after preparation, a camera that
moves too much to register. Everything lives in TARGETS/.work/NAME (prepared data, the run, the
report): run the same command again after an interruption and it resumes (preparation reused,
training from its last checkpoint with the plan it made, evaluation and export done again). The
bundle appears in TARGETS/NAME only when it is complete and verified.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dancenow.errors import DanceNowError
from dancenow.files import write_atomic
from dancenow.targets import WORK, check_name, targets_dir

log = logging.getLogger(__name__)

@dataclass
class FootageConfig:
    samples: int = 32  # frames looked at, spread over the whole video
    min_frames: int = 100  # usable frames needed (a few seconds; minutes are better)
    min_person: float = 0.8  # of sampled frames with somebody in them
    min_full_body: float = 0.7  # of sampled frames that show the head and the feet
    min_brightness: float = 35.0  # mean luma, 0-255
    max_unregistered: float = 0.2  # of frames the registration could not hold (after preparation)


@dataclass
class FootageReport:
    frames: int
    seconds: float
    size: tuple[int, int]
    sampled: int
    person: float  # fractions of the sampled frames
    full_body: float
    brightness: float
    problems: list[str] = field(default_factory=list)


def check_footage(video: str | os.PathLike, cfg: FootageConfig | None = None) -> FootageReport:
    """Look at `video` as preparation will, on `cfg.samples` frames; raise a DanceNowError naming
    every problem and its fix, or return what was seen."""
    from dancenow.realtime.media.reader import iter_frames, video_info
    from dancenow.realtime.pose.placement import FULL, seen_view
    from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig

    cfg = cfg or FootageConfig()
    path = Path(video)
    if not path.is_file():
        raise DanceNowError(f"{path}: no such file: give the target video (MP4, MOV, MKV or WebM)")
    if path.stat().st_size == 0:
        raise DanceNowError(f"{path} is empty (0 bytes): record or upload the video again")
    info = video_info(path)  # a file that is not a video is refused here, by decoding its header
    n = info.frames or sum(1 for _ in iter_frames(path, fast=True))  # a container that does not say: count
    if n == 0:
        raise DanceNowError(f"{path} has no video frames that can be decoded: record it again")
    seconds = n / float(info.rate) if info.rate else 0.0
    picks = set(np.linspace(0, n - 1, min(cfg.samples, n)).round().astype(int).tolist())
    seen, full, luma = 0, 0, []
    with PoseTracker(TrackerConfig()) as tracker:
        for f in iter_frames(path, fast=True):
            if f.index not in picks:
                continue
            luma.append(float(np.mean(f.image @ np.array([0.299, 0.587, 0.114]))))
            pose = tracker.track(f.image, f.time)
            if pose.detected:
                seen += 1
                full += seen_view(pose) == FULL
    k = max(1, len(luma))
    report = FootageReport(n, float(seconds), info.size, k, seen / k, full / k, float(np.mean(luma)))
    if n < cfg.min_frames:
        report.problems.append(f"only {n} frames ({seconds:.1f} s): at least {cfg.min_frames} are needed, and a "
                               "minute or more of varied movement makes a better target: record a longer video")
    if report.person < cfg.min_person:
        report.problems.append(f"nobody found in {100 * (1 - report.person):.0f}% of the frames looked at: film one "
                               "person, in view the whole time")
    elif report.full_body < cfg.min_full_body:
        report.problems.append(f"the feet are out of view in {100 * (1 - report.full_body):.0f}% of the frames: "
                               "step back (or move the camera back) until you are in view from head to feet")
    if report.brightness < cfg.min_brightness:
        report.problems.append(f"too dark (mean brightness {report.brightness:.0f} of 255): turn on more light or "
                               "face a window")
    if report.problems:
        raise DanceNowError(f"{path.name} cannot make a target: " + "; ".join(report.problems))
    log.info("footage: %d frames (%.1f s, %dx%d); person in %.0f%%, head to feet in %.0f%% of %d frames looked at; "
             "brightness %.0f", n, seconds, info.size[1], info.size[0], 100 * report.person, 100 * report.full_body,
             k, report.brightness)
    return report


def _check_registration(data_dir: Path, cfg: FootageConfig) -> None:
    manifest = json.loads((data_dir / "manifest.json").read_text())
    reg = (manifest.get("registration") or {})
    kept = max(1, int(manifest["counts"]["kept"]) + int(reg.get("failed", 0)))
    bad = (int(reg.get("failed", 0)) + int(reg.get("unsteady", 0))) / kept
    if bad > cfg.max_unregistered:
        raise DanceNowError(f"the camera moves too much: {100 * bad:.0f}% of the frames could not be registered to a "
                            "steady background: put the camera on a tripod or something steady, and film again")


@dataclass
class MakeTargetConfig:
    minutes: float = 10.0  # the whole chain's wall-clock budget, preparation and export included
    profile: str = "cpu-realtime"
    targets: Path | None = None  # default: targets_dir()
    footage: FootageConfig = field(default_factory=FootageConfig)
    # of the budget kept for evaluation and export, at least `min_reserve` s (Intel Xeon with AMX,
    # dancer A: 4 s and 11 s; slower hosts take longer)
    reserve: float = 0.06
    min_reserve: float = 30.0
    checkpoint_every: int = 100


def make_target(video: str | os.PathLike, name: str, cfg: MakeTargetConfig | None = None) -> Path:
    """Turn `video` into the verified target bundle TARGETS/NAME (see the module docstring);
    returns the bundle's folder. Writes `make-target.json` (the footage verdict, each stage's
    seconds, the evaluation's figures) beside the work."""
    from dancenow.export.exporter import ExportConfig, export
    from dancenow.training.checkpoint import find_checkpoint
    from dancenow.training.evaluate import evaluate
    from dancenow.training.prepare import PrepareConfig, prepare
    from dancenow.training.profiles import get_profile
    from dancenow.training.trainer import train

    cfg = cfg or MakeTargetConfig()
    t0 = time.monotonic()
    name = check_name(name)
    if not cfg.minutes > 0:
        raise DanceNowError(f"--minutes {cfg.minutes}: give a positive number of minutes (10 or more is good)")
    root = targets_dir(cfg.targets)
    work = root / WORK / name
    work.mkdir(parents=True, exist_ok=True)
    status = {"name": name, "video": str(video), "minutes": cfg.minutes, "stages": {}}

    def save(running: str | None) -> None:
        status["running"] = running  # the stage under way (a page shows it); None when finished
        write_atomic(work / "make-target.json", json.dumps(status, indent=1).encode())

    def done(stage: str, since: float, then: str | None, **extra) -> float:
        now = time.monotonic()
        status["stages"][stage] = {"seconds": round(now - since, 1), **extra}
        save(then)
        log.info("make-target %s: %s done in %.1f s", name, stage, now - since)
        return now

    save("check")
    footage = check_footage(video, cfg.footage)
    t = done("check", t0, "prepare", footage=asdict(footage))
    prof = get_profile(cfg.profile)  # prepared at the profile's size (cpu-hd: 512 on the long side)
    data = prepare(video, work / "data", PrepareConfig(long_side=max(prof.size), multiple=prof.generator.factor))
    _check_registration(data, cfg.footage)
    t = done("prepare", t, "train")
    budget = 60.0 * cfg.minutes
    reserve = max(cfg.min_reserve, cfg.reserve * budget)
    left = budget - (t - t0) - reserve
    run = work / "run"
    if left < 30.0 and not (run / "checkpoint.pt").is_file():
        raise DanceNowError(f"--minutes {cfg.minutes:g} leaves {max(0.0, left):.0f} s to train after preparation "
                            f"({t - t0:.0f} s) and export ({reserve:.0f} s): give --minutes "
                            f"{int((t - t0 + reserve + 120) / 60) + 1} or more")
    train(data, run, profile=cfg.profile, minutes=max(left, 1.0) / 60.0, checkpoint_every=cfg.checkpoint_every,
          report=work)
    t = done("train", t, "evaluate")
    report = evaluate(run, data, work / "report")
    gen, near = report["methods"]["generated"]["body"], report["methods"]["nearest"]["body"]
    verdict = {"body_ssim": gen["ssim"], "nearest_pose_ssim": near["ssim"], "beats_nearest_by": gen["ssim"] - near["ssim"]}
    t = done("evaluate", t, "export", **verdict)
    staging = root / WORK / f"{name}.bundle"
    shutil.rmtree(staging, ignore_errors=True)
    export(find_checkpoint(run), staging, ExportConfig(calib=str(data), name=name))
    final = root / name
    old = root / WORK / f"{name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)  # the named target appears complete, or not at all
    shutil.rmtree(old, ignore_errors=True)
    status["seconds"] = round(time.monotonic() - t0, 1)
    done("export", t, None, bundle=str(final))
    better = "beats" if verdict["beats_nearest_by"] > 0 else "does not beat"
    log.info("make-target %s: %s in %.1f min; body SSIM %.3f %s the nearest-pose baseline (%.3f) by %+.3f",
             name, final, status["seconds"] / 60, gen["ssim"], better, near["ssim"], verdict["beats_nearest_by"])
    return final
