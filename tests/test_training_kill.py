"""A trainer killed with SIGKILL (no handler runs, no cleanup) at random moments, most of them while
it writes a checkpoint: the last good checkpoint stays loadable every time, and the same command
resumes from it and finishes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dancenow.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from dancenow.training.prepare import PrepareConfig, prepare

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
STEPS = 40


def _wait_for_new_checkpoint(path: Path, before: int, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_mtime_ns != before):
        assert proc.poll() is None, f"the trainer exited ({proc.returncode}) before writing a checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within the timeout"
        time.sleep(0.02)


def _wait_for_temporary(run: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(run.glob(f".{CHECKPOINT_NAME}.*.tmp")):
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint write began"
        time.sleep(0.001)


@pytest.mark.slow
def test_sigkill_mid_checkpoint_keeps_the_last_good_one_and_resumes(tmp_path: Path) -> None:
    data = prepare(None, tmp_path / "data", PrepareConfig(size=(64, 48), frames=60, fps=3.0), synthetic=True)
    run = tmp_path / "run"
    ckpt = run / CHECKPOINT_NAME
    # a checkpoint (about 40 MB with the optimizers) after every step: most of the time is spent writing
    cmd = [sys.executable, "-m", "dancenow.cli", "train", str(data), "--out", str(run), "--steps", str(STEPS),
           "--no-face", "--checkpoint-every", "1"]
    rng = random.Random(16)
    last, mid_write = 0, 0
    for kills in range(1, 7):
        before = ckpt.stat().st_mtime_ns if ckpt.exists() else 0
        proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for_new_checkpoint(ckpt, before, proc)
            if kills % 2:  # at a random moment
                time.sleep(rng.uniform(0.0, 0.6))
            else:  # as soon as the next write has begun (its temporary file exists), plus up to 20 ms
                _wait_for_temporary(run, proc)
                time.sleep(rng.uniform(0.0, 0.02))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        mid_write += any(run.glob(f".{CHECKPOINT_NAME}.*.tmp"))  # the kill landed between mkstemp and rename
        step = load_checkpoint(run)["step"]  # never half a file
        assert last <= step < STEPS, (last, step)
        last = step
    print(f"{kills} SIGKILLs, {mid_write} of them while a checkpoint was being written; last good step {last}")
    assert mid_write >= 1, "no kill landed while a checkpoint was written"

    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {ckpt} at step {last}, face step 0" in done.stderr
    final = load_checkpoint(run)
    assert final["step"] == STEPS and final["summary"]["resumed_at"][-1] == [last, 0]
    assert not list(run.glob(".*.tmp")), "a killed writer's temporary file was left behind"
