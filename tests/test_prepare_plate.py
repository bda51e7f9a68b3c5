"""The background plate, person masks and hand-held registration that `prepare` builds (issue 14,
point 1, the data side): on synthetic hand-held clips with known camera motion (footage-free),
on dancer A (a tripod) and on a real hand-held phone clip."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from dancenow.errors import DanceNowError
from dancenow.realtime.media.reader import iter_frames
from dancenow.realtime.media.writer import VideoWriter
from dancenow.realtime.pose.choreography import pose_at
from dancenow.realtime.pose.figure import draw_figure
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig
from dancenow.training.masks import background, dilate_px, masks_from_plate
from dancenow.training.plate import build_plate, over_plate
from dancenow.training.prepare import PrepareConfig, TargetData, load_prepared, prepare
from dancenow.training.profiles import get_profile
from dancenow.training.register import (
    RegisterConfig,
    background_shift,
    register_images,
    resample,
    warp,
    warp_points,
    work_image,
)
from dancenow.training.trainer import plate_targets

from footage import CLIPS, NO_DATA

HANDHELD = CLIPS / "handheld_basketball_man_full_body.mp4"


# --- helpers ---------------------------------------------------------------------------------------

def camera(i: int, n: int, size: tuple[int, int], margin: int, px: float = 1.0) -> np.ndarray:
    """A known hand-held camera: a 3x3 from the big canvas to frame i (shake and slow drift, up to
    about 6 `px` and 1.2 degrees), cropping `margin` px on every side."""
    h, w = size
    t = i / max(1, n - 1)
    dx = px * (6.0 * np.sin(2.1 * np.pi * t) + 1.5 * np.sin(11 * t))
    dy = px * (4.0 * np.cos(1.7 * np.pi * t) - 2.0)
    angle = 1.2 * np.sin(3.0 * t + 0.4)
    rot = np.vstack([cv2.getRotationMatrix2D(((w + 2 * margin) / 2, (h + 2 * margin) / 2), angle, 1.0), [0, 0, 1]])
    return np.array([[1, 0, dx - margin], [0, 1, dy - margin], [0, 0, 1]]) @ rot


def textured(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A room-like background with texture at several scales (ECC and corners need something to hold)."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = cv2.resize(rng.integers(40, 215, (h // 16, w // 16, 3)).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):
        p0 = tuple(int(v) for v in rng.integers(0, (w, h)))
        p1 = tuple(int(v) for v in rng.integers(0, (w, h)))
        cv2.line(img, p0, p1, tuple(int(c) for c in rng.integers(0, 255, 3)), 2, cv2.LINE_AA)
    for _ in range(30):
        c = tuple(int(v) for v in rng.integers(0, (w, h)))
        cv2.circle(img, c, int(rng.integers(3, 12)), tuple(int(v) for v in rng.integers(0, 255, 3)), -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), 0.7)


def synthetic_handheld(n: int, size: tuple[int, int] = (256, 192), margin: int = 16):
    """Frames of the synthetic dancer over a textured room, filmed by `camera`; with their true
    person masks, the cameras, and the room."""
    big = (size[0] + 2 * margin, size[1] + 2 * margin)
    room = textured(big)
    empty = draw_figure(Pose.missing(big), big)
    frames, masks, cams = [], [], []
    for i in range(n):
        drawn = draw_figure(pose_at(i * 0.25, big), big)
        alpha = masks_from_plate([drawn], empty)[0].astype(np.float32)[..., None]
        scene = (alpha * drawn + (1 - alpha) * room).astype(np.uint8)
        cam = camera(i, n, size, margin)
        frames.append(warp(scene, cam, size))
        masks.append(warp(alpha[..., 0], cam, size))
        cams.append(cam)
    return frames, masks, cams, room


def corner_error(found: np.ndarray, true: np.ndarray, size: tuple[int, int]) -> float:
    """How far apart two warps put a frame's corners (px)."""
    h, w = size
    c = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    return float(np.abs(warp_points(c, found) - warp_points(c, true)).max())


def psnr_outside(data: TargetData, fraction: float = 0.025) -> float:
    """The plate against every frame, outside the frame's dilated person mask (pooled)."""
    err = count = 0.0
    r = dilate_px(data.size[0], fraction)
    for frame, mask in zip(data.frames, data.masks, strict=True):
        bg = background(np.asarray(mask, np.float32), r)
        d = np.asarray(frame, np.float64)[bg] - data.plate[bg]
        err += float((d ** 2).sum())
        count += d.size
    return float(10 * np.log10(255.0 ** 2 / (err / count)))


