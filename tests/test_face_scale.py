"""EDN's face stage at the face's own resolution: the face net refines the crop at `scale` times its
size in the frame, learns from crops cut at that size from the decoded footage, and hands the frame
their area average (training/face_pixels.py, FaceConfig.scale)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.nn.functional import avg_pool2d

from dancenow.errors import DanceNowError
from dancenow.training.face_pixels import face_hi, upscaled_faces
from dancenow.training.networks import FaceConfig, FaceGenerator
from dancenow.training.prepare import PrepareConfig, load_prepared, prepare
from dancenow.training.stages import face_targets


def test_the_face_net_refines_at_its_scale_and_gives_the_frame_the_average() -> None:
    torch.manual_seed(0)
    one = FaceGenerator(FaceConfig(ngf=8, n_downsample=2, n_blocks=1, chroma_sigma=1.0))
    two = FaceGenerator(FaceConfig(ngf=8, n_downsample=2, n_blocks=1, chroma_sigma=1.0, scale=2))
    two.load_state_dict(one.state_dict())  # the same weights: a scale is not a new network
    label, frame = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        hi, lo = two(label, frame, hi=True), two(label, frame)
        assert hi.shape == (2, 3, 64, 64) and lo.shape == (2, 3, 32, 32)
        assert torch.allclose(lo, avg_pool2d(hi, 2), atol=1e-6)
        assert not torch.allclose(lo, one(label, frame), atol=1e-3)  # it does work at 64, not at 32
        assert one(label, frame, hi=True).shape == (2, 3, 32, 32)  # scale 1: hi is the crop's size
    assert FaceConfig.from_dict({"ngf": 8}).scale == 1, "face stages made before it stay at the crop's size"


def _pattern(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[:h, :w]
    return np.stack([(x * 7 + y * 3) % 256, (x * y) % 256, ((x // 2 + y // 2) % 2) * 255], -1).astype(np.uint8)


def test_face_crops_come_from_the_decoded_pixels_through_the_frames_own_transform() -> None:
    src = _pattern(400, 300)
    to_frame = np.array([[0.5, 0, -20.0], [0, 0.5, -10.0], [0, 0, 1.0]])  # crop at (40, 20), half size
    crop, own = face_hi(src, to_frame, (30, 40, 62, 72), 2)  # a 32 px box in the frame, at 2x: the source's pixels
    assert own and crop.shape == (64, 64, 3)
    assert np.array_equal(crop, src[20 + 80:20 + 144, 40 + 60:40 + 124])
    # A source with four times the pixels is averaged down, not sampled (its 1-px checks are grey).
    fine = np.zeros((800, 600, 3), np.uint8)
    fine[::2, ::2] = fine[1::2, 1::2] = 255
    crop, own = face_hi(fine, np.diag([0.25, 0.25, 1.0]), (10, 10, 42, 42), 2)
    assert own and 100 < crop.mean() < 155 and crop.std() < 20
    # Footage with fewer pixels than asked is upsampled, and says so.
    crop, own = face_hi(src, np.diag([2.0, 2.0, 1.0]), (10, 10, 42, 42), 2)
    assert not own and crop.shape == (64, 64, 3)
    assert face_hi(src, to_frame, None, 2)[0].size == 0


def test_a_folder_without_them_trains_on_its_crops_upsampled_and_says_so(tmp_path: Path, caplog) -> None:
    data = load_prepared(prepare(None, tmp_path / "data", PrepareConfig(size=(128, 96), frames=12), synthetic=True))
    assert data.faces_hi is None, "the synthetic dance has no footage to cut from"
    with caplog.at_level(logging.INFO):
        hi = face_targets(data, 2)
    assert "synthetic dance's face crops, upsampled 2x" in caplog.text
    caplog.clear()
    data.manifest["synthetic"] = False  # as a video folder prepared before faces_hi.npy
    with caplog.at_level(logging.WARNING):
        assert face_targets(data, 2).shape == hi.shape
    assert "prepared before them" in caplog.text and "prepare the video again" in caplog.text
    c = data.face_crop
    assert hi.shape == (12, 2 * c, 2 * c, 3)
    i = next(k for k, b in enumerate(data.face_boxes) if b)
    x0, y0, x1, y1 = data.face_boxes[i]
    down = avg_pool2d(torch.from_numpy(hi[i].astype(np.float32)).permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0)
    assert np.abs(down.numpy() - data.frames[i, y0:y1, x0:x1]).mean() < 6
    assert upscaled_faces(data.frames[:1], [None], 2).shape[0] == 1


@pytest.mark.data
@pytest.mark.slow
def test_prepare_keeps_dancer_as_face_at_twice_the_frames_size(dancer_a: Path, tmp_path: Path) -> None:
    """Dancer A at 256 (her face a 32 px crop): prepare cuts it again at 64 px from the 1024-high
    footage; averaged down it is the frame's crop, and it holds detail the frame's crop upscaled lacks."""
    data = load_prepared(prepare(dancer_a, tmp_path / "data", PrepareConfig(frames=24, plate=False)))
    n, c = len(data.frames), data.face_crop
    assert data.faces_hi is not None and data.faces_hi.shape == (n, 2 * c, 2 * c, 3)
    assert data.manifest["faces_hi"] == {"file": "faces_hi.npy", "scale": 2, "upsampled": 0}
    assert face_targets(data, 2) is data.faces_hi
    (tmp_path / "data" / "faces_hi.npy").rename(tmp_path / "kept.npy")  # a folder that lost the file: said, not a traceback
    with pytest.raises(DanceNowError, match="faces_hi.npy is missing: prepare the data again"):
        load_prepared(tmp_path / "data")
    (tmp_path / "kept.npy").rename(tmp_path / "data" / "faces_hi.npy")
    up = upscaled_faces(data.frames, data.face_boxes, 2)
    diffs, sharp = [], []
    for i, b in enumerate(data.face_boxes):
        if b is None:
            continue
        x0, y0, x1, y1 = b
        hi = data.faces_hi[i].astype(np.float32)
        down = hi.reshape(c, 2, c, 2, 3).mean((1, 3))
        diffs.append(np.abs(down - data.frames[i, y0:y1, x0:x1]).mean())
        detail = lambda a: cv2.Laplacian(a.mean(-1), cv2.CV_32F).var()  # noqa: E731
        sharp.append(detail(hi) / detail(up[i].astype(np.float32)))
    assert len(diffs) >= 0.9 * n
    assert np.median(diffs) < 4, diffs
    assert np.median(sharp) > 1.3, sharp  # dancer B at 512: 1.86
