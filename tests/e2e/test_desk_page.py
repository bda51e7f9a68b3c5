"""The performer page at a desk: Chromium's fake camera plays dancer A cropped to head-to-waist;
the server calibrates from the upper body and the page says what it sees and how to take full
control. And with Chromium's own fake camera (a test pattern, nobody in it), the target stands."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dancenow.realtime.bench.web import launch, wait_for
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

from partial_clips import cropped, make_y4m
from test_browser import TOKEN, _decoded_more, _grab

pytestmark = [pytest.mark.browser, pytest.mark.data, pytest.mark.slow]


def _calibration(st: ServerThread) -> dict:
    return st.call(lambda s: s.status()["calibration"])


def test_a_desk_performer_is_calibrated_and_told_what_the_target_lends(dancer_a, demo_bundle: Path, tmp_path):
    from playwright.sync_api import sync_playwright

    clip = cropped(dancer_a, tmp_path / "desk.mp4", 0.10, 0.57)
    camera = make_y4m(clip, tmp_path / "desk.y4m", width=320)
    with ServerThread(ServeConfig(target=demo_bundle, port=0, token=TOKEN)) as st, sync_playwright() as pw:
        browser = launch(pw, camera=camera)
        try:
            page = browser.new_page()
            page.goto(f"{st.url}/perform#token={TOKEN}")
            wait_for(lambda: _calibration(st)["frames"] > 0, 30.0, "the first upper-body frame")
            t0 = time.monotonic()
            wait_for(lambda: _calibration(st)["state"] == "live", 10.0, "live calibration")
            took = time.monotonic() - t0
            print(f"desk performer: calibrated {took:.2f} s after the first upper-body frame")
            assert took <= 3.0
            assert _calibration(st)["view"] == "waist"
            page.wait_for_function("() => document.getElementById('seen').dataset.view === 'waist'", timeout=10_000)
            said = page.inner_text("#seen")
            assert "head to waist" in said and "your legs are the target's" in said and "feet are in view" in said
        finally:
            browser.close()


def test_nobody_in_chromiums_own_fake_camera_shows_the_target_standing(demo_bundle: Path):
    from playwright.sync_api import sync_playwright

    from dancenow.realtime.pose.stance import ANKLES
    from dancenow.realtime.pose.tracker import PoseTracker

    with ServerThread(ServeConfig(target=demo_bundle, port=0, token=TOKEN)) as st, sync_playwright() as pw:
        browser = launch(pw)  # Chromium's own fake camera: a moving test pattern, nobody in it
        try:
            page = browser.new_page()
            page.goto(f"{st.url}/perform#token={TOKEN}")
            _decoded_more(page, 20)
            found = 0
            with PoseTracker() as tracker:
                for i in range(20):
                    p = tracker.track(_grab(page, "result"), i / 4)
                    found += bool(p.detected and (p.confidence[list(ANKLES)] > 0.5).all())
                    time.sleep(0.25)
            print(f"empty camera: the target found standing, ankles visible, in {found}/20 received frames")
            assert found >= 19
        finally:
            browser.close()
