"""The studio: become a target from the browser, without a shell.

`/studio` (the token) takes a recording from the browser's camera (MediaRecorder, uploaded when
it stops: one file, no second WebRTC path to keep in step with the live one) or an uploaded video
(`POST /api/studio/upload`, multipart, the file in a field named `video`, so scripts can use it
too), and runs `dancenow make-target` on it: one job at a time, in its own process, at a lower
priority with one thread, so the live loop keeps its cores. The job's state is on disk
(TARGETS/.work/studio-job.json): a server restarted mid-job starts it again, and make-target
resumes where it stopped. Its progress (stage, step, ETA, losses, a preview frame) comes from the
files make-target keeps up to date. Uploads are capped in size and duration, decoded (PyAV)
before anything else, stored under a sanitised name, and never executed; a disk quota covers
uploads and targets together, and the page lists and deletes both.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from dancenow.errors import DanceNowError
from dancenow.files import write_atomic
from dancenow.realtime.live.coverage import Coverage
from dancenow.realtime.serve import http
from dancenow.realtime.serve.http import HTTPProblem
from dancenow.targets import UPLOADS, WORK, check_name, named_target, targets_dir

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")
JOB_FILE = "studio-job.json"


@dataclass
class StudioConfig:
    root: Path | None = None  # the named targets' folder (default: targets_dir())
    max_upload_bytes: int = 500 << 20
    max_seconds: float = 600.0  # of video in one upload
    quota_bytes: int = 10 << 30  # uploads, work and targets together
    minutes: float = 10.0  # a job's default budget
    nice: int = 10  # the job's priority below the live loop's
    threads: int = 1  # the job's compute threads (the live loop keeps the other core)


def _name(value: object, what: str = "target name") -> str:
    """`check_name` answering 400 (a name is a folder name and nothing else)."""
    try:
        return check_name(value, what)
    except DanceNowError as e:
        raise HTTPProblem(400, str(e)) from None


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _alive(pid: int | None) -> bool:
    """A make-target process of ours still running under `pid` (not a reused pid)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return b"make-target" in cmdline and state != "Z"


