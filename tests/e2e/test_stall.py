"""A performer whose machine stalls: their Chromium stopped (SIGSTOP) for 10 s and resumed, as a
laptop that sleeps, a process that hangs or a Wi-Fi link that drops for a while. The server drops
the silent peer after the ICE consent window; the page must find out by itself and rejoin
within 2 s of the stall's end, without a reload, keeping the performer's calibration, and the
viewer's frames must resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from dancenow.realtime.bench.web import launch, wait_for
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

from test_browser import TOKEN, _decoded_more, _stats

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _chromium_tree(camera: Path) -> list[psutil.Process]:
    """The Chromium launched with `camera` as its fake camera, and every process under it."""
    mains = [p for p in psutil.process_iter(["cmdline"])
             if any(str(camera) in arg for arg in (p.info["cmdline"] or []))
             and not any("--type=" in arg for arg in (p.info["cmdline"] or []))]
    assert mains, "the test's Chromium process was not found"
    return [q for m in mains for q in (m, *m.children(recursive=True))]


def _signal(procs: list[psutil.Process], sig: int) -> None:
    for p in procs:
        try:
            os.kill(p.pid, sig)
        except ProcessLookupError:
            pass


@pytest.fixture()
def training_job(request, tmp_path: Path):
    """A real training run on the same two cores (a long one: it is killed at the end), or None."""
    if not request.param:
        yield None
        return
    from dancenow.training.prepare import PrepareConfig, prepare

    data = prepare(None, tmp_path / "data", PrepareConfig(size=(128, 96), frames=60, fps=3.0), synthetic=True)
    cmd = [sys.executable, "-m", "dancenow.cli", "train", str(data), "--out", str(tmp_path / "run"),
           "--steps", "100000", "--no-face"]
    job = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(5.0)  # past its start-up: training, not importing
        assert job.poll() is None, "the training job ended at once"
        yield job
    finally:
        job.kill()
        job.wait()


@pytest.mark.parametrize("training_job", [False, True], ids=["quiet", "training-beside"], indirect=True)
def test_a_stalled_performer_rejoins_by_itself_and_keeps_calibration(camera_y4m: Path, live_bundle: Path,
                                                                     training_job):
    from playwright.sync_api import sync_playwright

    with ServerThread(ServeConfig(target=live_bundle, port=0, token=TOKEN)) as st, sync_playwright() as pw:
        browser = launch(pw, camera=camera_y4m)
        procs: list[psutil.Process] = []
        try:
            performer = browser.new_page()
            performer.goto(f"{st.url}/perform#token={TOKEN}")
            viewer = browser.new_page()
            viewer.goto(st.url + "/")
            _decoded_more(performer, 20, timeout=60.0)
            _decoded_more(viewer, 20, timeout=60.0)
            wait_for(lambda: st.call(lambda s: s.status()["calibration"]["state"]) == "live", 40, "live calibration")
            before = st.call(lambda s: s.status()["calibration"])
            procs = _chromium_tree(camera_y4m.resolve())
            _signal(procs, signal.SIGSTOP)
            stopped = time.monotonic()
            # the server drops the silent performer (ICE consent: 3 missed checks a second apart)
            wait_for(lambda: st.call(lambda s: s.status()["performers"]) == 0, 9.0, "the stalled performer dropped")
            time.sleep(max(0.0, 10.0 - (time.monotonic() - stopped)))
            _signal(procs, signal.SIGCONT)
            resumed = time.monotonic()
            procs = []
            frames_in = st.call(lambda s: s.status()["frames_in"])
            wait_for(lambda: st.call(lambda s: s.status()["performers"]) == 1
                     and st.call(lambda s: s.status()["source"]["name"]) == "browser"
                     and st.call(lambda s: s.status()["frames_in"]) > frames_in + 5, 10.0, "the performer back")
            back = time.monotonic() - resumed
            after = st.call(lambda s: s.status()["calibration"])
            print(f"stall{' (training beside)' if training_job else ''}: performer back {back:.2f} s after the 10 s stall ended; calibration {before} -> {after}")
            assert back <= 2.0
            assert after["state"] == "live" and after["frames"] >= before["frames"]  # kept, not gathered afresh
            stats = _stats(performer)
            assert stats["rejoins"] >= 1 and stats["reconnects"] >= 1  # the page did it, no reload
            assert performer.evaluate("() => performance.getEntriesByType('navigation').length") == 1
            n = _stats(viewer)["framesDecoded"]
            _decoded_more(viewer, n + 15, timeout=30.0)  # the viewer's frames resume
            if training_job is not None:
                assert training_job.poll() is None  # it trained all along
        finally:
            _signal(procs, signal.SIGCONT)
            browser.close()
