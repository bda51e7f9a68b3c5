"""Score a trained target on its held-out frames, as EDN did, with baselines beside it.

The held-out frames (the prepared folder's contiguous tail) are generated as in live use: one
after the other, each with the previous generated frame fed back (a black frame first; always
black for a generator trained without temporal smoothing), then the face crop refined when the
target has a face stage. Every measure is also taken for the two baselines (the mean training
frame; the training frame with the closest pose) and, for pose and flicker, for the real frames,
so each number has something to beat and a ceiling.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dancenow.errors import DanceNowError
from dancenow.files import write_atomic
from dancenow.realtime.pose.face import face_box, paste_face
from dancenow.training import metrics as M
from dancenow.training.prepare import TargetData, load_prepared

log = logging.getLogger(__name__)
METHODS = ("generated", "coarse", "upscaled", "nearest", "mean_frame", "real")
REPORT_NAME, SHEET_NAME = "report.json", "contact_sheet.png"


@dataclass
class EvalConfig:
    body_pad: float = 0.1  # body crop: pose box grown by this x its height on each side
    sheet_frames: int = 6  # rows in the contact sheet
    detect: bool = True  # run MediaPipe on the outputs (pose consistency)
    background_dilate: int = 8  # background PSNR: outside the prepared person mask grown by this many px


class CheckpointGenerator:
    """A checkpoint's generator and face net behind the engine calls evaluate uses
    (`generate(label_map, previous)`, `refine_face(label_crop, frame_crop)`, `face_crop`)."""

    name, device, precision = "torch-checkpoint", "cpu", "fp32"

    def __init__(self, ckpt: dict):
        from dancenow.training.checkpoint import build_face, build_generator

        self.generator, self.face = build_generator(ckpt), build_face(ckpt)
        self.face_crop = int(ckpt["face_crop"]) if self.face is not None and ckpt.get("face_crop") else None
        self.resolution = tuple(int(v) for v in ckpt["resolution"])
        self.temporal = bool((ckpt.get("summary") or {}).get("temporal", True))

    def _run(self, net, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import torch

        from dancenow.training.trainer import to_tensor, to_uint8

        with torch.inference_mode():
            return to_uint8(net(to_tensor(a[None], torch.device("cpu")), to_tensor(b[None], torch.device("cpu"))))[0]

    def generate(self, label_map: np.ndarray, previous: np.ndarray) -> np.ndarray:
        return self._run(self.generator, label_map, previous)

    def refine_face(self, label_crop: np.ndarray, frame_crop: np.ndarray) -> np.ndarray:
        return frame_crop if self.face is None else self._run(self.face, label_crop, frame_crop)


def generate_holdout(engine, data: TargetData, temporal: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(raw, output) frames for the held-out tail, generated recurrently as the live pipeline does:
    the raw frame is fed back, the output has the face crop refined."""
    h, w = data.size
    black = np.zeros((h, w, 3), np.uint8)
    previous = black
    raw, out = [], []
    for i in range(data.n_train, len(data.poses)):
        label = np.ascontiguousarray(data.labels[i])
        frame = engine.generate(label, previous if temporal else black)
        previous = frame
        raw.append(frame)
        box = face_box(data.poses[i], (h, w), engine.face_crop) if engine.face_crop else None
        out.append(paste_face(frame, label, box, engine.refine_face))
    return np.stack(raw), np.stack(out)


def upscaled_holdout(run: str | os.PathLike, data_dir: str | os.PathLike, like: TargetData) -> np.ndarray:
    """A lower-resolution target's held-out frames (from its own prepared data: the same clip and
    split at its size), upscaled bicubic to `like`'s size: the baseline an HD target must beat."""
    import cv2

    from dancenow.training.checkpoint import load_checkpoint

    low = load_prepared(data_dir)
    if (low.n_train, len(low.poses)) != (like.n_train, len(like.poses)):
        raise DanceNowError(f"{data_dir} splits its clip as {low.n_train} + {len(low.poses) - low.n_train} frames, "
                            f"{like.root} as {like.n_train} + {len(like.poses) - like.n_train}: prepare both from "
                            "the same clip with the same --holdout")
    engine = CheckpointGenerator(load_checkpoint(run))
    if tuple(engine.resolution) != tuple(low.size):
        raise DanceNowError(f"{run} generates {engine.resolution} but {data_dir} is {low.size}: pass the data it was trained on")
    _, frames = generate_holdout(engine, low, engine.temporal)
    h, w = like.size
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in frames])


