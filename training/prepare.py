"""Target data preparation: a video (or the built-in synthetic dance) to a training folder.

The folder (DATA_DIR) holds:
  frames.npy    uint8 (N, H, W, 3) RGB frames at the model resolution (memory-mappable: fast to load)
  labels.npy    uint8 (N, H, W, 3) label maps drawn by the shared renderer
  poses.jsonl   the poses in model-resolution pixels (save_track)
  faces.json    {"crop": px, "boxes": [[x0, y0, x1, y1] | null, ...]}
  faces_hi.npy  uint8 (N, crop * s, crop * s, 3): video only, each face box at `face_scale` (s) times
                the frame's size from the decoded pixels (face_pixels.py); zeros without a face
  stats.json    the target's normalization statistics (PoseStats.to_dict())
  plate.png     the background plate: the room without the person, RGB at the model resolution
  masks.npy     float16 (N, H, W) soft person masks in [0, 1] (memory-mappable)
  manifest.json source and its sha256, sizes, counts, dropped frames, the crop, the split, the
                source frame index of every kept frame (the trainer pairs only consecutive ones),
                and the plate, masks and registration blocks (files, filled fraction, the
                background's residual motion before and after); written last, so its presence
                means the folder is complete.
The held-out frames are the contiguous tail (`holdout` of the kept frames). Older folders without
plate.png, masks.npy or faces_hi.npy still load, with `plate`, `masks` or `faces_hi` None.

Hand-held footage is registered to its middle frame on the background before anything is cropped
(register.py), so frames, masks, poses and the plate share one steady frame; the crop is then
taken in that frame. A still camera's frames are left as they are.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dancenow.errors import DanceNowError
from dancenow.files import sha256, write_atomic
from dancenow.realtime.media.reader import iter_frames, video_info
from dancenow.realtime.pose.face import face_box, face_crop_size
from dancenow.realtime.pose.pose import Pose, load_track, save_track
from dancenow.realtime.pose.renderer import RenderConfig, render_label_map
from dancenow.schema import read_json
from dancenow.training.background import load_background, load_npy, save_npy, write_background
from dancenow.training.face_pixels import FACES_HI, face_hi, stack_faces
from dancenow.training.masks import MaskCache, load_mask_cache
from dancenow.training.plate import PlateConfig, build_plate, changing_room
from dancenow.training.register import RegisterConfig, identity, register_video, resample, warp_pose
from dancenow.training.synthetic import SYNTHETIC_SIZE, synthetic_digest, synthetic_frames

log = logging.getLogger(__name__)

FORMAT = "dancenow-data-1"


@dataclass
class PrepareConfig:
    """How a target video becomes training data."""

    size: tuple[int, int] | None = None  # (H, W); None: synthetic 256x192, video: its aspect, long side 256
    long_side: int = 256
    multiple: int = 8  # sides are multiples of this (the cpu-realtime generator's factor)
    holdout: float = 0.15  # fraction of kept frames held out, taken from the end
    frames: int | None = None  # synthetic: how many frames (default one loop); video: at most this many
    fps: float = 15.0  # synthetic: frames per second of the dance
    margin: float = 0.08  # video: crop margin around the person, as a fraction of their height
    holistic: bool = False  # video: also track hands (slower)
    plate: bool = True  # build the background plate and per-frame person masks (MediaPipe's segmentation)
    register: bool = True  # video: register hand-held footage to one steady frame (a still camera is left alone)
    face_lines: bool = True  # video: draw the face as lines from MediaPipe's face mesh (eyes, brows, lips)
    # video: where the room changes with nobody there (plate.changing_room: burnt-in subtitles), paint
    # the plate in from around it and learn that: a still room live, but frames unlike the real ones
    # there (dancer B, 15 min: band PSNR 15.4 -> 10.0 dB against frames that show the text).
    clean_room: bool = False
    face_scale: int = 2  # video: the face crops also at this times the frame's size, from the decoded pixels (face_pixels.py)


@dataclass
class TargetData:
    """A prepared folder, loaded (frames and labels memory-mapped)."""

    root: Path
    frames: np.ndarray
    labels: np.ndarray
    poses: list[Pose]
    face_boxes: list[tuple[int, int, int, int] | None]
    face_crop: int
    stats: dict
    manifest: dict
    plate: np.ndarray | None = None  # uint8 H x W x 3, the background without the person
    masks: np.ndarray | None = None  # float16 (N, H, W) in [0, 1], memory-mapped
    faces_hi: np.ndarray | None = None  # uint8 (N, s * crop, s * crop, 3), memory-mapped; None before it

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def n_train(self) -> int:
        return int(self.manifest["split"]["train"])

    @property
    def source_index(self) -> list[int]:
        return list(self.manifest["source_index"])

    def pairs(self, start: int, stop: int) -> list[int]:
        """Indices i in [start, stop - 1) whose next kept frame is the next source frame."""
        src = self.source_index
        return [i for i in range(start, stop - 1) if src[i + 1] == src[i] + 1]


def load_prepared(data_dir: str | os.PathLike) -> TargetData:
    root = Path(data_dir)
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise DanceNowError(f"{root} is not a prepared data folder (no manifest.json): run `dancenow prepare VIDEO --out {root}`")
    fix = f"prepare the data again (`dancenow prepare VIDEO --out {root}`)"
    manifest = read_json(mpath, "data manifest", fix)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise DanceNowError(f"{mpath} has format {got!r}, expected {FORMAT!r}: prepare the data again")
    faces = json.loads((root / "faces.json").read_text())
    plate, masks = load_background(root, manifest, fix)
    return TargetData(
        root=root,
        frames=np.load(root / "frames.npy", mmap_mode="r"),
        labels=np.load(root / "labels.npy", mmap_mode="r"),
        poses=load_track(root / "poses.jsonl"),
        face_boxes=[tuple(b) if b else None for b in faces["boxes"]],
        face_crop=int(faces["crop"]),
        stats=json.loads((root / "stats.json").read_text()),
        manifest=manifest,
        plate=plate,
        masks=masks,
        faces_hi=load_npy(root, manifest["faces_hi"]["file"], fix) if manifest.get("faces_hi") else None,
    )


def prepare(video: str | os.PathLike | None, out: str | os.PathLike, cfg: PrepareConfig | None = None,
            synthetic: bool = False) -> Path:
    """Prepare `video` (or the synthetic dance) into `out`; reuses a complete folder made the same way."""
    cfg = cfg or PrepareConfig()
    out = Path(out)
    if not 0.0 < cfg.holdout < 1.0:
        raise DanceNowError(f"holdout must be between 0 and 1 (got {cfg.holdout}): e.g. --holdout 0.15")
    if cfg.face_scale not in (1, 2, 4):
        raise DanceNowError(f"face_scale must be 1, 2 or 4 (got {cfg.face_scale})")
    if synthetic:
        source, digest = "synthetic", synthetic_digest()
    else:
        if video is None:
            raise DanceNowError("give a target video or --synthetic")
        path = Path(video)
        if not path.is_file() or path.stat().st_size == 0:
            raise DanceNowError(f"target video {path} is missing or empty: pass a readable video file")
        source, digest = str(path.resolve()), sha256(path)
    key = {"source_sha256": digest, "config": _config_dict(cfg), "renderer": _render_config(cfg, synthetic).to_dict()}
    done = out / "manifest.json"
    if done.is_file():
        try:
            if json.loads(done.read_text()).get("key") == key:
                log.info("%s is already prepared from this source with these settings: reusing it", out)
                return out
        except json.JSONDecodeError:
            pass
    out.mkdir(parents=True, exist_ok=True)
    if done.exists():
        done.unlink()  # the folder is being rebuilt: it is incomplete until the manifest is back

    if synthetic:
        size = tuple(cfg.size) if cfg.size else _default_size(SYNTHETIC_SIZE, cfg)  # the long side scales it (512: HD)
        _check_size(size, cfg.multiple)
        frames, poses, src_index, info = synthetic_frames(size, cfg.frames, cfg.fps, cfg.plate)
    else:
        frames, poses, src_index, info = _from_video(Path(video), out, digest, cfg)
    return _write(out, source, key, frames, poses, src_index, info, cfg)


def _render_config(cfg: PrepareConfig, synthetic: bool) -> RenderConfig:
    """The synthetic figure has no face mesh: its label maps keep the dots, and so does a live
    show of it (the renderer reads this from the bundle). The arms are drawn over the torso."""
    return RenderConfig(face_lines=cfg.face_lines and not synthetic, arms_over_torso=True)


def _config_dict(cfg: PrepareConfig) -> dict:
    d = asdict(cfg)
    d["size"] = list(cfg.size) if cfg.size else None
    return d


def _check_size(size, multiple: int) -> None:
    if size[0] % multiple or size[1] % multiple or min(size) < 4 * multiple:
        raise DanceNowError(f"size {size[0]}x{size[1]} must have both sides multiples of {multiple} "
                            f"and at least {4 * multiple}: e.g. --size 256x192")


def _track(path: Path, out: Path, digest: str, cfg: PrepareConfig) -> tuple[list[Pose], np.ndarray | None]:
    """Poses in source pixels for every decoded frame and (with `plate`) MediaPipe's person masks
    (uint8, memory-mapped, at the tracker's resolution) from the same pass, cached by the video's hash."""
    from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig

    kind = ("holistic" if cfg.holistic else "pose") + ("-face" if cfg.face_lines else "")
    cache = out / f"track-{digest[:16]}-{kind}.jsonl"
    mask_cache = cache.with_name(f"{cache.stem}-masks.npy")
    if cache.is_file():
        poses = load_track(cache)
        if cfg.frames is None or len(poses) >= cfg.frames:
            poses = poses[: cfg.frames] if cfg.frames else poses
            masks = load_mask_cache(mask_cache, len(poses)) if cfg.plate else None
            if not cfg.plate or masks is not None:
                return poses, masks
    total = video_info(path).frames
    poses = []
    tcfg = TrackerConfig(holistic=cfg.holistic, segmentation=cfg.plate, face_mesh=cfg.face_lines)
    store = MaskCache(mask_cache, tcfg.max_side) if cfg.plate else None
    try:
        with PoseTracker(tcfg) as tracker:
            for f in tqdm(iter_frames(path, cfg.frames, strict=True), total=min(total, cfg.frames or total) or None,
                          desc="tracking", unit="frame"):
                pose = tracker.track(f.image, f.time)
                if store is not None:
                    store.add(pose.extras.pop("mask"))
                poses.append(pose)
    except BaseException:
        if store is not None:
            store.abort()
        raise
    if not poses:
        raise DanceNowError(f"{path} holds no frames: pass a non-empty video")
    if store is not None:
        store.close()
    tmp = cache.with_suffix(".partial")
    save_track(poses, tmp)
    os.replace(tmp, cache)  # atomic: a cache file is always complete
    return poses, load_mask_cache(mask_cache, len(poses)) if store is not None else None


def _crop_box(poses: list[Pose], frame_hw: tuple[int, int], aspect: float, margin: float) -> tuple[int, int, int, int]:
    """The smallest box of width/height `aspect` holding the person in every frame (plus a margin)."""
    fh, fw = frame_hw
    boxes = np.array([p.bbox(0.3) for p in poses if p.detected and p.bbox(0.3) is not None])
    heights = [p.body_height() for p in poses if p.detected]
    body = float(np.median([h for h in heights if h])) if any(heights) else float(boxes[:, 3].max() - boxes[:, 1].min())
    m = margin * body
    x0, y0 = boxes[:, 0].min() - m, boxes[:, 1].min() - 1.6 * m  # more room above the head (hair)
    x1, y1 = boxes[:, 2].max() + m, boxes[:, 3].max() + m
    w, h = x1 - x0, y1 - y0
    if w / h < aspect:
        w = h * aspect
    else:
        h = w / aspect
    if w > fw or h > fh:  # the person fills the frame: the largest box of this aspect
        s = min(fw / w, fh / h)
        w, h = w * s, h * s
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bx0 = min(max(0.0, cx - w / 2), fw - w)
    by0 = min(max(0.0, cy - h / 2), fh - h)
    return int(round(bx0)), int(round(by0)), int(round(bx0 + w)), int(round(by0 + h))


def _default_size(frame_hw: tuple[int, int], cfg: PrepareConfig) -> tuple[int, int]:
    fh, fw = frame_hw
    s = cfg.long_side / max(fh, fw)
    m = cfg.multiple
    return max(4 * m, int(round(fh * s / m)) * m), max(4 * m, int(round(fw * s / m)) * m)


def _from_video(path: Path, out: Path, digest: str, cfg: PrepareConfig):
    import cv2

    raw, mask_cache = _track(path, out, digest, cfg)
    kept = [i for i, p in enumerate(raw) if p.detected]
    if not kept:
        raise DanceNowError(f"nobody was found in any frame of {path}: use a video with one person, head to feet")
    if len(kept) < 8:
        raise DanceNowError(f"a person was found in only {len(kept)} frames of {path}: use a longer or clearer video")
    frame_hw = raw[0].frame_size
    size = tuple(cfg.size) if cfg.size else _default_size(frame_hw, cfg)
    _check_size(size, cfg.multiple)
    aspect = size[1] / size[0]
    box = _crop_box([raw[i] for i in kept], frame_hw, aspect, cfg.margin)
    started = time.perf_counter()
    reg = None
    if mask_cache is not None:
        reg = (register_video(path, kept, mask_cache, RegisterConfig(), size[0] / (box[3] - box[1])) if cfg.register
               else identity(len(kept), len(kept) // 2, measured=False))
        if not reg.still:  # the crop is taken in the steady frame
            box = _crop_box([warp_pose(raw[i], reg.to_ref[j], frame_hw) for j, i in enumerate(kept) if reg.ok[j]],
                            frame_hw, aspect, cfg.margin)
    x0, y0, x1, y1 = box
    sx, sy = size[1] / (x1 - x0), size[0] / (y1 - y0)
    crop = np.array([[sx, 0.0, -x0 * sx], [0.0, sy, -y0 * sy], [0.0, 0.0, 1.0]])
    at = {i: j for j, i in enumerate(kept)}
    frames, poses, masks, valid, src_index, faces_hi = [], [], [], [], [], []
    face_side = face_crop_size(size[0])
    fps = float(video_info(path).rate)
    for f in tqdm(iter_frames(path, len(raw), strict=True), total=len(raw), desc="cropping", unit="frame"):
        j = at.get(f.index)
        if j is None or (reg is not None and not reg.ok[j]):
            continue
        src_index.append(f.index)
        if reg is None or reg.still:  # a plain crop, as before registration existed
            frames.append(cv2.resize(f.image[y0:y1, x0:x1], (size[1], size[0]), interpolation=cv2.INTER_AREA))
            poses.append(raw[f.index].transformed((sx, sy), (-x0 * sx, -y0 * sy), size))
            valid.append(None)
            m = crop
        else:
            m = crop @ reg.to_ref[j]
            frame, inside = resample(f.image, m, size)
            frames.append(frame)
            valid.append(inside)
            poses.append(warp_pose(raw[f.index], m, size))
        if cfg.face_scale > 1:
            faces_hi.append(face_hi(f.image, m, face_box(poses[-1], size, face_side), cfg.face_scale))
        if mask_cache is not None:
            mh, mw = mask_cache.shape[1:]
            to_src = np.diag([frame_hw[1] / mw, frame_hw[0] / mh, 1.0])
            mask = resample(np.asarray(mask_cache[f.index], np.float32) / 255.0, m @ to_src, size)[0]
            masks.append(mask.astype(np.float16))
    info = {"source_size": list(frame_hw), "fps": fps, "decoded": len(raw), "dropped": len(raw) - len(src_index),
            "crop": [x0, y0, x1, y1]}
    if faces_hi:
        info.update(faces_hi=[c for c, _ in faces_hi], faces_hi_scale=cfg.face_scale,
                    faces_hi_upsampled=sum(not own for c, own in faces_hi if c.size))
    if reg is not None:
        registered = time.perf_counter()
        unsteady = [u for u, ok in zip(reg.unsteady(sy, RegisterConfig().max_residual_px), reg.ok, strict=True) if ok]
        plate = build_plate(frames, masks, valid, [not u for u in unsteady], name=path.name)
        for frame, inside in zip(frames, valid, strict=True):
            if inside is not None:  # where registration moved the picture in: the plate shows what is there
                frame[~inside] = plate.image[~inside]
        changing = changing_room(frames, masks, plate.image, plate.dilate_px)
        painted = cfg.clean_room and bool(changing.any())
        if painted:  # the median holds one of the texts: paint the room in around it
            plate.image = cv2.inpaint(plate.image, changing.astype(np.uint8), PlateConfig().inpaint_radius,
                                      cv2.INPAINT_TELEA)
        info.update(plate=plate, masks=masks, masks_source="mediapipe-segmentation", changing=changing,
                    painted=painted, registration=reg, reg_scale=sy,
                    unsteady=unsteady, reference=kept[reg.reference],
                    border_filled=float(np.mean([(~v).mean() if v is not None else 0.0 for v in valid])),
                    name=path.name, seconds=(registered - started, time.perf_counter() - registered))
    return frames, poses, src_index, info


def _write(out: Path, source: str, key: dict, frames, poses, src_index, info, cfg: PrepareConfig) -> Path:
    from dancenow.realtime.pose.normalize import fit_stats

    size = frames[0].shape[:2]
    render = _render_config(cfg, source == "synthetic")
    labels = [render_label_map(p, size, render) for p in tqdm(poses, desc="label maps", unit="frame")]
    crop = face_crop_size(size[0])
    boxes = [face_box(p, size, crop) for p in poses]
    save_npy(out / "frames.npy", np.stack(frames))
    save_npy(out / "labels.npy", np.stack(labels))
    save_track(poses, out / "poses.jsonl")
    write_atomic(out / "faces.json", json.dumps({"crop": crop, "boxes": [list(b) if b else None for b in boxes]}).encode())
    stats = fit_stats(poses)
    write_atomic(out / "stats.json", json.dumps(stats.to_dict(), indent=1).encode())
    n = len(frames)
    n_hold = max(1, int(round(n * cfg.holdout)))
    manifest = {
        "format": FORMAT, "key": key, "source": source, "source_sha256": key["source_sha256"],
        "synthetic": source == "synthetic", "size": list(size), "renderer": render.to_dict(), "face_crop": crop,
        "counts": {"decoded": info["decoded"], "kept": n, "dropped": info["dropped"],
                   "faces": sum(b is not None for b in boxes)},
        "split": {"train": n - n_hold, "holdout": n_hold},
        "source_size": info["source_size"], "fps": info["fps"], "crop": info["crop"],
        "source_index": list(map(int, src_index)),
    }
    if "faces_hi" in info:
        save_npy(out / FACES_HI, stack_faces(info["faces_hi"], crop * info["faces_hi_scale"]))
        manifest["faces_hi"] = {"file": FACES_HI, "scale": info["faces_hi_scale"], "upsampled": info["faces_hi_upsampled"]}
        if info["faces_hi_upsampled"]:
            log.warning("%d face crops had fewer pixels in the video than %dx the frame's: upsampled there (the face "
                        "stage learns no detail the camera did not see); film closer or at a higher resolution",
                        info["faces_hi_upsampled"], info["faces_hi_scale"])
    if "plate" in info:
        manifest.update(write_background(out, info))  # frames registration failed on: in counts.dropped
    write_atomic(out / "manifest.json", json.dumps(manifest, indent=1).encode())
    log.info("prepared %d frames (%d held out, %d dropped) at %dx%d in %s", n, n_hold, info["dropped"], size[0], size[1], out)
    return out
