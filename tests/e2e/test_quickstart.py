"""README's first quick-start command, exactly as written: `make demo` serves the built-in performer on
the built-in demo target, and a headless Chromium at http://127.0.0.1:8080 sees the target dance."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import urllib.request

import cv2
import numpy as np
import pytest

from dancenow.realtime.bench.web import launch, wait_for

from footage import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]
URL = "http://127.0.0.1:8080"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _healthy() -> bool:
    try:
        with urllib.request.urlopen(URL + "/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _grab(page) -> np.ndarray:
    url = page.evaluate("() => window.dancenowGrab('target')")
    png = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    return cv2.cvtColor(cv2.imdecode(png, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def make_demo():
    if not _port_free(8080):
        pytest.skip("port 8080 is taken on this machine; `make test` runs the tests in their own network namespace")
    proc = subprocess.Popen(["make", "demo"], cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # A fresh machine exports the demo bundle from the committed checkpoint first (a few minutes).
        wait_for(lambda: _healthy() or proc.poll() is not None, 900, "make demo to serve /healthz", interval=1)
        if proc.poll() is not None:
            pytest.fail(f"make demo exited with {proc.returncode}:\n{proc.stdout.read()}")
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        print(out[-2000:])


def test_make_demo_serves_the_target_dancing(make_demo) -> None:
    from playwright.sync_api import sync_playwright

    from dancenow.realtime.pose.tracker import PoseTracker

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page()
            page.goto(URL + "/")
            wait_for(lambda: page.evaluate("() => window.dancenow.framesDecoded || 0") > 30, 120,
                     "the viewer page to decode 30 frames")
            frames = []
            for _ in range(6):
                frames.append(_grab(page))
                time.sleep(0.5)
            fps = page.evaluate("() => window.dancenow.fps")
        finally:
            browser.close()
    moves = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in zip(frames[:-1], frames[1:], strict=True)]
    with PoseTracker() as tracker:
        found = sum(tracker.track(f, i / 2).detected for i, f in enumerate(frames))
    print(f"make demo: {fps} fps in the viewer, frame-to-frame change {np.round(moves, 1)}, person in {found}/6")
    assert fps > 0
    assert frames[0].std() > 10, "the viewer shows a blank frame"
    assert sum(m > 1.0 for m in moves) >= 3, "the target does not move"
    assert found >= 3, "MediaPipe finds no person in what the viewer shows"