def coarse_holdout(generator, data: TargetData, temporal: bool) -> np.ndarray:
    """An HD target's own half-size frame (its coarse network alone, as a slow host runs it, on the
    label maps at half size), upscaled bicubic to the full size."""
    import cv2
    import torch

    from dancenow.training.stages import to_tensor
    from dancenow.training.trainer import to_uint8

    h, w = data.size
    previous = torch.full((1, 3, h // 2, w // 2), -1.0)
    out = []
    with torch.inference_mode():
        for i in range(data.n_train, len(data.poses)):
            label = cv2.resize(np.asarray(data.labels[i]), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            frame = generator(to_tensor(label[None], torch.device("cpu")), previous)
            previous = frame if temporal else torch.full_like(frame, -1.0)
            out.append(cv2.resize(to_uint8(frame)[0], (w, h), interpolation=cv2.INTER_CUBIC))
    return np.stack(out)


def score(frames: np.ndarray, data: TargetData, cfg: EvalConfig, poses_found=None) -> dict:
    """Every measure of `frames` (one per held-out frame) against the real held-out frames."""
    start = data.n_train
    real = data.frames[start:]
    size = data.size
    per = {"whole": [], "body": [], "face": []}
    background = []
    for k, (f, r) in enumerate(zip(frames, real, strict=True)):
        pose = data.poses[start + k]
        per["whole"].append(M.similarity(f, r))
        if data.masks is not None:
            background.append(M.background_psnr(f, r, data.masks[start + k], cfg.background_dilate))
        box = M.body_box(pose, size, cfg.body_pad)
        if box is not None:
            per["body"].append(M.similarity(f, r, box))
        fbox = data.face_boxes[start + k]
        if fbox is not None:
            per["face"].append(M.similarity(f, r, fbox))
    result = {name: _mean(v) for name, v in per.items()}
    found = [b for b in background if b is not None]
    result["background_psnr"] = float(np.mean(found)) if found else None
    pairs = [i - start for i in data.pairs(start, len(data.poses))]
    result["flicker"] = M.flicker(frames, pairs)
    if poses_found is not None:
        result["pose"] = M.summarize_pose(poses_found, data.poses[start:])
    return result


def _mean(rows: list[dict]) -> dict | None:
    if not rows:
        return None
    return {**{k: float(np.mean([r[k] for r in rows])) for k in ("ssim", "psnr", "gmsd")}, "frames": len(rows)}


def baselines(data: TargetData) -> dict[str, np.ndarray]:
    """The mean training frame and nearest-pose retrieval, for every held-out frame."""
    train = data.frames[: data.n_train]
    mean = M.mean_frame(train)
    nn = M.NearestPose(data.poses[: data.n_train])
    picks = []
    for p in data.poses[data.n_train:]:
        j = nn.index(p)
        picks.append(train[j] if j >= 0 else mean)
    n = len(data.poses) - data.n_train
    return {"nearest": np.stack(picks), "mean_frame": np.repeat(mean[None], n, axis=0)}


def contact_sheet(data: TargetData, generated: np.ndarray, rows: int) -> np.ndarray:
    """label | generated | real for `rows` held-out frames spread evenly (RGB uint8)."""
    n = len(generated)
    pick = np.unique(np.linspace(0, n - 1, min(rows, n)).round().astype(int))
    start = data.n_train
    lines = [np.hstack([data.labels[start + i], generated[i], data.frames[start + i]]) for i in pick]
    return np.vstack(lines)


def evaluate(run: str | os.PathLike, data_dir: str | os.PathLike, out: str | os.PathLike, backend: str = "torch",
             target=None, config: EvalConfig | None = None,
             upscaled: tuple[str | os.PathLike, str | os.PathLike] | None = None) -> dict:
    """Generate the held-out frames of `data_dir` with `run` (a run folder or checkpoint; or an
    opened `target`, a `dancenow.realtime.live.target.Target` that the command line made from a
    bundle: training does not import the live side), score them and the baselines, write
    `report.json` and `contact_sheet.png` to `out`, and return the report. `upscaled` = (run, data):
    a lower-resolution target of the same clip, upscaled, as an extra row; an HD checkpoint also
    gets its own half-size frame upscaled ("coarse")."""
    cfg = config or EvalConfig()
    data = load_prepared(data_dir)
    n_hold = len(data.poses) - data.n_train
    if n_hold < 2 or data.n_train < 1:
        raise DanceNowError(f"{data_dir} has {n_hold} held-out frames: prepare with a --holdout that leaves at least 2")
    if target is None:
        if backend != "torch":
            raise DanceNowError(f"backend {backend} runs a bundle: export one (`dancenow export {run}`) and evaluate that")
        from dancenow.training.checkpoint import find_checkpoint, load_checkpoint

        ckpt = load_checkpoint(run)
        engine = CheckpointGenerator(ckpt)
        temporal, source = engine.temporal, str(find_checkpoint(run))
        trained = {"step": ckpt.get("step"), "face_step": ckpt.get("face_step"), "profile": ckpt.get("profile")}
    else:
        engine, training = target.engine, dict(target.training)
        temporal, source = bool(training.get("temporal", True)), str(target.bundle)
        trained = {k: training.get(k) for k in ("step", "face_step", "profile")}
    if tuple(engine.resolution) != tuple(data.size):
        raise DanceNowError(f"the target generates {engine.resolution[0]}x{engine.resolution[1]} but {data_dir} is "
                            f"{data.size[0]}x{data.size[1]}: evaluate on the data it was trained on")

    log.info("generating %d held-out frames (%s)", n_hold, getattr(engine, "name", "engine"))
    _, generated = generate_holdout(engine, data, temporal)
    outputs = {"generated": generated}
    if target is None and engine.generator.config.enhance:
        outputs["coarse"] = coarse_holdout(engine.generator.coarse, data, temporal)
    if upscaled is not None:
        outputs["upscaled"] = upscaled_holdout(*upscaled, data)
    outputs.update(**baselines(data), real=np.asarray(data.frames[data.n_train:]))
    methods = {}
    for name, frames in outputs.items():
        found = M.detect_poses(frames, fps=float(data.manifest.get("fps") or 15.0)) if cfg.detect else None
        methods[name] = {**score(frames, data, cfg, found), "pose_found": found}
    if cfg.detect:
        real_found = methods["real"]["pose_found"]
        for m in methods.values():
            m["mouth"] = M.mouth_summary(m.pop("pose_found"), real_found)
    real_flicker = methods["real"]["flicker"]
    for m in methods.values():
        m["flicker_ratio"] = m["flicker"] / real_flicker if real_flicker else float("nan")

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "run": source, "data_dir": str(data.root), "backend": getattr(engine, "name", backend),
        "resolution": list(data.size), "train_frames": data.n_train, "heldout_frames": n_hold,
        "temporal": temporal, "face": bool(getattr(engine, "face_crop", None)), "trained": trained,
        "config": asdict(cfg), "methods": methods,
    }
    report = _finite(report)
    write_atomic(out / REPORT_NAME, json.dumps(report, indent=1).encode())
    import cv2

    ok, png = cv2.imencode(".png", cv2.cvtColor(contact_sheet(data, generated, cfg.sheet_frames), cv2.COLOR_RGB2BGR))
    if ok:
        write_atomic(out / SHEET_NAME, png.tobytes())
    return report


def _finite(x):
    """NaN/inf to None, so report.json is standard JSON."""
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


def _fmt(v, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


ROW_NAMES = {"generated": "generated", "coarse": "own half size, upscaled", "upscaled": "lower-res model, upscaled",
             "nearest": "nearest pose (baseline)", "mean_frame": "mean frame (baseline)",
             "real": "real frames"}


def table_row(name: str, m: dict) -> str:
    """One line in EDN's layout: body SSIM/PSNR/GMSD, face SSIM/PSNR/GMSD, pose distance, misses,
    flicker."""
    body, face, pose = m.get("body") or {}, m.get("face") or {}, m.get("pose") or {}
    dist = (pose.get("distance") or {}).get("body") or {}
    fdist = (pose.get("distance") or {}).get("face") or {}
    found, mouth = pose.get("found_frac"), m.get("mouth") or {}
    return (f"{name:<26}{_fmt(body.get('ssim'), '.3f'):>9}{_fmt(body.get('psnr'), '.2f'):>9}"
            f"{_fmt(body.get('gmsd'), '.4f'):>9}{_fmt(face.get('ssim'), '.3f'):>9}{_fmt(face.get('psnr'), '.2f'):>9}"
            f"{_fmt(face.get('gmsd'), '.4f'):>9}"
            f"{_fmt(dist.get('px'), '.2f'):>9}{_fmt(dist.get('rel'), '.3f'):>8}{_fmt(fdist.get('rel'), '.3f'):>8}"
            f"{_fmt(None if found is None else 100 * found, '.0f'):>7}{_fmt(pose.get('missed'), 'd'):>7}"
            f"{_fmt(m.get('flicker'), '.2f'):>9}{_fmt((m.get('whole') or {}).get('ssim'), '.3f'):>9}"
            f"{_fmt(m.get('background_psnr'), '.2f'):>9}"
            f"{_fmt(None if mouth.get('face_found_frac') is None else 100 * mouth['face_found_frac'], '.0f'):>7}"
            f"{_fmt(mouth.get('mouth_corr'), '.2f'):>8}")


TABLE_HEADER = (f"{'':<26}{'body':>9}{'body':>9}{'body':>9}{'face':>9}{'face':>9}{'face':>9}{'pose px':>9}"
                f"{'/height':>8}{'face/h':>8}{'found%':>7}{'missed':>7}{'flicker':>9}{'whole':>9}{'bg':>9}{'mesh%':>7}"
                f"{'mouth':>8}\n"
                f"{'':<26}{'SSIM':>9}{'PSNR':>9}{'GMSD':>9}{'SSIM':>9}{'PSNR':>9}{'GMSD':>9}{'body':>9}{'body':>8}{'':>8}"
                f"{'':>7}{'':>7}{'':>9}{'SSIM':>9}{'PSNR':>9}{'':>7}{'r':>8}")


def format_table(report: dict) -> str:
    m = report["methods"]
    lines = [f"{report['run']} on {report['heldout_frames']} held-out frames of {report['data_dir']} "
             f"({report['resolution'][0]}x{report['resolution'][1]}, {report['backend']}, "
             f"temporal={report['temporal']}, face={report['face']})", TABLE_HEADER]
    lines += [table_row(ROW_NAMES[k], m[k]) for k in METHODS if k in m]
    return "\n".join(lines)