def keypoints_in_mask(data: TargetData) -> float:
    """Fraction of confident body keypoints (inside the picture) on which the mask says person."""
    h, w = data.size
    hits = total = 0
    for pose, mask in zip(data.poses, data.masks, strict=True):
        pts = np.round(pose.points[:33][pose.confidence[:33] > 0.5]).astype(int)
        pts = pts[(pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)]
        hits += int((np.asarray(mask, np.float32)[pts[:, 1], pts[:, 0]] > 0.5).sum())
        total += len(pts)
    return hits / total


def steadiness(data: TargetData) -> np.ndarray:
    """Background shift of every saved frame against the reference frame, measured here at model
    resolution (px), independently of what prepare reported."""
    ref = data.source_index.index(data.manifest["registration"]["reference"])
    r = dilate_px(data.size[0], 0.04)
    gray = [cv2.cvtColor(np.asarray(f), cv2.COLOR_RGB2GRAY) for f in data.frames]
    bg = [background(np.asarray(m, np.float32), r) for m in data.masks]
    return np.array([background_shift(gray[ref], gray[i], bg[ref], bg[i]) for i in range(len(gray)) if i != ref])


# --- footage-free ----------------------------------------------------------------------------------

def test_registration_recovers_a_known_camera_and_the_plate_the_room() -> None:
    size = (256, 192)
    frames, masks, cams, room = synthetic_handheld(24, size)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    bg = [background(m, dilate_px(size[0], 0.04)) for m in masks]
    reg = register_images(gray, bg, RegisterConfig(), model_per_work=1.0)
    assert not reg.still and all(reg.ok)
    ref = reg.reference
    errors = [corner_error(reg.to_ref[i], cams[ref] @ np.linalg.inv(cams[i]), size) for i in range(len(frames))]
    assert max(errors) < 1.0, f"recovered camera off by {max(errors):.2f} px at the frame corners"
    before, after = reg.report(1.0)["before"], reg.report(1.0)["after"]
    print(f"synthetic: background shift before {before}, after {after} px; corner error max {max(errors):.2f} px")
    assert before["median"] > 2.0 and after["p95"] < 0.3
    # In the reference's frame, the plate is the room (where anyone ever saw it).
    moved = [resample(f, m, size) for f, m in zip(frames, reg.to_ref, strict=True)]
    moved_masks = [resample(m, t, size)[0] for m, t in zip(masks, reg.to_ref, strict=True)]
    plate = build_plate([f for f, _ in moved], moved_masks, [v for _, v in moved])
    truth = warp(room, cams[ref], size)
    inner = np.zeros(size, bool)
    inner[8:-8, 8:-8] = True
    seen = inner & ~plate.filled
    err = float(np.mean((plate.image[seen].astype(float) - truth[seen]) ** 2))
    assert 10 * np.log10(255 ** 2 / err) > 30
    assert plate.filled_fraction < 0.3  # the dancer hardly leaves the middle in 6 s


def test_still_camera_is_left_alone() -> None:
    """No camera motion: registration says still and gives the identity (no resampling blur)."""
    size = (256, 192)
    frames, masks, _, _ = synthetic_handheld(12, size)
    still = [frames[0]] * 12
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in still]
    bg = [background(masks[0], 4)] * 12
    reg = register_images(gray, bg, RegisterConfig(), model_per_work=1.0)
    assert reg.still and all(np.array_equal(m, np.eye(3)) for m in reg.to_ref)


def test_prepare_a_synthetic_handheld_video(tmp_path: Path) -> None:
    """End to end on a written video: real MediaPipe masks of the drawn dancer, the camera taken out."""
    size = (256, 192)
    frames, _, _, _ = synthetic_handheld(40, size)
    video = tmp_path / "handheld.mp4"
    with VideoWriter(video, fps=15) as w:
        for f in frames:
            w.write(f)
    out = prepare(video, tmp_path / "data", PrepareConfig(frames=40))
    data = load_prepared(out)
    reg = data.manifest["registration"]
    print(f"synthetic video: background motion before {reg['before']}, after {reg['after']} (model px)")
    assert not reg["still"] and reg["failed"] == 0
    assert reg["after"]["median"] < 0.25 * reg["before"]["median"] and reg["after"]["p95"] < 1.0
    assert np.nanmedian(steadiness(data)) < 0.5
    assert data.plate.shape == (*data.size, 3) and data.masks.shape == (len(data.frames), *data.size)
    assert keypoints_in_mask(data) >= 0.9
    assert psnr_outside(data) >= 28.0  # x264 on a fine texture, and the figure's shadow is not in MediaPipe's mask
    # the camera moved: training learns these frames over the plate (no drifting room to paint)
    learned = plate_targets(get_profile("cpu-realtime"), data)
    assert learned is not None and learned.shape == data.frames.shape
    assert plate_targets(replace(get_profile("cpu-realtime"), plate_target=False), data) is None


