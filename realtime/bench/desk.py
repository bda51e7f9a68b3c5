"""`bench desk`: a performer at a desk, measured as issue 25 asks, on any full-body clip.

The clip is cropped as a webcam at a desk sees it, head to waist and head to knees (the bands
measured on the clip itself with MediaPipe, so any shared clip serves), and each crop goes
through the live pipeline unpaced and lossless (what `dancenow run --source FILE --out` runs)
and through `dancenow transfer`. A real MediaPipe then reads the performer's frames and the
target's as both write them (H.264 files): per arm bone, the share of frames whose angle is
within 20 degrees of the performer's; and the share of frames in which the target stands, both
ankles seen (visibility above 0.5) inside its own standing band (so never a body cut off at the
waist).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dancenow.errors import DanceNowError
from dancenow.host import describe_cpu
from dancenow.realtime.bench.common import default_clip, host
from dancenow.realtime.live.target import Target
from dancenow.realtime.media.reader import iter_frames, video_info
from dancenow.realtime.media.writer import VideoWriter
from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.stance import ANKLES
from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig

_I = sk.INDEX
BONES = (("left upper arm", "left_shoulder", "left_elbow"), ("left forearm", "left_elbow", "left_wrist"),
         ("right upper arm", "right_shoulder", "right_elbow"), ("right forearm", "right_elbow", "right_wrist"))
WITHIN_DEG = 20.0
BAR = 0.90  # issue 25: every bone within 20 degrees on at least 90 % of frames
HEAD_ROOM, BELOW = 0.06, 0.04  # of the frame's height: above the head, below the hips or knees


def crop_band(clip: Path, out: Path, top: float, bottom: float, size: tuple[int, int] = (480, 640),
              frames: int | None = None) -> Path:
    """Rows `top`..`bottom` (fractions of the height) of every frame, the full width centred to
    the aspect of `size` (h, w) and resized to it: a camera that sees only that band."""
    info = video_info(clip)
    h, w = info.size
    y0, y1 = int(top * h), int(bottom * h)
    cw = min(w, int(round((y1 - y0) * size[1] / size[0])))
    x0 = (w - cw) // 2
    with VideoWriter(out, info.rate, size) as writer:
        for f in iter_frames(clip, max_frames=frames):
            band = np.ascontiguousarray(f.image[y0:y1, x0:x0 + cw])
            if cw < (y1 - y0) * size[1] / size[0] - 1:  # too narrow: pad the sides with the edge
                pad = int(round((y1 - y0) * size[1] / size[0])) - cw
                band = cv2.copyMakeBorder(band, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REPLICATE)
            writer.write(cv2.resize(band, (size[1], size[0]), interpolation=cv2.INTER_AREA))
    return out


def track(images, fps: float = 24.0) -> list[Pose]:
    """MediaPipe (its own graph, video mode) on `images`: the one reader of every measure here."""
    with PoseTracker(TrackerConfig()) as tracker:
        return [tracker.track(im, i / fps) for i, im in enumerate(images)]


def arm_angles(pose: Pose) -> np.ndarray:
    """Each bone of `BONES`: its direction in the image, degrees."""
    out = []
    for _, a, b in BONES:
        d = pose.points[_I[b]] - pose.points[_I[a]]
        out.append(float(np.degrees(np.arctan2(d[1], d[0]))))
    return np.array(out)


def bands(clip: Path, step: int = 5) -> dict[str, float]:
    """Where the performer's head top, hips and knees usually are, as fractions of the height."""
    info = video_info(clip)
    poses = [p for p in track([f.image for f in iter_frames(clip)][::step]) if p.detected]
    if not poses:
        raise DanceNowError(f"MediaPipe finds nobody in {clip}: use a clip that shows one person, head to feet")
    h = info.size[0]

    def at(names: tuple[str, ...]) -> float:
        return float(np.median([np.mean([p.points[_I[n], 1] for n in names]) for p in poses])) / h

    top = float(np.median([p.points[list(sk.HEAD_POINTS), 1].min() for p in poses])) / h
    return {"head": top, "hips": at(("left_hip", "right_hip")), "knees": at(("left_knee", "right_knee"))}


def crops(clip: Path, folder: Path, frames: int | None = None) -> dict[str, Path]:
    """Head to waist (640x480, a laptop's webcam) and head to knees (the clip's full width, so
    arms held out stay in view) of `clip` (its first `frames`), written into `folder`."""
    b = bands(clip)
    h, w = video_info(clip).size
    top = max(0.0, b["head"] - HEAD_ROOM)
    knees = min(1.0, b["knees"] + BELOW)
    knees_w = int(round(640 * w / ((knees - top) * h) / 2) * 2)
    return {"head to waist": crop_band(clip, folder / "waist.mp4", top, min(1.0, b["hips"] + BELOW), (480, 640),
                                       frames),
            "head to knees": crop_band(clip, folder / "knees.mp4", top, knees, (640, max(480, min(knees_w, 854))),
                                       frames)}


