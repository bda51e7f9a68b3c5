"""The studio end to end in Chromium, no shell step: the fake camera plays a real dancer, the page
records her, makes a target with a small budget, the new target appears in the list, the page
switches to it, and a viewer receives frames of it (MediaPipe finds a person, and they differ from
the demo target's)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from dancenow.realtime.bench.web import launch, wait_for
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

from test_browser import TOKEN, _decoded_more, _grab
from test_studio import _kill_job

pytestmark = [pytest.mark.browser, pytest.mark.data, pytest.mark.slow]


def _person_found(frames: list[np.ndarray]) -> int:
    from dancenow.realtime.pose.tracker import PoseTracker

    with PoseTracker() as tracker:
        return sum(tracker.track(f, i / 2).detected for i, f in enumerate(frames))


def test_record_make_and_switch_to_a_target_from_the_browser(camera_y4m: Path, demo_bundle: Path, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    root = tmp_path / "targets"
    with ServerThread(ServeConfig(target=demo_bundle, port=0, token=TOKEN, targets=root)) as st, \
            sync_playwright() as pw:
        browser = launch(pw, camera=camera_y4m)
        try:
            viewer = browser.new_page()
            viewer.goto(st.url + "/")
            _decoded_more(viewer, 10)
            before = [_grab(viewer, "target") for _ in range(3)]
            page = browser.new_page()
            page.goto(f"{st.url}/studio#token={TOKEN}")
            # the live verdict: the camera reaches the live loop, whose tracker says what it sees
            page.wait_for_function("() => document.getElementById('verdict').dataset.inView === 'true'",
                                   timeout=60_000)
            print(f"studio: before recording the page says: {page.inner_text('#verdict')}")
            assert "✓ head to feet" in page.inner_text("#verdict")
            page.fill("#seconds", "10")  # the fake camera's clip: 150 frames of dancer A at 15 fps
            page.fill("#name", "me")
            page.click("#record")
            page.wait_for_function("() => document.getElementById('uploads').options.length > 0", timeout=60_000)
            said = page.inner_text("#verdict")
            print(f"studio: after recording the page says: {said}")
            # dancer A raises both arms in her clip: the meter has seen that much, and says what is missing
            assert "✓ arms up" in said and "still to show:" in said and "coverage 0%" not in said
            page.fill("#minutes", "3")
            page.click("#make")
            t0 = time.monotonic()
            # the job ends either way; a failure says why on the page, and the assert shows it
            page.wait_for_function("() => /me: (done|failed|cancelled)/.test(document.getElementById('job').textContent)",
                                   timeout=330_000)
            print(f"studio: target made in {time.monotonic() - t0:.0f} s; the page says: {page.inner_text('#job')}")
            assert "me: done" in page.inner_text("#job")
            assert "nearest-pose baseline" in page.inner_text("#job")
            page.wait_for_selector("#targets li", timeout=10_000)
            assert "target me" in page.inner_text("#targets")
            page.click("#targets li button:has-text('Switch to')")
            wait_for(lambda: Path(st.call(lambda s: s.status()["bundle"])) == root / "me", 30, "the switch")
            n = viewer.evaluate("() => window.dancenow.framesDecoded")
            _decoded_more(viewer, n + 15)
            after = [_grab(viewer, "target") for _ in range(6)]
            found = _person_found(after)
            h, w = before[0].shape[:2]  # the new target has its footage's aspect: compare at one size
            diff = float(np.mean([np.abs(cv2.resize(a, (w, h)).astype(int) - before[0].astype(int)).mean()
                                  for a in after]))
            print(f"studio: a person in {found}/6 frames of the new target; mean difference to the demo's {diff:.1f}")
            assert found >= 4 and diff > 10
        finally:
            browser.close()
            _kill_job(root)  # a job left running would slow every test after this one
