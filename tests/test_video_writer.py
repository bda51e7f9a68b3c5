"""The one MP4 writer: nothing under the asked name until complete, real timestamps, odd sizes."""

from __future__ import annotations

import av
import numpy as np
import pytest

from dancenow.errors import DanceNowError
from dancenow.realtime.media.writer import VideoWriter


def _frames(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(s)]


def test_file_appears_only_when_closed_and_keeps_real_time(tmp_path):
    out = tmp_path / "live.mp4"
    w = VideoWriter(out, 30.0, (121, 161), {"comment": "x"}, live=True)  # odd sides: cropped to even
    for k, t in enumerate([0.0, 0.1, 0.5]):
        w.write(np.full((121, 161, 3), 40 * (k + 1), np.uint8), t)
        assert not out.exists()
    assert w.close() == out
    got = _frames(out)
    assert [round(t, 2) for t, _ in got] == [0.0, 0.1, 0.5]
    assert got[0][1].shape == (120, 160, 3)
    assert np.allclose([img.mean() for _, img in got], [40, 80, 120], atol=6)  # the same frames, in order
    assert list(tmp_path.iterdir()) == [out]


def test_abort_and_empty_leave_nothing(tmp_path):
    w = VideoWriter(tmp_path / "a.mp4")
    w.write(np.zeros((64, 64, 3), np.uint8))
    w.abort()
    assert VideoWriter(tmp_path / "b.mp4").close() is None
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "c.mp4") as w:
        w.write(np.zeros((64, 64, 3), np.uint8))
        raise RuntimeError("midway")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DanceNowError, match="does not exist"):
        VideoWriter(tmp_path / "nope" / "x.mp4")
