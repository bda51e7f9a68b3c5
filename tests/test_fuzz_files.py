"""The files we read from others, fuzzed with hypothesis: a bundle's manifest.json, calibration files,
renderer settings, and the pixel-stamp decoder. Each is either accepted and then usable (the
normalizer, the renderer and the engine checks run on it without error) or refused with a
DanceNowError naming the problem; never another exception, never a traceback for the user."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dancenow.engines.bundle import Manifest, read_manifest
from dancenow.errors import DanceNowError
from dancenow.realtime.live import pixelstamp
from dancenow.realtime.pose.choreography import pose_at
from dancenow.realtime.pose.normalize import Normalizer, PoseStats
from dancenow.realtime.pose.renderer import RenderConfig, render_label_map

from fuzz_strategies import CASES, FUZZ, JSON, dumps, json_texts, mutated

STATS = {"frame_size": [256, 192], "ankle_close": 240.0, "ankle_far": 220.0, "ankle_median": 230.0,
         "height_close": 200.0, "height_far": 180.0, "height_median": 190.0, "x_center": 96.0, "frames": 30}
SIZE = (256, 192)


def texts(doc: dict) -> st.SearchStrategy[bytes]:
    """`doc` mutated and written as JSON (sometimes as invalid UTF-8), or JSON text gone wrong."""
    return st.one_of(st.builds(dumps, mutated(doc), st.booleans()), st.builds(dumps, mutated(doc)),
                     json_texts(mutated(doc) | JSON))


def accepted(read, value, *naming: str):
    """`read(value)`, or None when it was refused with a one-line DanceNowError naming `naming`."""
    try:
        return read(value)
    except DanceNowError as e:
        assert all(n in str(e) for n in naming) and "\n" not in str(e), e
        return None


def _usable_stats(stats: PoseStats) -> None:
    """Accepted statistics normalize a dancing pose to finite points the renderer draws."""
    good = PoseStats.from_dict(STATS)
    for source, target in ((stats, good), (good, stats)):
        for t in (0.0, 0.7, 1.9):
            pose = Normalizer(source, target).apply(pose_at(t, source.frame_size))
            assert np.isfinite(pose.points).all(), (source, target)
            render_label_map(pose, SIZE)


@pytest.fixture(scope="module")
def bundle_copy(live_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The bundle's files hard-linked into a folder of its own, whose manifest the fuzzer rewrites."""
    out = tmp_path_factory.mktemp("fuzzed") / "bundle"
    out.mkdir()
    for p in live_bundle.iterdir():
        if p.is_file() and p.name != "manifest.json":
            os.link(p, out / p.name)
    return out, json.loads((live_bundle / "manifest.json").read_text())


@given(data=st.data())
@FUZZ
def test_fuzz_manifest(bundle_copy: tuple[Path, dict], data: st.DataObject) -> None:
    folder, manifest = bundle_copy
    (folder / "manifest.json").write_bytes(data.draw(texts(manifest)))
    CASES["manifest.json"] += 1
    try:
        m = read_manifest(folder, verify=data.draw(st.booleans()))
        # what Target reads from an accepted manifest (engines.loader.check_manifest: see below)
        if m.renderer:
            RenderConfig.from_dict(m.renderer)
        if m.pose_stats:
            _usable_stats(PoseStats.from_dict(m.pose_stats))
    except DanceNowError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert isinstance(m, Manifest)


@pytest.mark.parametrize("io", [None, 3, {"pose": None}, {"pose": 7}])
def test_mistyped_generator_io_is_a_clear_error(bundle_copy: tuple[Path, dict], io) -> None:
    """Found by test_fuzz_manifest: the engine's own check of the manifest must refuse these by name."""
    from dancenow.engines.loader import check_manifest

    folder, manifest = bundle_copy
    (folder / "manifest.json").write_text(json.dumps({**manifest, "generator": {**manifest["generator"], "inputs": io}}))
    with pytest.raises(DanceNowError, match="generator"):
        check_manifest(folder, read_manifest(folder, verify=False))


@given(content=texts(STATS))
@FUZZ
def test_fuzz_calibration_file(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    path = tmp_path_factory.getbasetemp() / "calibration.json"
    path.write_bytes(content)
    CASES["calibration file"] += 1
    stats = accepted(PoseStats.read, path, "calibration.json", "dancenow calibrate")
    if stats is not None:
        _usable_stats(stats)


@given(settings=mutated(RenderConfig().to_dict()) | JSON)
@FUZZ
def test_fuzz_renderer_settings(settings) -> None:
    CASES["renderer settings"] += 1
    config = accepted(RenderConfig.from_dict, settings, "renderer settings")
    for t in (0.0, 1.3) if config is not None else ():
        image = render_label_map(pose_at(t, SIZE), SIZE, config)
        assert image.shape == (*SIZE, 3) and image.dtype == np.uint8


DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int64, np.float16, np.float32, np.float64, np.bool_])


@given(image=hnp.arrays(DTYPES, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=70))
       | hnp.arrays(np.uint8, st.tuples(st.integers(0, 64), st.integers(0, 400), st.sampled_from([1, 3, 4]))))
@FUZZ
def test_fuzz_pixel_stamp_decoder(image: np.ndarray) -> None:
    """Any array: a stamp, None, or a DanceNowError naming what an image must be."""
    CASES["pixel-stamp decoder"] += 1
    got = accepted(pixelstamp.decode, image, "pixel stamp")
    assert got is None or (0 <= got[0] < 1 << pixelstamp.COUNTER_BITS and 0 <= got[1] < 1 << pixelstamp.TIME_BITS)


@given(counter=st.integers(0, 2**40), ms=st.floats(0, 2e12), width=st.integers(8, 640), extra=st.integers(0, 40),
       noise=st.integers(0, 60), seed=st.integers(0, 2**32 - 1))
@FUZZ
def test_fuzz_pixel_stamp_round_trip(counter: int, ms: float, width: int, extra: int, noise: int, seed: int) -> None:
    """What encode paints, decode reads back, through noise a codec could add."""
    CASES["pixel-stamp decoder"] += 1
    h = pixelstamp.band_height(width) + extra
    rng = np.random.default_rng(seed)
    image = pixelstamp.encode(rng.integers(0, 256, (h, width, 3), dtype=np.uint8), counter, ms)
    noisy = np.clip(image.astype(int) + rng.integers(-noise, noise + 1, image.shape), 0, 255).astype(np.uint8)
    assert pixelstamp.decode(noisy) == (counter % (1 << pixelstamp.COUNTER_BITS), int(ms) % (1 << pixelstamp.TIME_BITS))


def test_fuzz_files_summary(capsys: pytest.CaptureFixture) -> None:
    keys = ("manifest.json", "calibration file", "renderer settings", "pixel-stamp decoder")
    with capsys.disabled():
        print("\nfile fuzz cases: " + "; ".join(f"{k}: {CASES[k]}" for k in keys))
    assert all(CASES[k] for k in keys)
