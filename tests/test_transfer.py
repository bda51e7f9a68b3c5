"""`dancenow transfer`: a whole real clip onto a target, frame count, duration, audio, metadata."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dancenow import cli
from dancenow.engines.bundle import read_manifest
from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.pose import load_track

from footage import CLIPS, DANCER_A
from live_helpers import make_bundle

CLIP = CLIPS / "handheld_basketball_man_full_body.mp4"  # 40 frames at 12 fps: the shortest clip


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


def with_audio(src: Path, out: Path) -> Path:
    """A copy of `src` (video re-encoded) with a 440 Hz AAC tone as long as the video."""
    with av.open(str(src)) as inp, av.open(str(out), "w") as dst:
        vin = inp.streams.video[0]
        rate = vin.average_rate
        vout = dst.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = vin.codec_context.width, vin.codec_context.height, "yuv420p"
        aout = dst.add_stream("aac", rate=44100)
        aout.layout = "mono"
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(vin)]
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1) / rate
            for p in vout.encode(vf):
                dst.mux(p)
        seconds = len(frames) / float(rate)
        n = int(seconds * 44100)
        t = np.arange(n) / 44100
        tone = (0.2 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
        for start in range(0, n, 1024):
            chunk = tone[start:start + 1024][None]
            af = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            af.sample_rate, af.pts = 44100, start
            for p in aout.encode(af):
                dst.mux(p)
        for s in (vout, aout):
            for p in s.encode(None):
                dst.mux(p)
    return out


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        n = sum(1 for _ in c.decode(v))
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return {"frames": n, "rate": v.average_rate, "audio": len(c.streams.audio), "meta": dict(c.metadata),
                "size": (v.codec_context.height, v.codec_context.width),
                "duration": float(c.duration or 0) / 1e6}


@pytest.mark.data
@pytest.mark.slow
def test_transfer_keeps_frames_duration_and_audio(bundle, tmp_path):
    src = with_audio(CLIP, tmp_path / "with_audio.mp4")
    out = tmp_path / "out.mp4"
    assert cli.main(["transfer", str(src), "--target", str(bundle), "-o", str(out), "--layout", "side-by-side"]) == 0
    s, o = probe(src), probe(out)
    assert abs(o["frames"] - s["frames"]) <= 1
    assert o["rate"] == s["rate"]
    assert abs(o["duration"] - s["duration"]) < 0.2
    assert o["audio"] == 1
    assert "tiny" in o["meta"].get("comment", "")
    assert o["size"][0] == 256 and o["size"][1] > 2 * 192  # performer | pose | target
    poses = out.with_suffix(".poses.jsonl").read_text().splitlines()
    assert len(poses) == s["frames"]


@pytest.mark.data
def test_transfer_without_audio_and_target_layout(bundle, tmp_path):
    out = tmp_path / "plain.mp4"
    assert cli.main(["transfer", str(CLIP), "--target", str(bundle), "-o", str(out)]) == 0
    o = probe(out)
    assert o["audio"] == 0 and o["size"] == (256, 192) and abs(o["frames"] - 40) <= 1


def test_transfer_errors_are_one_line(bundle, tmp_path, capsys):
    assert cli.main(["transfer", str(tmp_path / "nope.mp4"), "--target", str(bundle), "-o", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such file" in err
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    assert cli.main(["transfer", str(junk), "--target", str(bundle), "-o", str(tmp_path / "o.mp4")]) == 2
    assert "not a video" in capsys.readouterr().err
    assert cli.main(["transfer", str(junk), "--target", str(tmp_path / "missing"), "-o", str(tmp_path / "o.mp4")]) == 2
    assert "bundle" in capsys.readouterr().err


def test_demo_performer_and_strip(bundle, tmp_path):
    """No footage needed: the built-in performer as a source, and README's strip of rows."""
    import cv2

    from dancenow.realtime.transfer import TransferConfig, transfer, write_demo_performer

    source = write_demo_performer(tmp_path / "performer.mp4", seconds=2.0, fps=10.0)
    assert probe(source)["frames"] == 20
    strip = tmp_path / "strip.png"
    transfer(source, bundle, tmp_path / "out.mp4", TransferConfig(strip=strip, strip_frames=3))
    png = cv2.imread(str(strip))
    assert png is not None and png.shape[0] % 3 == 0
    rows = np.split(png, 3, axis=0)
    assert all(r.std() > 5 for r in rows)
    assert np.abs(rows[0].astype(int) - rows[2].astype(int)).mean() > 1, "the rows show the same moment"


@pytest.mark.data
def test_transfer_tracks_the_face_mesh_only_for_a_target_that_draws_it(bundle, tmp_path):
    """The tiny target draws the face as dots, so transfer skips the face mesh, as live; dancer A's
    face is big enough for the mesh (tests/test_face_mesh.py), so a tracked mesh would show."""
    assert not (read_manifest(bundle, verify=False).renderer or {}).get("face_lines", False)
    out = tmp_path / "a.mp4"
    assert cli.main(["transfer", str(DANCER_A), "--target", str(bundle), "-o", str(out)]) == 0
    track = load_track(out.with_suffix(".poses.jsonl"))
    assert any(p.confidence[:33].any() for p in track)
    assert not any(p.confidence[sk.FACE].any() for p in track)
