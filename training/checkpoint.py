"""The checkpoint file: the one format the trainer writes and export-engine reads.

A checkpoint is a torch.save'd dict:
  format            "dancenow-checkpoint-1"
  name, profile     target name and profile name
  resolution        [height, width] of label maps and frames
  generator_config  GeneratorConfig.to_dict();  generator: state_dict
  plate             uint8 H x W x 3 tensor: the background an alpha generator composites over, or None
  face_config       FaceConfig.to_dict() or None;  face: state_dict or None;  face_crop: px or None
  renderer          RenderConfig.to_dict() used to draw the training label maps
  pose_stats        the target's normalization statistics (dict) or None
  step, face_step   training progress;  summary: dict (losses, timing, data)
  train_state       optional: optimizers, RNG and scaler states for resuming (export ignores it)

Only tensors, dicts, lists, tuples, numbers, strings and None go in, so reading uses
`torch.load(weights_only=True)`: a file from a stranger holding a pickle with code in it is refused,
never run. Writing is atomic: a trainer killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import torch

from dancenow.errors import DanceNowError
from dancenow.files import write_atomic
from dancenow.training.networks import FaceConfig, FaceGenerator, Generator, GeneratorConfig

FORMAT = "dancenow-checkpoint-1"
CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: str | os.PathLike, ckpt: dict) -> None:
    """Write atomically: a crash or Ctrl-C mid-write never leaves a broken file."""
    ckpt = {"format": FORMAT, **ckpt}
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer killed mid-write (SIGKILL)
        stale.unlink(missing_ok=True)
    write_atomic(path, buf.getvalue())


def find_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or the newest checkpoint in a run folder."""
    p = Path(path)
    if p.is_dir():
        cand = p / CHECKPOINT_NAME
        if not cand.is_file():
            raise DanceNowError(f"{p} holds no {CHECKPOINT_NAME}: train first (`dancenow train DATA --out {p}`)")
        return cand
    if not p.is_file():
        raise DanceNowError(f"checkpoint {p} not found: pass a checkpoint file or a training run folder")
    return p


def load_checkpoint(path: str | os.PathLike) -> dict:
    p = find_checkpoint(path)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)  # never unpickles code
    except pickle.UnpicklingError as e:
        if "weights_only" not in str(e) and "Weights only" not in str(e):
            raise DanceNowError(f"{p} is not a readable checkpoint (UnpicklingError: {e}); retrain or restore it") from None
        raise DanceNowError(f"{p} holds Python objects other than tensors, numbers, strings, lists and dicts (a "
                            "pickle that could run code), so it is refused: use a checkpoint `dancenow train` wrote, "
                            "or re-save only its tensors") from None
    except Exception as e:  # torch raises many types for a damaged file
        raise DanceNowError(f"{p} is not a readable checkpoint ({type(e).__name__}: {e}); retrain or restore it") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DanceNowError(f"{p} is not a DanceNow checkpoint (format {ckpt.get('format') if isinstance(ckpt, dict) else None!r})")
    return ckpt


def build_generator(ckpt: dict) -> Generator:
    g = Generator(GeneratorConfig.from_dict(ckpt["generator_config"]))
    g.load_state_dict({k: v.float() for k, v in ckpt["generator"].items()})
    if g.config.alpha:
        plate = ckpt.get("plate")
        if not isinstance(plate, torch.Tensor) or plate.dtype != torch.uint8 or plate.ndim != 3:
            raise DanceNowError("this checkpoint's generator composites over a background plate, but it holds no "
                                "plate (uint8 H x W x 3): retrain it, or restore the checkpoint `dancenow train` wrote")
        g.set_plate(plate.permute(2, 0, 1)[None].float().div(127.5).sub(1.0))
    return g.eval()


_STAT_PIXELS = ("ankle_close", "ankle_far", "ankle_median", "height_close", "height_far", "height_median", "x_center")


def half_checkpoint(ckpt: dict) -> dict:
    """An HD checkpoint's coarse network as a checkpoint of its own, at half the size: what a host
    too slow for the full size runs (one bundle, two sizes). Its plate and pose statistics are
    scaled to that size; it has no face stage (the face net learnt the full size's crops)."""
    from dataclasses import replace

    import cv2

    config = GeneratorConfig.from_dict(ckpt["generator_config"])
    if not config.enhance:
        raise DanceNowError("only an HD checkpoint (profile cpu-hd) has a half-size network")
    h, w = (int(v) // 2 for v in ckpt["resolution"])
    stats = dict(ckpt["pose_stats"]) if ckpt.get("pose_stats") else None
    if stats:
        stats.update({k: float(stats[k]) / 2 for k in _STAT_PIXELS},
                     frame_size=[int(stats["frame_size"][0]) // 2, int(stats["frame_size"][1]) // 2])
        if stats.get("rest"):
            stats["rest"] = [[float(x) / 2, float(y) / 2] for x, y in stats["rest"]]
    plate = ckpt.get("plate")
    if isinstance(plate, torch.Tensor):
        plate = torch.from_numpy(cv2.resize(plate.numpy(), (w, h), interpolation=cv2.INTER_AREA))
    return {**{k: v for k, v in ckpt.items() if k not in ("train_state", "format")},
            "resolution": [h, w], "generator_config": replace(config, enhance=False).to_dict(),
            "generator": {k[len("coarse."):]: v for k, v in ckpt["generator"].items() if k.startswith("coarse.")},
            "plate": plate, "pose_stats": stats, "face_config": None, "face": None, "face_crop": None}


def build_face(ckpt: dict) -> FaceGenerator | None:
    if not ckpt.get("face"):
        return None
    f = FaceGenerator(FaceConfig.from_dict(ckpt["face_config"]))
    f.load_state_dict({k: v.float() for k, v in ckpt["face"].items()})
    return f.eval()
