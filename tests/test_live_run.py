"""`dancenow run` and `dancenow calibrate` end to end on real frames."""

from __future__ import annotations

import json

import av
import pytest

from dancenow.cli import main

from live_helpers import demo_clip, make_bundle, write_clip


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The built-in performer, portrait 512x320 like the real clip: a video, no footage needed."""
    return demo_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", frames=40)


@pytest.fixture(scope="module")
def real_clip(dancer_a, tmp_path_factory):
    return write_clip(dancer_a, tmp_path_factory.mktemp("clips") / "real.mp4", frames=40, start=0)


def test_run_writes_a_video(clip, bundle, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert main(["run", "--source", str(clip), "--target", str(bundle), "--out", str(out), "--seconds", "5",
                 "--layout", "side-by-side"]) == 0
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        assert "DanceNow" in c.metadata.get("comment", "")
    assert len(frames) >= 2
    h, w, _ = frames[0].shape
    assert h == 256 and w == 160 + 192 + 192  # performer (portrait) | pose | target
    err = capsys.readouterr().err
    assert "fps" in err and f"wrote {len(frames)} frames" in err


@pytest.mark.data
def test_calibrate_then_run_reuses_the_file(real_clip, bundle, tmp_path, capsys):
    """A real body's statistics (the built-in performer's would not say much)."""
    clip = real_clip
    cal = tmp_path / "me.json"
    assert main(["calibrate", "--source", str(clip), "-o", str(cal), "--seconds", "30"]) == 0
    stats = json.loads(cal.read_text())
    assert stats["frames"] >= 10 and stats["frame_size"] == [512, 320]
    from dancenow.realtime.run import run

    result = run(str(clip), bundle, seconds=2, calibration=cal)
    assert result.calibration.state == "file" and result.frames > 0


def test_bad_arguments_are_one_line_errors(bundle, tmp_path, capsys):
    assert main(["run", "--source", str(tmp_path / "missing.mp4"), "--target", str(bundle), "--seconds", "1"]) == 2
    assert "unknown source" in capsys.readouterr().err
    assert main(["run", "--source", "demo", "--target", str(bundle), "--out", str(tmp_path / "x.gif")]) == 2
    assert ".mp4" in capsys.readouterr().err
    assert main(["run", "--source", "demo", "--target", str(bundle), "--seconds", "1",
                 "--calibration", str(tmp_path / "none.json")]) == 2
    assert "calibrate" in capsys.readouterr().err


def test_window_without_a_display_is_a_clear_error(bundle, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["run", "--source", "demo", "--target", str(bundle), "--window"]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_live_reports_every_figure(clip, bundle):
    from dancenow.realtime.bench import live as bench_live

    r = bench_live.run(clip, bundle, seconds=3, unpaced_seconds=2, naive_seconds=2, probe_seconds=1.5)
    json.dumps(r)
    for key in ("pipeline_paced", "pipeline_unpaced", "naive_paced", "naive_unpaced"):
        assert r[key]["frames"] > 0 and r[key]["fps"] > 0 and r[key]["cpu_cores"] > 0
        assert r[key]["latency_ms"]["total"]["p50"] > 0
    assert r["pipeline_unpaced"]["dropped"] == 0  # lossless: every frame went through
    assert set(r["pipeline_paced"]["latency_ms"]) >= {"track", "generate", "total"}
    assert r["throughput_ratio"] > 0 and len(r["targets"]) == 7
    assert set(r["thread_probe_fps"]) == {"1", "2"} and r["threads"] in (1, 2)
    assert r["host"]["model"] and "flags" in r["host"]
    assert "throughput ratio" in bench_live.format_table(r)
