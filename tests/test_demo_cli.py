"""The CLI's errors for the demo and offline commands: one line, exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dancenow import cli
from dancenow.demo.webcam import overlay


def test_demo_without_display_points_to_serve(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert cli.main(["demo", "--target", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no display" in err and "dancenow serve" in err and err.count("\n") == 1


def test_missing_bundle_is_one_line(tmp_path, capsys):
    assert cli.main(["run", "--source", "demo", "--target", str(tmp_path / "nope"), "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert "bundle" in err and err.count("\n") == 1


def test_unreadable_video_through_a_real_shell(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    r = subprocess.run([sys.executable, "-m", "dancenow.cli", "pose", str(bad), "-o", str(tmp_path / "o.mp4")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "not a video" in r.stderr


def test_overlay_draws_figures_without_touching_the_input():
    img = np.full((256, 576, 3), 128, np.uint8)
    from dancenow.realtime.live.telemetry import Calibration, Latency, PipelineStats

    stats = PipelineStats(running=True, fps=29.5, frames=10, frames_in=10, dropped=0, output_dropped=0,
                          latency_ms={"total": Latency(41.0, 50.0, 60.0), "generate": Latency(12.0, 13.0, 14.0)},
                          backend="openvino", device="cpu", precision="bf16", target="demo", resolution=(256, 192),
                          layout="side-by-side", calibration=Calibration("gathering", 0, 10))
    out = overlay(img, stats, recording=True)
    assert (img == 128).all() and (out != 128).any()


def test_camera_that_never_opens_is_a_clear_error():
    from dancenow.errors import DanceNowError
    from dancenow.realtime.live.sources import CameraSource

    src = CameraSource(57, retry=0.05)
    src.start()
    try:
        try:
            src.check_ready(timeout=0.5)
        except DanceNowError as e:
            msg = str(e)
        else:
            raise AssertionError("a camera that does not exist was reported ready")
    finally:
        src.close()
    assert "webcam:57" in msg and "/dev/video57" in msg and "--source demo" in msg


def test_run_with_no_camera_exits_with_one_line(tmp_path):
    """`dancenow run --source webcam:N` with no such camera: exit 2 within seconds, not a silent wait."""
    r = subprocess.run([sys.executable, "-m", "dancenow.cli", "run", "--source", "webcam:57", "--seconds", "60",
                        "--out", str(tmp_path / "o.mp4")], capture_output=True, text=True, timeout=240)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "no camera" in r.stderr and "--source demo" in r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_bench_widths_take_ngf_or_ngf_by_blocks(capsys):
    from dancenow.realtime.bench.widths import parse_widths

    assert parse_widths("8, 16,12x9") == (8, 16, (12, 9))
    assert cli._size("512") == 512 and cli._size("512x320") == (512, 320)  # prepare --size: the long side, or HxW
    for bad in ("12x", "0", "12x9x2", "a", ","):
        with pytest.raises(SystemExit):
            cli.main(["bench", "budgets", "--widths", bad])
        assert "12x9" in capsys.readouterr().err