def standing(poses: list[Pose], target: Target) -> np.ndarray:
    """Per pose read from the target's frames: both ankles seen (above 0.5) inside the target's
    own standing band (its statistics' far and close ankle rows, with 5 % of the height)."""
    s = target.pose_stats
    h = target.resolution[0]
    lo = s.ankle_far / s.frame_size[0] * h - 0.05 * h
    hi = s.ankle_close / s.frame_size[0] * h + 0.05 * h
    ok = []
    for p in poses:
        y = float(p.points[list(ANKLES), 1].max())
        ok.append(bool(p.detected and (p.confidence[list(ANKLES)] > 0.5).all() and lo <= y <= hi))
    return np.array(ok)


def score(performer: np.ndarray, poses: list[Pose], target: Target) -> dict:
    """The share of frames each bone follows the performer's, all four at once, and standing."""
    got = np.array([arm_angles(p) for p in poses])
    n = min(len(performer), len(got))
    off = np.abs((got[:n] - performer[:n] + 180.0) % 360.0 - 180.0)
    ok = off <= WITHIN_DEG
    r = {name: round(float(ok[:, i].mean()), 4) for i, (name, _, _) in enumerate(BONES)}
    r["all four"] = round(float(ok.all(axis=1).mean()), 4)
    r["standing"] = round(float(standing(poses, target)[:n].mean()), 4)
    r["frames"] = n
    r["misses"] = {name: np.flatnonzero(~ok[:, i]).tolist() for i, (name, _, _) in enumerate(BONES)}
    return r


def _live(clip: Path, target: Target, out: Path) -> list[np.ndarray]:
    """What `dancenow run --source CLIP --out OUT` makes of `clip`, read back from the file it
    writes; unpaced, so that no frame drops and output frame i is the performer's frame i."""
    from dancenow.realtime.live.pipeline import PipelineConfig
    from dancenow.realtime.live.show import drain, open_show

    show = open_show(clip, target, PipelineConfig(), paced=False)
    with show.pipeline as pipeline:
        frames = drain(pipeline, timeout=1800.0)
    with VideoWriter(out, video_info(clip).rate, target.resolution) as writer:
        for f in frames:
            writer.write(f.generated)
    return [f.image for f in iter_frames(out)]


def _transfer(clip: Path, target: Target, out: Path) -> list[np.ndarray]:
    from dancenow.realtime.transfer import TransferConfig, transfer

    return [f.image for f in iter_frames(transfer(clip, target, out, TransferConfig()))]


def run(clip: str | Path | None, bundle: Path, keep: Path | None = None, frames: int | None = None) -> dict:
    """Both crops of `clip` (its first `frames`) through both paths on the target `bundle`; the
    outputs are kept in `keep` (a folder) when given, for contact sheets."""
    clip = default_clip(clip)
    target = Target.open(bundle)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dancenow-desk-") as tmp:
        folder = Path(keep) if keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        result = {"clip": clip.name, "target": target.name, "resolution": list(target.resolution),
                  "host": host(), "crops": {}}
        for view, crop in crops(clip, folder, frames).items():
            performer = np.array([arm_angles(p) for p in track([f.image for f in iter_frames(crop)])])
            paths = {"run --out (live)": _live(crop, target, folder / f"{crop.stem}.live.mp4"),
                     "transfer": _transfer(crop, target, folder / f"{crop.stem}.transfer.mp4")}
            result["crops"][view] = {"size": list(video_info(crop).size),
                                     **{k: score(performer, track(v), target) for k, v in paths.items()}}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def format_table(r: dict) -> str:
    lines = [f"bench desk: {r['clip']} on {r['target']} ({r['resolution'][0]}x{r['resolution'][1]}), "
             f"{r['seconds']} s", f"host: {describe_cpu()}",
             f"share of frames each bone is within {WITHIN_DEG:g} degrees of the performer's (bar {BAR:.0%}); "
             "standing: both ankles seen in the target's standing band",
             f"{'crop':<15}{'path':<18}" + "".join(f"{n:>16}" for n, _, _ in BONES) + f"{'all four':>10}{'standing':>10}"]
    for view, c in r["crops"].items():
        for path, s in c.items():
            if path == "size":
                continue
            cells = "".join(f"{s[n]:>15.1%}" + ("*" if s[n] < BAR else " ") for n, _, _ in BONES)
            lines.append(f"{view:<15}{path:<18}{cells}{s['all four']:>10.1%}{s['standing']:>10.1%}")
    lines.append("* below the bar")
    return "\n".join(lines)
