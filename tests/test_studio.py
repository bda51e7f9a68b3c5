"""The studio's API against the real server: uploads checked by decoding before anything else, one
make-target job at a time in its own process (409 for a second), refusals before training, cancel,
a restarted server resuming the job, the quota, names with path characters, the token, delete,
and switching to a named target."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from dancenow.realtime.bench.web import wait_for
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

from footage import DANCER_A
from partial_clips import cropped, empty_room

TOKEN = "studio-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _call(url: str, method: str = "GET", body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    h = {**(headers if headers is not None else AUTH), **({"Content-Type": "application/json"} if data else {})}
    req = urllib.request.Request(url, data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _upload(base: str, path: Path, name: str, headers: dict | None = None) -> tuple[int, dict]:
    async def go() -> tuple[int, dict]:
        form = aiohttp.FormData()
        form.add_field("video", path.read_bytes(), filename=path.name, content_type="video/mp4")
        async with aiohttp.ClientSession() as s, s.post(f"{base}/api/studio/upload?name={name}", data=form,
                                                        headers=headers if headers is not None else AUTH) as r:
            return r.status, await r.json()
    return asyncio.run(go())


@pytest.fixture()
def studio(live_bundle: Path, tmp_path: Path):
    cfg = ServeConfig(target=live_bundle, port=0, token=TOKEN, targets=tmp_path / "targets")
    with ServerThread(cfg) as st:
        yield st
    _kill_job(tmp_path / "targets")


def _kill_job(root: Path) -> None:
    job = root / ".work" / "studio-job.json"
    if job.is_file():
        pid = json.loads(job.read_text()).get("pid")
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, TypeError, PermissionError):
            pass


def test_everything_needs_the_token(studio):
    for method, path in (("GET", "/api/studio"), ("POST", "/api/studio/jobs"), ("DELETE", "/api/studio/jobs"),
                         ("DELETE", "/api/studio/targets/x"), ("GET", "/api/studio/preview")):
        code, body = _call(studio.url + path, method, {} if method == "POST" else None, headers={})
        assert code == 403 and "token" in body["error"], (method, path, code, body)
    code, _ = _upload(studio.url, Path(__file__), "x", headers={})
    assert code == 403


def test_bad_uploads_are_refused_and_nothing_is_kept(studio, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    code, body = _upload(studio.url, text, "notes")
    assert code == 400 and "not a video that can be decoded" in body["error"]
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    code, body = _upload(studio.url, empty, "empty")
    assert code == 400 and "empty (0 bytes)" in body["error"]
    for bad in ("..%2Fevil", ".hidden", "a%20b"):
        code, body = _upload(studio.url, text, bad)
        assert code == 400 and "upload name" in body["error"], bad
    code, listing = _call(studio.url + "/api/studio")
    assert code == 200 and listing["uploads"] == []
    studio.server.studio.cfg.max_upload_bytes = 1000  # the size cap
    room = empty_room(tmp_path / "room.mp4", seconds=2.0)
    code, body = _upload(studio.url, room, "room")
    assert code == 413 and "larger than" in body["error"]
    studio.server.studio.cfg.max_upload_bytes = 500 << 20
    studio.server.studio.cfg.quota_bytes = 1000  # the quota
    code, body = _upload(studio.url, room, "room")
    assert code == 507 and "quota is full" in body["error"]
    assert not any((studio.server.studio.uploads).glob("*"))


def _job(st: ServerThread) -> dict:
    return _call(st.url + "/api/studio")[1]["job"]


@pytest.mark.parametrize("video", ["nobody", "feet-cut-off"])
def test_unusable_footage_is_refused_before_training(studio, tmp_path, video):
    if video == "nobody":
        clip, why = empty_room(tmp_path / "room.mp4", seconds=6.0), "nobody found in 100% of the frames"
    else:
        if not DANCER_A.is_file():
            pytest.skip("real footage not found (../shared/data)")
        clip, why = cropped(DANCER_A, tmp_path / "desk.mp4", 0.10, 0.57), "the feet are out of view"
    code, body = _upload(studio.url, clip, "clip")
    assert code == 200 and body["seconds"] > 5.0
    code, job = _call(studio.url + "/api/studio/jobs", "POST", {"name": "refused", "upload": "clip", "minutes": 5})
    assert code == 200 and job["state"] == "running"
    wait_for(lambda: _job(studio)["state"] != "running", 120, "the job to end")
    job = _job(studio)
    assert job["state"] == "failed" and why in job["error"], job
    assert "train" not in job["stages"] and not (studio.server.studio.root / ".work" / "refused" / "run").exists()


def test_a_job_starts_beside_threads_holding_pyav_state_and_runs_niced(tmp_path):
    """The live loop's threads each keep a PyAV reformatter (`VideoFrame.reformat` caches one per
    thread). A job started with a preexec_fn hung: its forked child freed that reformatter before
    exec and waited forever on the slice threads' condition, and the server's loop waited for the
    exec (a CI run's studio tests froze so). The job must start promptly and run at nice 10."""
    import threading

    import av
    import numpy as np

    from dancenow.realtime.serve.studio import Studio, StudioConfig

    ready, release = threading.Event(), threading.Event()

    def holder() -> None:  # converts frames as an encoder thread does, then stays alive
        frame = av.VideoFrame.from_ndarray(np.zeros((480, 640, 3), np.uint8), format="rgb24")
        for _ in range(3):
            frame.reformat(format="yuv420p", width=320, height=240)
        ready.set()
        release.wait()

    threading.Thread(target=holder, daemon=True).start()
    assert ready.wait(10)
    studio = Studio(StudioConfig(root=tmp_path / "targets"), lambda request, body: None)
    studio.uploads.mkdir(parents=True)
    empty_room(studio.uploads / "room.mp4", seconds=5.0)
    started: list[dict] = []
    spawn = threading.Thread(target=lambda: started.append(studio.start("room", "room", 1)), daemon=True)
    try:
        spawn.start()
        spawn.join(30)
        assert started, "starting the job did not return in 30 s (the forked child hung before exec)"
        pid = started[0]["pid"]
        assert started[0]["state"] == "running", started[0]  # not judged dead while `nice` execs Python
        assert os.getpriority(os.PRIO_PROCESS, pid) == StudioConfig().nice == 10
        wait_for(lambda: studio.job()["state"] != "running", 120, "the job to end")
        job = studio.job()
        assert job["state"] == "failed" and "nobody found" in job["error"], job  # it ran make-target
    finally:
        release.set()
        _kill_job(studio.root)


@pytest.mark.data
@pytest.mark.slow
def test_one_job_at_a_time_cancel_restart_resumes_and_delete(live_bundle, tmp_path):
    if not DANCER_A.is_file():
        pytest.skip("real footage not found (../shared/data)")
    root = tmp_path / "targets"
    cfg = ServeConfig(target=live_bundle, port=0, token=TOKEN, targets=root)
    try:
        with ServerThread(cfg) as st:
            assert _upload(st.url, DANCER_A, "dancer")[0] == 200
            feet = cropped(DANCER_A, tmp_path / "desk.mp4", 0.10, 0.57)
            assert _upload(st.url, feet, "desk")[0] == 200
            code, job = _call(st.url + "/api/studio/jobs", "POST", {"name": "dancer", "upload": "dancer", "minutes": 3})
            assert code == 200
            code, body = _call(st.url + "/api/studio/jobs", "POST", {"name": "other", "upload": "desk"})
            assert code == 409 and "already running" in body["error"]
            assert _call(st.url + "/api/studio/uploads/dancer", "DELETE")[0] == 409  # in use
            assert _call(st.url + "/api/studio/jobs", "POST", {"name": "../x", "upload": "desk"})[0] == 400
            wait_for(lambda: _job(st).get("stage") == "train", 400, "training to start")
            pid = _job(st)["pid"]
        # the server is gone, and so is the job (a reboot): a new server starts it again
        os.killpg(pid, signal.SIGKILL)
        time.sleep(0.5)
        with ServerThread(cfg) as st:
            job = _job(st)
            assert job["state"] == "running" and job["resumed"] == 1 and job["pid"] != pid
            wait_for(lambda: _job(st).get("stage") == "train", 400, "training to resume")
            code, job = _call(st.url + "/api/studio/jobs", "DELETE")
            assert code == 200 and job["state"] == "cancelled"
            # a target in the list can be switched to by name, and deleted (not while on stage)
            shutil.copytree(live_bundle, root / "copy")
            listing = _call(st.url + "/api/studio")[1]
            assert listing["targets"] == ["copy"] and {u["name"] for u in listing["uploads"]} == {"dancer", "desk"}
            assert _call(st.url + "/api/target", "POST", {"target": "copy"})[0] == 200
            assert _call(st.url + "/api/studio/targets/copy", "DELETE")[0] == 409
            assert _call(st.url + "/api/target", "POST", {"target": str(live_bundle)})[0] == 200
            assert _call(st.url + "/api/studio/targets/copy", "DELETE")[0] == 200 and not (root / "copy").exists()
            assert _call(st.url + "/api/studio/targets/..%2F..%2Fetc", "DELETE")[0] in (400, 404)
            assert _call(st.url + "/api/studio/uploads/desk", "DELETE")[0] == 200
    finally:
        _kill_job(root)
