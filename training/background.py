"""The background part of a data folder: plate.png, masks.npy and the manifest's "plate", "masks"
and "registration" blocks, written by `prepare` and read back (through dancenow.schema) by
`load_prepared`. Folders prepared before the plate have none of them, and still load.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dancenow.errors import DanceNowError
from dancenow.files import write_atomic
from dancenow.schema import parse
from dancenow.training.plate import Plate, describe_region
from dancenow.training.register import RegisterConfig, Registration

CHANGING = "changing.png"

log = logging.getLogger(__name__)


@dataclass
class PlateInfo:
    """manifest.json's "plate" block."""

    file: str
    filled: float  # fraction of the plate inpainted (the person never moved away from there)
    frames: int  # frames the median was taken over
    dilate_px: int  # the person mask's growth before the median
    changing: float = 0.0  # fraction of the frame where the room changes with nobody there (plate.changing_room)
    painted: bool = False  # that room painted in from around it (prepare --clean-room): training learns it there
    changing_file: str | None = None  # that room's mask (PNG, 255 where it changes) when there is one


@dataclass
class MasksInfo:
    """manifest.json's "masks" block."""

    file: str
    dtype: str
    source: str  # "mediapipe-segmentation" or "synthetic"


@dataclass
class Residual:
    """Background motion against the reference frame over the clip, model-resolution pixels."""

    median: float | None
    p95: float | None
    max: float | None


@dataclass
class RegistrationInfo:
    """manifest.json's "registration" block."""

    method: str
    still: bool  # the camera held still: frames left as they are
    reference: int  # source frame index of the reference frame
    before: Residual
    after: Residual
    failed: int  # frames registration failed on (dropped: counted in counts.dropped, like frames with nobody)
    unsteady: int  # frames still moving more than max_residual_px (kept, left out of the plate)
    border_filled: float  # mean fraction of a frame filled from the plate (where registration moved the picture)


def save_npy(path: Path, array: np.ndarray) -> None:
    """An .npy file written atomically (memory-mappable when read back)."""
    buf = io.BytesIO()
    np.save(buf, array)
    write_atomic(path, buf.getvalue())


def write_background(out: Path, info: dict) -> dict:
    """Write the plate and the masks; return their manifest blocks. The registration's figures are
    logged, and warned about when registration cannot hold the background."""
    plate: Plate = info["plate"]
    reg: Registration = info["registration"]
    changing = info.get("changing", np.zeros(plate.image.shape[:2], bool))  # the synthetic room never changes
    ok, png = cv2.imencode(".png", np.ascontiguousarray(plate.image[..., ::-1]))
    if not ok:
        raise DanceNowError(f"could not encode the background plate for {out}: check OpenCV's PNG support")
    write_atomic(out / "plate.png", png.tobytes())
    save_npy(out / "masks.npy", np.stack(info["masks"]).astype(np.float16))
    if changing.any():  # kept, so that training and evaluation need not find it again
        write_atomic(out / CHANGING, cv2.imencode(".png", changing.astype(np.uint8) * 255)[1].tobytes())
    figures = reg.report(info["reg_scale"])
    block = {
        "plate": {"file": "plate.png", "filled": round(plate.filled_fraction, 4), "frames": plate.frames,
                  "dilate_px": plate.dilate_px, "changing": round(float(changing.mean()), 4),
                  "painted": bool(info.get("painted", False)), "changing_file": CHANGING if changing.any() else None},
        "masks": {"file": "masks.npy", "dtype": "float16", "source": info["masks_source"]},
        "registration": {"method": reg.method, "still": reg.still, "reference": int(info["reference"]), **figures,
                         "failed": len(reg.ok) - sum(reg.ok), "unsteady": int(sum(info["unsteady"])),
                         "border_filled": round(float(info.get("border_filled", 0.0)), 4)},
    }
    name, r = info.get("name", "synthetic"), block["registration"]
    before, after = figures["before"], figures["after"]
    if reg.method == "none":  # the synthetic target: no camera, nothing to report
        return block
    log.info("%s: background motion %s px before registration, %s px after (median / p95 at model resolution); "
             "plate filled %.1f%%; registration and cropping took %.2f s, the plate %.2f s", name, _pair(before),
             _pair(after), 100 * plate.filled_fraction, *info.get("seconds", (0.0, 0.0)))
    if changing.any():
        then = ("the plate there is painted in from the room around it and training learns that (a still room)"
                if info.get("painted") else "the target paints a guess of it; prepare with --clean-room to paint it "
                "out of the target's room (a still room, unlike the real frames there)")
        log.warning("%s: the room changes where nobody stands on %s (burnt-in subtitles, a screen, people passing?): "
                    "the pose cannot tell what it shows: %s, or crop the video to leave it out", name,
                    describe_region(changing), then)
    limit = RegisterConfig().max_residual_px
    if r["failed"] or r["unsteady"] or (after["p95"] or 0.0) > limit:
        log.warning("%s: registration cannot hold the background: %d frames failed (dropped), %d still move more "
                    "than %.1f px (left out of the plate); residual p95 %s px at model resolution: film on a "
                    "tripod, or hold the camera steadier", name, r["failed"], r["unsteady"], limit, after["p95"])
    return block


