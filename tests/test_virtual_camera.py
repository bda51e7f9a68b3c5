"""`--virtual-camera`: a real PipeWire (and its session manager) started here in user space, the
generated target offered as a camera node, read back through GStreamer's pipewiresrc as a video
call would, and MediaPipe finds the target in what came through."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dancenow.errors import DanceNowError
from dancenow.realtime.live.virtualcam import CALL_SIZE, VirtualCameraConfig
from dancenow.realtime.pose.tracker import PoseTracker

from footage import CLIPS

NEEDED = ("dbus-daemon", "pipewire", "wireplumber", "gst-launch-1.0", "pw-cli")
CLIP_24FPS = CLIPS / "dancer_b_red_skirt_full_body.mp4"  # 24 fps


@pytest.fixture()
def pipewire(tmp_path: Path, monkeypatch):
    """PipeWire and WirePlumber on a private D-Bus session bus, as a desktop session runs them."""
    missing = [n for n in NEEDED if shutil.which(n) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: apt install pipewire pipewire-bin wireplumber "
                    "gstreamer1.0-pipewire gstreamer1.0-tools dbus; .ci/run installs them)")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={runtime}/bus")
    monkeypatch.delenv("PIPEWIRE_REMOTE", raising=False)
    procs = [subprocess.Popen(["dbus-daemon", "--session", "--nofork", f"--address=unix:path={runtime}/bus"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait(lambda: (runtime / "bus").exists(), 10, "the D-Bus session bus")
        procs.append(subprocess.Popen(["pipewire"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait(lambda: (runtime / "pipewire-0").exists(), 10, "the PipeWire socket")
        procs.append(subprocess.Popen(["wireplumber"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)
        yield runtime
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _nodes() -> str:
    return subprocess.run(["pw-cli", "ls", "Node"], capture_output=True, text=True, timeout=10).stdout


def _read_camera(name: str, size: tuple[int, int], frames: int) -> tuple[list[np.ndarray], float]:
    """`frames` RGB frames of the camera node `name` through pipewiresrc, and the seconds they took."""
    h, w = size
    cmd = ["gst-launch-1.0", "-q", "pipewiresrc", f"target-object={name}", f"num-buffers={frames}", "!",
           "videoconvert", "!", f"video/x-raw,format=RGB,width={w},height={h}", "!", "fdsink"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got, t0, first = [], time.monotonic(), None
    try:
        while len(got) < frames:
            buf = proc.stdout.read(h * w * 3)
            if len(buf) < h * w * 3:
                break
            first = first or time.monotonic()
            got.append(np.frombuffer(buf, np.uint8).reshape(h, w, 3))
    finally:
        proc.kill()
        proc.wait()
    assert got, f"nothing read from the camera node {name!r}: {proc.stderr.read().decode()[-400:]}"
    return got, time.monotonic() - (first or t0)


def _serve_camera(bundle: Path, config: VirtualCameraConfig, seconds: float):
    """`dancenow run` on the 24 fps clip with the virtual camera, in a thread (as the command runs)."""
    from dancenow.realtime.run import run

    errors: list[BaseException] = []

    def go() -> None:
        try:
            run(str(CLIP_24FPS), bundle, seconds=seconds, virtual_camera=config, status_every=100.0)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, errors


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("framing", ["full", "call"])
def test_the_target_is_a_pipewire_camera(pipewire, demo_bundle, framing):
    if not CLIP_24FPS.is_file():
        pytest.skip(f"{CLIP_24FPS} not found (no ../shared/data)")
    from dancenow.realtime.live.target import Target

    size = Target.open(demo_bundle).resolution if framing == "full" else CALL_SIZE
    name = f"dancenow-test-{framing}"
    runner, errors = _serve_camera(demo_bundle, VirtualCameraConfig(backend="pipewire", name=name, framing=framing),
                                   seconds=14.0)
    _wait(lambda: f'node.name = "{name}"' in _nodes() or errors, 30, f"the camera node {name}")
    assert not errors, errors
    assert "Video/Source" in _nodes()
    time.sleep(2.0)  # past the start-up frames
    frames, took = _read_camera(name, size, 90)
    runner.join(timeout=30)
    assert not errors, errors
    distinct = len({hashlib.sha1(f.tobytes()).digest() for f in frames})
    print(f"virtual camera ({framing}): {len(frames)} frames in {took:.2f} s, {distinct / took:.1f} distinct a second")
    assert frames[0].shape == (*size, 3)
    assert distinct / took >= 20.0
    found = 0
    with PoseTracker() as tracker:
        for i, f in enumerate(frames[::6]):
            found += tracker.track(f, i / 5).detected
    assert found >= 0.9 * len(frames[::6]), f"a person in {found} of {len(frames[::6])} frames read back"


def test_virtual_camera_options_are_checked_before_anything_runs(monkeypatch):
    with pytest.raises(DanceNowError, match="--framing 'tile'"):
        VirtualCameraConfig(framing="tile")
    with pytest.raises(DanceNowError, match="name"):
        VirtualCameraConfig(name="cam; rm -rf /")
    from dancenow.realtime.live.virtualcam import VirtualCamera

    monkeypatch.setenv("XDG_RUNTIME_DIR", os.devnull)  # no PipeWire socket there
    with pytest.raises(DanceNowError, match="no PipeWire daemon"):
        VirtualCamera(lambda: None, (256, 192), VirtualCameraConfig(backend="pipewire"))
