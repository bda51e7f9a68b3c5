"""`dancenow pose`: a real clip in, the same frames and rate out; bad input is one clear line."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import av
import pytest

from dancenow.cli import main

from footage import CLIPS

SHORT = CLIPS / "handheld_basketball_man_full_body.mp4"  # 40 frames: the quickest real clip


def frames_and_rate(path) -> tuple[int, Fraction, tuple[int, int]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(video=0))
        return n, Fraction(s.average_rate), (s.height, s.width)


@pytest.mark.data
def test_pose_video_keeps_frame_count_and_rate(tmp_path):
    out = tmp_path / "pose.mp4"
    proc = subprocess.run([sys.executable, "-m", "dancenow.cli", "pose", str(SHORT), "-o", str(out), "--size", "256x192"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n_in, rate_in, (h, w) = frames_and_rate(SHORT)
    n_out, rate_out, (ho, wo) = frames_and_rate(out)
    assert (n_out, rate_out) == (n_in, rate_in)
    assert ho == h and wo == w + round(192 * h / 256)  # frame | label map scaled to the frame's height
    assert not list(tmp_path.glob(".*part*"))  # the temporary file was moved into place


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dancenow: error: ") and "Traceback" not in err[0]
    return err[0]


def test_missing_file(capsys, tmp_path):
    assert "no such file" in _error(capsys, ["pose", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o.mp4")])
    assert not (tmp_path / "o.mp4").exists()


def test_not_a_video(capsys, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is text, not a video\n")
    assert "is not a video" in _error(capsys, ["pose", str(fake), "-o", str(tmp_path / "o.mp4")])
    assert not (tmp_path / "o.mp4").exists()


def test_video_without_frames(capsys, tmp_path):
    empty = tmp_path / "empty.avi"
    with av.open(str(empty), "w") as c:  # a video stream, but not one frame in it
        s = c.add_stream("mpeg4", rate=25)
        s.width = s.height = 64
        c.start_encoding()
    assert "has no frames" in _error(capsys, ["pose", str(empty), "-o", str(tmp_path / "o.mp4")])
    assert not list(tmp_path.glob("*o.mp4*"))


def test_bad_camera_spec(capsys, tmp_path):
    assert "camera:N" in _error(capsys, ["pose", "camera:front", "-o", str(tmp_path / "o.mp4")])
