"""`dancenow prepare` on real footage (dancer A): counts, crop, statistics and the held-out tail."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dancenow.realtime.pose import skeleton as sk
from dancenow.training.prepare import PrepareConfig, load_prepared, prepare


@pytest.fixture(scope="module")
def dancer_a_data(dancer_a: Path, tmp_path_factory) -> Path:
    return prepare(dancer_a, tmp_path_factory.mktemp("dancer_a") / "data", PrepareConfig())


@pytest.mark.data
@pytest.mark.slow
def test_prepare_dancer_a(dancer_a_data: Path, dancer_a: Path) -> None:
    data = load_prepared(dancer_a_data)
    m = data.manifest
    # 640x1024 portrait clip: kept aspect, long side 256, multiples of 8.
    assert data.size == (256, 160) and m["source_size"] == [1024, 640]
    assert m["counts"]["decoded"] == 150 and m["counts"]["kept"] + m["counts"]["dropped"] == 150
    assert m["counts"]["kept"] >= 145, "MediaPipe finds dancer A in (nearly) every frame"
    n = m["counts"]["kept"]
    assert m["split"]["holdout"] == round(0.15 * n) and m["split"]["train"] + m["split"]["holdout"] == n
    src = m["source_index"]
    assert src == sorted(src) and len(src) == n
    assert src[m["split"]["train"]:] == list(range(src[m["split"]["train"]], src[-1] + 1)), "held-out = contiguous tail"
    assert src[-1] == 149
    # Every pose lies inside the crop and the person fills a sensible part of it.
    pts = np.array([p.points[:33] for p in data.poses])
    assert pts[..., 0].min() > -5 and pts[..., 0].max() < 165 and pts[..., 1].min() > -5 and pts[..., 1].max() < 261
    st = data.stats
    assert st["frame_size"] == [256, 160] and st["frames"] >= 100
    assert 0.55 * 256 < st["height_median"] < 0.97 * 256
    assert st["ankle_far"] <= st["ankle_median"] <= st["ankle_close"] <= 256
    assert 40 < st["x_center"] < 120
    assert m["counts"]["faces"] >= 0.95 * n and data.face_crop == 32
    nose = np.array([p.points[sk.NOSE] for p in data.poses])
    boxes = np.array([b for b in data.face_boxes if b])
    assert ((boxes[:, 2] - boxes[:, 0]) == 32).all()
    assert np.abs((boxes[:, 0] + boxes[:, 2]) / 2 - nose[: len(boxes), 0]).max() < 17
    assert m["source_sha256"] and len(m["source_sha256"]) == 64
    # The face is drawn from the face mesh (lines), found in (nearly) every frame.
    assert m["renderer"]["face_lines"] is True
    assert sum(bool(p.confidence[sk.FACE].min() > 0.5) for p in data.poses) >= 0.95 * n
    # The frames are the crop: the label map's limbs fall on the dancer (not on the background).
    assert data.frames.shape == data.labels.shape == (n, 256, 160, 3)


@pytest.mark.data
@pytest.mark.slow
def test_prepare_again_reuses(dancer_a_data: Path, dancer_a: Path) -> None:
    before = (dancer_a_data / "frames.npy").stat().st_mtime_ns
    prepare(dancer_a, dancer_a_data, PrepareConfig())
    assert (dancer_a_data / "frames.npy").stat().st_mtime_ns == before


@pytest.mark.data
@pytest.mark.slow
def test_the_face_stage_weighs_the_mouth_below_the_nose(dancer_a_data: Path) -> None:
    """The mouth term's boxes (training/stages.py) land on dancer A's lips inside her face crops."""
    from dancenow.training.stages import mouth_weights

    data = load_prepared(dancer_a_data)
    idx = np.array([i for i in range(data.n_train - 1) if data.face_boxes[i + 1]])
    w = mouth_weights(data, idx + 1, [data.face_boxes[i + 1] for i in idx]).numpy()[:, 0]
    c = data.face_crop
    covered = w.reshape(len(idx), -1).mean(1)
    assert (covered > 0).mean() >= 0.95 and covered.max() < 0.4, covered  # found, and a part of the face
    rows = np.array([np.nonzero(m.any(1))[0].mean() for m in w if m.any()])
    assert np.median(rows) > c / 2, "the lips lie below the crop's centre (the nose)"