class Studio:
    """Uploads, the one make-target job, and the named targets, behind the token."""

    def __init__(self, cfg: StudioConfig, check_token: Callable[[web.Request, dict], None],
                 on_target_deleted: Callable[[Path], None] | None = None,
                 pipeline: Callable[[], object | None] | None = None) -> None:
        self.cfg = cfg
        self.root = targets_dir(cfg.root)
        self.uploads = self.root / UPLOADS
        self.job_file = self.root / WORK / JOB_FILE
        self._check = check_token
        self._proc: subprocess.Popen | None = None
        self._on_deleted = on_target_deleted
        self._pipeline = pipeline or (lambda: None)  # the live loop whose tracker gives the verdict

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/studio", http.page("studio.html", "studio"))
        r.add_get("/api/studio", self._list)
        r.add_post("/api/studio/upload", self._upload)
        r.add_post("/api/studio/jobs", self._start)
        r.add_delete("/api/studio/jobs", self._cancel)
        r.add_get("/api/studio/preview", self._preview)
        r.add_get("/api/studio/verdict", self._verdict)
        r.add_post("/api/studio/verdict", self._verdict)
        r.add_delete("/api/studio/uploads/{name}", self._delete_upload)
        r.add_delete("/api/studio/targets/{name}", self._delete_target)

    # --- the job -----------------------------------------------------------------------------

    def job(self) -> dict | None:
        """The job's state: running (with its progress), done (with the verdict), failed (with the
        reason), cancelled; None when there never was one."""
        if not self.job_file.is_file():
            return None
        job = json.loads(self.job_file.read_text())
        running = self._running(job.get("pid"))
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None  # reaped
        work = self.root / WORK / job["name"]
        status = _read_json(work / "make-target.json") or {}
        if job["state"] == "running" and not running:
            finished = "export" in status.get("stages", {}) and status.get("running") is None
            job["state"] = "done" if finished else "failed"
            job["ended"] = time.time()
            if not finished:
                job["error"] = _last_error(work / "job.log")
            write_atomic(self.job_file, json.dumps(job).encode())
        job["stage"] = status.get("running")
        job["stages"] = {k: {a: b for a, b in v.items() if a != "footage"} for k, v in status.get("stages", {}).items()}
        if job["state"] == "running" and job["stage"] == "train":
            job["progress"] = _read_json(work / "progress.json")
        return job

    def _running(self, pid: int | None) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # ours: asked directly (its cmdline changes as `nice` execs)
        return _alive(pid)  # one a previous server started

    def start(self, name: str, upload: str, minutes: float | None = None) -> dict:
        name, upload = _name(name), _name(upload, "upload name")
        current = self.job()
        if current is not None and current["state"] == "running":
            raise HTTPProblem(409, f"a job is already running (target {current['name']!r}, stage {current['stage']}): "
                                   "wait for it or cancel it", headers={"Retry-After": "30"})
        video = self._upload_path(upload)
        if video is None:
            raise HTTPProblem(404, f"no upload named {upload!r}: upload or record the video first")
        minutes = float(minutes or self.cfg.minutes)
        if not 1.0 <= minutes <= 24 * 60:
            raise HTTPProblem(400, f"minutes {minutes:g}: give 1 to 1440")
        self._check_quota(0)
        job = {"name": name, "upload": upload, "minutes": minutes, "state": "running", "started": time.time()}
        self._spawn(job, video)
        return self.job() or job

    def _spawn(self, job: dict, video: Path) -> None:
        work = self.root / WORK / job["name"]
        work.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **{k: str(self.cfg.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                                    "OPENBLAS_NUM_THREADS")}}
        cmd = [sys.executable, "-m", "dancenow.cli", "make-target", str(video), "--name", job["name"],
               "--minutes", f"{job['minutes']:g}", "--targets", str(self.root)]
        # The priority is set by `nice`, never by a preexec_fn: Python code in a child forked from
        # the live loop's threads can hang before exec, and the loop with it (seen: a thread's
        # PyAV reformatter, freed in the child, waiting forever on its slice threads' condition).
        nice = shutil.which("nice")
        if nice and self.cfg.nice:
            cmd = [nice, "-n", str(self.cfg.nice), *cmd]
        with open(work / "job.log", "ab") as out:
            self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                          start_new_session=True)
        job["pid"] = self._proc.pid
        write_atomic(self.job_file, json.dumps(job).encode())
        log.info("studio: make-target %s started (pid %d, %g min)", job["name"], self._proc.pid, job["minutes"])

    def resume(self) -> dict | None:
        """At server start: a job the last server left running is started again (it resumes)."""
        if not self.job_file.is_file():
            return None
        job = json.loads(self.job_file.read_text())
        if job.get("state") != "running" or _alive(job.get("pid")):
            return None
        status = _read_json(self.root / WORK / job["name"] / "make-target.json") or {}
        video = self._upload_path(job["upload"])
        if video is None or ("export" in status.get("stages", {}) and status.get("running") is None):
            return None  # finished meanwhile, or its video was deleted: job() will say so
        job["resumed"] = job.get("resumed", 0) + 1
        self._spawn(job, video)
        log.info("studio: resumed the job for %s", job["name"])
        return job

    def cancel(self) -> dict:
        job = self.job()
        if job is None or job["state"] != "running":
            raise HTTPProblem(409, "no job is running")
        try:
            os.killpg(job["pid"], signal.SIGTERM)  # make-target saves a checkpoint and stops
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 20.0
        while self._running(job["pid"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        job.update(state="cancelled", ended=time.time())
        job = {k: v for k, v in job.items() if k not in ("stage", "stages", "progress")}
        write_atomic(self.job_file, json.dumps(job).encode())
        return job

    # --- uploads and targets -----------------------------------------------------------------

    def _upload_path(self, name: str) -> Path | None:
        return next((p for p in (self.uploads / f"{name}{s}" for s in VIDEO_SUFFIXES) if p.is_file()), None)

    def _check_quota(self, adding: int) -> None:
        used = _size(self.root)
        if used + adding > self.cfg.quota_bytes:
            raise HTTPProblem(507, f"the studio's disk quota is full ({used / 2**20:.0f} of "
                                   f"{self.cfg.quota_bytes / 2**20:.0f} MiB used): delete recordings or targets first")

    async def receive(self, request: web.Request) -> dict:
        """One uploaded video: streamed to disk under the cap, then decoded before it is kept."""
        if not request.content_type.startswith("multipart/"):
            raise HTTPProblem(400, "send the video as multipart/form-data, in a field named 'video'")
        if request.content_length is not None:
            if request.content_length > self.cfg.max_upload_bytes:
                raise HTTPProblem(413, f"the upload is larger than {self.cfg.max_upload_bytes >> 20} MiB")
            self._check_quota(request.content_length)
        reader = await request.multipart()
        name = request.query.get("name") or time.strftime("rec-%Y%m%d-%H%M%S")
        name = _name(name, "upload name")
        part = await reader.next()
        while part is not None and part.name != "video":
            part = await reader.next()
        if part is None:
            raise HTTPProblem(400, "no field named 'video' in the upload")
        suffix = Path(part.filename or "").suffix.lower()
        suffix = suffix if suffix in VIDEO_SUFFIXES else ".mp4"
        self.uploads.mkdir(parents=True, exist_ok=True)
        tmp = self.uploads / f".{name}.part"
        size = 0
        try:
            with open(tmp, "wb") as f:
                while chunk := await part.read_chunk(1 << 20):
                    size += len(chunk)
                    if size > self.cfg.max_upload_bytes:
                        raise HTTPProblem(413, f"the upload is larger than {self.cfg.max_upload_bytes >> 20} MiB")
                    f.write(chunk)
            if size == 0:
                raise HTTPProblem(400, "the upload is empty (0 bytes): record or choose the video again")
            self._check_quota(size)
            info = await asyncio.get_running_loop().run_in_executor(None, _decode_check, tmp, self.cfg.max_seconds)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        for old in (self.uploads / f"{name}{s}" for s in VIDEO_SUFFIXES):
            old.unlink(missing_ok=True)
        final = self.uploads / f"{name}{suffix}"
        tmp.rename(final)
        log.info("studio: upload %s (%d bytes, %s)", final.name, size, info)
        return {"upload": name, "bytes": size, **info}

    def listing(self) -> dict:
        uploads = sorted((p for p in self.uploads.glob("*") if p.suffix in VIDEO_SUFFIXES and p.is_file()),
                         key=lambda p: p.stat().st_mtime) if self.uploads.is_dir() else []
        targets = sorted(p.name for p in self.root.glob("*") if named_target(p.name, self.root)) \
            if self.root.is_dir() else []
        return {"uploads": [{"name": p.stem, "file": p.name, "bytes": p.stat().st_size} for p in uploads],
                "targets": targets, "job": self.job(),
                "quota": {"used": _size(self.root), "limit": self.cfg.quota_bytes}}

    def delete_upload(self, name: str) -> dict:
        path = self._upload_path(_name(name, "upload name"))
        if path is None:
            raise HTTPProblem(404, f"no upload named {name!r}")
        job = self.job()
        if job and job["state"] == "running" and job["upload"] == name:
            raise HTTPProblem(409, "a running job uses this video: cancel it first")
        path.unlink()
        return {"deleted": name}

    def delete_target(self, name: str) -> dict:
        folder = named_target(_name(name), self.root)
        if folder is None:
            raise HTTPProblem(404, f"no target named {name!r}")
        job = self.job()
        if job and job["state"] == "running" and job["name"] == name:
            raise HTTPProblem(409, "the running job makes this target: cancel it first")
        if self._on_deleted is not None:
            self._on_deleted(folder)  # the show must not be using it
        shutil.rmtree(folder)
        shutil.rmtree(self.root / WORK / name, ignore_errors=True)
        return {"deleted": name}

    # --- HTTP --------------------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        self._check(request, {})
        return web.json_response(self.listing())

    async def _upload(self, request: web.Request) -> web.Response:
        self._check(request, {})
        return web.json_response(await self.receive(request))

    async def _start(self, request: web.Request) -> web.Response:
        body = await http.json_body(request, 4096)
        self._check(request, body)
        return web.json_response(self.start(body.get("name"), body.get("upload"), body.get("minutes")))

    async def _cancel(self, request: web.Request) -> web.Response:
        self._check(request, {})
        return web.json_response(await asyncio.get_running_loop().run_in_executor(None, self.cancel))

    async def _preview(self, request: web.Request) -> web.Response:
        self._check(request, {})
        job = self.job()
        path = self.root / WORK / job["name"] / "preview.png" if job else None
        if path is None or not path.is_file():
            raise HTTPProblem(404, "no preview yet")
        return web.Response(body=path.read_bytes(), content_type="image/png")

    async def _verdict(self, request: web.Request) -> web.Response:
        """The live verdict on what the studio's camera shows (`coverage.py`); POST starts it afresh
        (a recording begins). The camera reaches the live loop as a performer's does."""
        self._check(request, {})
        pipeline = self._pipeline()
        if pipeline is None:
            raise HTTPProblem(503, "the live loop is not running")
        if request.method == "POST" or pipeline.coverage is None:
            pipeline.coverage = Coverage()
        return web.json_response(pipeline.coverage.verdict())

    async def _delete_upload(self, request: web.Request) -> web.Response:
        self._check(request, {})
        return web.json_response(self.delete_upload(request.match_info["name"]))

    async def _delete_target(self, request: web.Request) -> web.Response:
        self._check(request, {})
        return web.json_response(self.delete_target(request.match_info["name"]))


def _decode_check(path: Path, max_seconds: float) -> dict:
    """The container and codec checked by decoding with PyAV (one reader for every video we
    read), the duration capped; an HTTPProblem naming what is wrong."""
    from dancenow.realtime.media.reader import iter_frames, video_info

    try:
        info = video_info(path)
        first = next(iter(iter_frames(path, max_frames=1, fast=True)))
    except (DanceNowError, StopIteration) as e:
        why = (str(e) or "no frames").replace(str(path), "the upload")  # no server paths in answers
        raise HTTPProblem(400, f"not a video that can be decoded: {why}: upload an MP4, MOV, MKV or WebM video") from None
    seconds = info.frames / float(info.rate) if info.frames and info.rate else 0.0
    if seconds > max_seconds:
        raise HTTPProblem(413, f"the video is {seconds:.0f} s long: at most {max_seconds:.0f} s (cut it shorter)")
    return {"seconds": round(seconds, 2), "size": list(first.image.shape[:2])}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _last_error(log_path: Path) -> str:
    """The job's reason for failing: its last error line (make-target's refusals are one line)."""
    try:
        lines = log_path.read_text(errors="replace").replace("\r", "\n").splitlines()
    except OSError:
        return "the job ended without a log"
    for line in reversed(lines):
        if "error" in line.lower() or "cannot" in line.lower():
            return line.strip()[-500:]
    return (lines[-1].strip()[-500:] if lines else "the job ended without saying why")