def test_synthetic_target_plate_is_its_background(tmp_path: Path) -> None:
    out = prepare(None, tmp_path / "data", PrepareConfig(size=(64, 48), frames=20, fps=3.0), synthetic=True)
    data = load_prepared(out)
    assert plate_targets(get_profile("cpu-realtime"), data) is None  # no camera: the frames as they are
    empty = draw_figure(Pose.missing((64, 48)), (64, 48))
    assert np.array_equal(data.plate, empty)
    assert data.masks.dtype == np.float16 and data.masks.shape == (20, 64, 48)
    assert 0.0 <= float(data.masks.min()) and float(data.masks.max()) <= 1.0
    assert keypoints_in_mask(data) >= 0.9
    assert data.manifest["registration"]["method"] == "none" and data.manifest["registration"]["failed"] == 0


def test_folder_without_plate_still_loads_and_bad_blocks_are_refused(tmp_path: Path) -> None:
    out = prepare(None, tmp_path / "data", PrepareConfig(size=(64, 48), frames=12, fps=3.0), synthetic=True)
    manifest = json.loads((out / "manifest.json").read_text())
    old = tmp_path / "old"
    shutil.copytree(out, old)
    for name in ("plate.png", "masks.npy"):
        (old / name).unlink()
    for key in ("plate", "masks", "registration"):
        manifest.pop(key)
    (old / "manifest.json").write_text(json.dumps(manifest))
    data = load_prepared(old)
    assert data.plate is None and data.masks is None and len(data.frames) == 12
    bad = json.loads((out / "manifest.json").read_text())
    bad["plate"]["file"] = "../../etc/passwd"
    (out / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(DanceNowError, match="not a file of its own folder"):
        load_prepared(out)
    bad["plate"] = {"file": "plate.png", "filled": "lots", "frames": 12, "dilate_px": 1}
    (out / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(DanceNowError, match="filled"):
        load_prepared(out)


# --- real footage ----------------------------------------------------------------------------------

def test_frames_over_the_plate_keep_the_person_and_take_the_room_from_the_plate() -> None:
    """What a generator composited over the plate can make: the drifting room of a hand-held clip
    is not asked of it (it painted streaks trying)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 64, 48, 3), dtype=np.uint8)  # a room that moves every frame
    plate = np.full((64, 48, 3), 120, np.uint8)
    masks = np.zeros((3, 64, 48), np.float16)
    masks[:, 20:40, 16:32] = 1.0  # the person
    out = over_plate(frames, masks, plate, radius=3)
    np.testing.assert_array_equal(out[:, 20:40, 16:32], frames[:, 20:40, 16:32])  # the person, as filmed
    np.testing.assert_array_equal(out[:, :10], np.broadcast_to(plate[:10], out[:, :10].shape))  # far: the plate
    np.testing.assert_array_equal(out[:, 30, 33], frames[:, 30, 33])  # the margin grown around the person too
    np.testing.assert_array_equal(out[:, 30, 44], np.broadcast_to(plate[30, 44], (3, 3)))  # past the feather
    between = out[:, 30, 36].astype(int)  # the feather: between the frame and the plate
    assert (np.abs(between - 120) <= np.abs(frames[:, 30, 36].astype(int) - 120)).all()


@pytest.fixture(scope="module")
def dancer_a_data(dancer_a: Path, tmp_path_factory) -> TargetData:
    return load_prepared(prepare(dancer_a, tmp_path_factory.mktemp("plate_a") / "data", PrepareConfig(frames=60)))


@pytest.mark.data
def test_dancer_a_plate_has_nobody_in_it(dancer_a_data: TargetData) -> None:
    data = dancer_a_data
    with PoseTracker(TrackerConfig(min_detection_confidence=0.5)) as tracker:
        assert not tracker.track(data.plate, 0.0).detected, "MediaPipe finds a person on the plate"
        assert tracker.track(np.ascontiguousarray(data.frames[0]), 1.0).detected  # and on a real frame it does
    db = psnr_outside(data)
    filled = data.manifest["plate"]["filled"]
    print(f"dancer A (60 frames): plate PSNR outside the dilated person mask {db:.2f} dB, filled {filled:.1%}")
    assert db >= 30.0
    assert filled < 0.2


@pytest.mark.data
def test_dancer_a_masks_cover_the_person(dancer_a_data: TargetData) -> None:
    data = dancer_a_data
    cover = keypoints_in_mask(data)
    area = float(np.mean([(np.asarray(m, np.float32) > 0.5).mean() for m in data.masks]))
    print(f"dancer A: keypoints inside the mask {cover:.1%}, mask area {area:.1%} of the frame")
    assert cover >= 0.9 and 0.08 < area < 0.5


@pytest.mark.data
def test_dancer_a_tripod_is_not_registered(dancer_a_data: TargetData) -> None:
    reg = dancer_a_data.manifest["registration"]
    print(f"dancer A: background motion before {reg['before']}, after {reg['after']} (model px)")
    assert reg["still"] and reg["failed"] == 0 and reg["border_filled"] == 0.0
    assert reg["before"]["p95"] < 0.5 and reg["after"] == reg["before"]


@pytest.mark.data
def test_known_motion_on_real_frames_is_recovered(dancer_a: Path, dancer_a_data: TargetData) -> None:
    """Dancer A's tripod frames (source resolution) moved by a known hand-held camera of about 6
    model px and 1.2 degrees: registration, working as in prepare, undoes it within 1 model px."""
    cached = next(dancer_a_data.root.glob("track-*-masks.npy"))  # MediaPipe's masks from the fixture's pass
    masks = np.load(cached, mmap_mode="r")
    sources = [f.image for f in iter_frames(dancer_a, 60)][::2]
    h, w = sources[0].shape[:2]
    k = dancer_a_data.size[0] / h  # model px per source px (dancer A's crop is the whole frame height)
    margin = 48
    size = (h - 2 * margin, w - 2 * margin)
    cams = [camera(j, len(sources), size, margin, px=1 / k) for j in range(len(sources))]
    cfg = RegisterConfig()
    work = [work_image(warp(image, cam, size), warp(cv2.resize(np.asarray(masks[2 * j], np.float32) / 255, (w, h)),
                                                     cam, size), cfg)
            for j, (image, cam) in enumerate(zip(sources, cams, strict=True))]
    scale = work[0][2]
    reg = register_images([g for g, _, _ in work], [b for _, b, _ in work], cfg, k / scale, scale)
    ref = reg.reference
    errors = k * np.array([corner_error(reg.to_ref[j], cams[ref] @ np.linalg.inv(cams[j]), size)
                           for j in range(len(cams))])
    fig = reg.report(k)
    print(f"dancer A moved by a known camera: shift before {fig['before']}, after {fig['after']} model px; "
          f"error at the frame corners median {np.median(errors):.2f}, max {errors.max():.2f} model px")
    assert not reg.still and all(reg.ok)
    assert errors.max() < 1.0
    assert fig["after"]["median"] < 0.2 * fig["before"]["median"]


@pytest.mark.data
def test_real_handheld_clip_is_steadied(tmp_path: Path) -> None:
    if not HANDHELD.is_file():
        pytest.skip(NO_DATA)
    data = load_prepared(prepare(HANDHELD, tmp_path / "data", PrepareConfig(frames=90)))  # the clip has 40
    reg = data.manifest["registration"]
    measured = steadiness(data)
    print(f"hand-held clip ({len(data.frames)} frames): background motion before {reg['before']}, "
          f"after {reg['after']} (model px); re-measured on the saved frames: median {np.nanmedian(measured):.2f}, "
          f"max {np.nanmax(measured):.2f}; plate filled {data.manifest['plate']['filled']:.1%}")
    assert not reg["still"] and data.manifest["counts"]["kept"] >= 36
    assert reg["before"]["median"] > 3.0
    assert reg["after"]["median"] < 0.1 * reg["before"]["median"] and reg["after"]["p95"] < 1.0
    assert np.nanmedian(measured) < 0.5
    assert keypoints_in_mask(data) >= 0.9  # frames, poses and masks were moved together


@pytest.mark.data
def test_tracker_mask_is_an_option(dancer_a: Path) -> None:
    image = next(iter_frames(dancer_a)).image
    with PoseTracker() as tracker:
        assert "mask" not in tracker.track(image, 0.0).extras  # off by default: today's behaviour
    with PoseTracker(TrackerConfig(segmentation=True)) as tracker:
        pose = tracker.track(image, 0.0)
        nobody = tracker.track(np.zeros((64, 48, 3), np.uint8), 10.0)
        # The crowd guard's second look (a crop around the tracked person) pastes its mask back in place.
        rechecked = tracker._recheck(image, 0.04)
    mask = pose.extras["mask"]
    assert mask.shape == image.shape[:2] and mask.dtype == np.float32 and 0.1 < (mask > 0.5).mean() < 0.6
    assert not nobody.detected and not nobody.extras["mask"].any()
    again = rechecked.extras["mask"] > 0.5
    assert rechecked.detected and (again & (mask > 0.5)).sum() / (again | (mask > 0.5)).sum() > 0.9

