"""The one video reader: pts timestamps everywhere, on a variable-frame-rate file made here.

Preparation (its tracking pass) and the live file source must give the One Euro filter the same
times for the same frames; before, preparation used the pts and the file source index / rate.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dancenow.errors import DanceNowError
from dancenow.files import sha256
from dancenow.realtime.live.sources import FileSource
from dancenow.realtime.media.reader import iter_frames, video_info

# milliseconds: bursts and gaps, as a phone writes when the light changes
TIMES_MS = [0, 33, 50, 120, 133, 200, 300, 317, 334, 400, 500, 533]


def write_vfr(path: Path, times_ms: list[int] = TIMES_MS, size: tuple[int, int] = (96, 64)) -> Path:
    """An H.264 MP4 whose frames carry the given presentation times (a moving bar: each differs)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = size[1], size[0], "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        s.codec_context.options = {"bframes": "0"}
        for i, t in enumerate(times_ms):
            img = np.full((*size, 3), 40, np.uint8)
            img[:, (i * 5) % size[1]: (i * 5) % size[1] + 5] = 220
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode(None):
            c.mux(packet)
    return path


def test_reader_gives_the_written_presentation_times(tmp_path):
    clip = write_vfr(tmp_path / "vfr.mp4")
    got = [f.time for f in iter_frames(clip)]
    assert np.allclose(got, np.array(TIMES_MS) / 1000, atol=1e-3), got
    assert [f.index for f in iter_frames(clip)] == list(range(len(TIMES_MS)))
    info = video_info(clip)
    assert info.size == (96, 64) and not info.has_audio


def test_prepare_and_the_live_file_source_see_identical_timestamps(tmp_path):
    from dancenow.training.prepare import PrepareConfig, _track

    clip = write_vfr(tmp_path / "vfr.mp4")
    poses, _ = _track(clip, tmp_path, sha256(clip), PrepareConfig())
    prepared = [p.timestamp for p in poses]

    src = FileSource(clip, paced=False)
    live, after = [], 0
    with src:
        deadline = time.monotonic() + 30
        while len(live) < len(TIMES_MS) and time.monotonic() < deadline:
            got = src.frames.get(after, timeout=1.0)
            if got is not None:
                after, cf = got
                live.append(cf.clock)
    assert len(prepared) == len(live) == len(TIMES_MS)
    assert prepared == live  # the very same floats, not merely close
    assert np.allclose(live, np.array(TIMES_MS) / 1000, atol=1e-3)


def test_a_looping_file_source_keeps_its_clock_running(tmp_path):
    clip = write_vfr(tmp_path / "vfr.mp4", TIMES_MS[:4])
    src = FileSource(clip, paced=False, loop=True)
    clocks, after = [], 0
    with src:
        while len(clocks) < 10:
            got = src.frames.get(after, timeout=5.0)
            assert got is not None
            after, cf = got
            clocks.append(cf.clock)
    assert all(b > a for a, b in zip(clocks, clocks[1:], strict=False)), clocks


@pytest.mark.parametrize("content, message", [(b"", "empty"), (b"\x00" * 4096, "not a video")])
def test_what_is_not_a_video_is_a_clear_error(tmp_path, content, message):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(content)
    with pytest.raises(DanceNowError, match=message):
        next(iter_frames(bad))
    with pytest.raises(DanceNowError, match=message):
        FileSource(bad)


@pytest.mark.parametrize("colorspace", [None, 1])
def test_fast_conversion_is_close_to_swscale_and_leaves_bt709_to_it(colorspace):
    """The performer's fast path (OpenCV's BT.601 converter) stays within a few levels of
    swscale on a smooth picture; a frame marked BT.709 takes swscale's path, identical."""
    from dancenow.realtime.media.reader import to_rgb

    y, x = np.mgrid[0:64, 0:96]
    rgb = np.stack([x * 2.5, y * 3.5, 255 - x * 2.0], -1).clip(0, 255).astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    if colorspace is not None:
        frame.colorspace = colorspace
    exact, fast = to_rgb(frame), to_rgb(frame, fast=True)
    assert fast.shape == exact.shape == rgb.shape and fast.dtype == np.uint8
    diff = np.abs(fast.astype(int) - exact)
    if colorspace == 1:
        assert diff.max() == 0
    else:
        assert diff.mean() < 2.0 and diff.max() <= 8, (diff.mean(), diff.max())