def _pair(fig: dict) -> str:
    return "n/a" if fig["median"] is None else f"{fig['median']:.2f} / {fig['p95']:.2f}"


def load_changing(root: Path, manifest: dict, fix: str) -> np.ndarray | None:
    """The bool (H, W) mask of where the room changes with nobody there, as prepare found it; None
    where it found none or kept none (a folder prepared before the mask was kept)."""
    info = parse(PlateInfo, manifest["plate"], f"{root / 'manifest.json'} plate", fix) if "plate" in manifest else None
    if info is None or not info.changing_file:
        return None
    return _read_image(root, info.changing_file, cv2.IMREAD_GRAYSCALE, fix) > 127


def load_background(root: Path, manifest: dict, fix: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The plate (uint8 H x W x 3 RGB) and the masks (float16 N x H x W, memory-mapped) a manifest
    lists, each None when absent (a folder prepared before the plate)."""
    where = root / "manifest.json"
    plate = masks = None
    if "plate" in manifest:
        info = parse(PlateInfo, manifest["plate"], f"{where} plate", fix)
        plate = np.ascontiguousarray(_read_image(root, info.file, cv2.IMREAD_COLOR, fix)[..., ::-1])
    if "masks" in manifest:
        minfo = parse(MasksInfo, manifest["masks"], f"{where} masks", fix)
        masks = load_npy(root, minfo.file, fix)
        if masks.ndim != 3 or masks.dtype != np.float16:
            raise DanceNowError(f"{root / minfo.file} holds {masks.dtype} {masks.shape}, not float16 (N, H, W) masks: {fix}")
    if "registration" in manifest:
        parse(RegistrationInfo, manifest["registration"], f"{where} registration", fix)
    return plate, masks


def load_npy(root: Path, name: str, fix: str) -> np.ndarray:
    """The .npy file a manifest names in `root`, memory-mapped (never unpickled)."""
    path = _inside(root, name, fix)
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DanceNowError(f"{path} is not a readable .npy file ({type(e).__name__}): {fix}") from None


def _read_image(root: Path, name: str, flags: int, fix: str) -> np.ndarray:
    path = _inside(root, name, fix)
    image = cv2.imread(str(path), flags)
    if image is None:
        raise DanceNowError(f"{path} is not a readable image: {fix}")
    return image


def _inside(root: Path, name: str, fix: str) -> Path:
    """`name` as a file of `root` itself: a manifest may not point elsewhere."""
    if Path(name).name != name or name in ("", ".", ".."):
        raise DanceNowError(f"{root / 'manifest.json'} names {name!r}, not a file of its own folder: {fix}")
    path = root / name
    if not path.is_file():
        raise DanceNowError(f"{path} is missing: {fix}")
    return path
