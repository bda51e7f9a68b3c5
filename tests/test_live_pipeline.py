"""The live pipeline on real frames: order, bounded memory, reconnects, performer lost/back."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest

from dancenow.realtime.live.pipeline import Pipeline, PipelineConfig
from dancenow.realtime.live.presence import HOLD, LIVE, REST, RETURN
from dancenow.realtime.live.sources import CameraSource, DemoSource, FileSource, PushSource, open_source
from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.stance import Stance

from live_helpers import demo_clip, drain, make_bundle, tiny_target, write_clip


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return tiny_target(make_bundle(tmp_path_factory.mktemp("bundle") / "tiny"))


@pytest.fixture(scope="module")
def short_clip(dancer_a, tmp_path_factory):
    """24 frames of a real dancer (the tests that check tracking a real person)."""
    return write_clip(dancer_a, tmp_path_factory.mktemp("clips") / "short.mp4", frames=24, start=20)


@pytest.fixture(scope="module")
def any_clip(tmp_path_factory):
    """24 frames of the built-in performer: for the tests that need a video, not footage."""
    return demo_clip(tmp_path_factory.mktemp("clips") / "demo.mp4", frames=24)


@pytest.mark.data
def test_lossless_file_outputs_every_frame_in_order(short_clip, target):
    src = FileSource(short_clip, paced=False)
    with Pipeline(src, target) as p:
        frames = drain(p)
        stats = p.stats()
    assert [f.seq for f in frames] == list(range(1, 25))
    assert all(f.image.shape == (*target.resolution, 3) for f in frames)
    assert all(f.pose is not None and f.pose.detected for f in frames)  # a real dancer, tracked
    # the performer's label maps differ frame to frame (real motion reached the generator)
    assert sum(not np.array_equal(a.label_map, b.label_map) for a, b in zip(frames, frames[1:], strict=False)) >= 20
    assert stats.frames == 24 and stats.dropped == 0
    for stage in ("track", "render", "generate", "total"):
        assert stats.latency_ms[stage].p50 > 0
    # stamps are in stage order for every frame
    for f in frames:
        ts = list(f.stamps.values())
        assert ts == sorted(ts)


@pytest.mark.data
def test_side_by_side_layout(short_clip, target):
    with Pipeline(FileSource(short_clip, paced=False), target, PipelineConfig(layout="side-by-side")) as p:
        frames = drain(p)
    h, w = target.resolution
    img = frames[0].image
    assert img.shape[0] == h and img.shape[1] > 2 * w  # performer | pose | target
    assert np.array_equal(img[:, -w:][: h // 2], frames[0].generated[: h // 2])  # target panel (mark at the bottom)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_slow_consumer_drops_instead_of_growing(target):
    src = DemoSource(fps=30)
    with Pipeline(src, target) as p:
        after, ages, rss, reads = 0, [], [], 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 12.0:
            got = p.output.get(after, timeout=10.0)
            assert got is not None
            after, f = got
            reads += 1
            ages.append(time.monotonic() - f.stamps["capture"])
            rss.append(_rss_mb())
            time.sleep(1.0)  # a consumer slower than the pipeline
        stats = p.stats()
    # every frame the consumer did not read was dropped by the slot, none queued for it
    assert stats.output_dropped >= 1, stats
    assert abs(stats.frames - reads - stats.output_dropped) <= 2, (stats.frames, reads, stats)
    # the source (30 fps) outran the pipeline too: dropped upstream, not queued
    assert stats.dropped > 0
    # what the consumer read was fresh: the age of frames does not creep up over the run
    third = len(ages) // 3
    assert np.mean(ages[-third:]) < np.mean(ages[:third]) + 0.5, ages
    assert rss[-1] - rss[2] < 25, f"memory grew: {rss[2]:.0f} -> {rss[-1]:.0f} MB"


def test_camera_that_disappears_is_reconnected(any_clip, tmp_path, target):
    dev = tmp_path / "camera.mp4"
    shutil.copy(any_clip, dev)
    src = CameraSource(str(dev), max_fps=30, retry=0.05, max_retry=0.2)
    with Pipeline(src, target) as p:
        assert p.output.get(0, timeout=20) is not None
        os.rename(dev, tmp_path / "unplugged.mp4")  # the device goes away
        deadline = time.monotonic() + 10
        while src.error is None and time.monotonic() < deadline:  # noticed at the end of its stream
            time.sleep(0.05)
        assert src.error  # "lost, reconnecting" / "not available, retrying"
        time.sleep(0.3)
        frozen = src.frames.seq
        time.sleep(0.5)
        assert src.frames.seq == frozen  # nothing comes while it is gone, and nothing crashed
        reconnects = src.reconnects
        out_seq = p.output.seq
        os.rename(tmp_path / "unplugged.mp4", dev)  # ... and comes back
        deadline, newest = time.monotonic() + 30, 0
        while newest <= frozen and time.monotonic() < deadline:
            got = p.output.get(out_seq, timeout=1.0)
            if got is not None:
                out_seq, newest = got[0], got[1].seq
        assert newest > frozen  # frames captured after the camera came back reach the output
        assert src.reconnects > reconnects and src.error is None
        assert p.running


@pytest.mark.data
def test_black_gap_holds_then_rests_then_resumes(dancer_a, tmp_path, target):
    # 16 fps: 16 real frames, 2.5 s of black, 16 real frames
    clip = write_clip(dancer_a, tmp_path / "gap.mp4", frames=32, start=40, black=(16, 56))
    with Pipeline(FileSource(clip, paced=False), target) as p:
        frames = drain(p)
    assert [f.seq for f in frames] == list(range(1, 73))
    states = [f.state for f in frames]
    # live before the gap, then hold, then rest, then back (blended), then live
    order = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    assert order[-5:] == [LIVE, HOLD, REST, RETURN, LIVE], order  # (a glide when calibration lands may precede)
    assert all(16 <= i < 56 for i, st in enumerate(states) if st in (HOLD, REST))
    last_live = max(i for i in range(56) if states[i] == LIVE)
    holds = [i for i, s in enumerate(states) if s == HOLD]
    # hold: the last live pose stays on screen unchanged
    assert all(np.array_equal(frames[i].label_map, frames[last_live].label_map) for i in holds)
    # rest: the pose moves away from the held one and settles on the target's own stance (breathing
    # a little, so not a still picture)
    body = list(range(sk.NUM_BODY))
    assert not np.array_equal(frames[54].label_map, frames[last_live].label_map)
    stance = Stance.of(target.pose_stats).pose.points[body]
    assert np.abs(frames[55].drawn.points[body] - stance).max() < 0.02 * target.resolution[0]
    assert not np.array_equal(frames[54].drawn.points[body], frames[55].drawn.points[body])
    # resume without a jump: each step while returning is smaller than jumping straight back
    first_back = 56
    direct = np.abs(frames[first_back + 4].drawn.points[body] - frames[55].drawn.points[body]).max()
    steps = [np.abs(frames[i].drawn.points[body] - frames[i - 1].drawn.points[body]).max()
             for i in range(first_back, first_back + 5)]
    assert direct > 5 and max(steps) < 0.6 * direct, (direct, steps)


def test_switch_source_and_engine_live(target):
    push = PushSource()
    with Pipeline(DemoSource(), target) as p:
        assert p.output.get(0, timeout=20) is not None
        p.set_source(push)
        img = np.full((240, 320, 3), 255, np.uint8)  # nobody in view
        after, pushed = p.output.seq, None
        deadline = time.monotonic() + 20
        while pushed is None and time.monotonic() < deadline:
            push.push(img, time.monotonic())
            got = p.output.get(after, timeout=0.2)
            if got is not None:
                after, f = got
                if f.pose is not None and f.pose.frame_size == (240, 320):
                    pushed = f
        assert pushed is not None and not pushed.pose.detected  # the pushed frames went through
        p.set_target(target)  # switching the target keeps the stream going
        push.push(img, time.monotonic())
        assert p.output.get(p.output.seq, timeout=10) is not None
    p.stop()  # idempotent
    assert not p.running


def test_open_source_errors_are_clear(tmp_path):
    from dancenow.errors import DanceNowError

    with pytest.raises(DanceNowError, match="unknown source"):
        open_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(DanceNowError, match="webcam:N"):
        open_source("webcam:x")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(DanceNowError, match="not a video"):
        open_source(str(bad))


class _FlakyTarget:
    """The real target, failing once on its 4th call (a transient runtime error)."""

    def __init__(self, target) -> None:
        self._engine, self.calls = target, 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, label_map, previous):
        self.calls += 1
        if self.calls == 4:
            raise RuntimeError("transient failure")
        return self._engine.generate(label_map, previous)


def test_a_failing_stage_is_restarted_not_frozen(target):
    flaky = _FlakyTarget(target)
    with Pipeline(DemoSource(), flaky) as p:
        after, seen = 0, 0
        deadline = time.monotonic() + 30
        while seen < 6 and time.monotonic() < deadline:
            got = p.output.get(after, timeout=1.0)
            if got is not None:
                after, seen = got[0], seen + 1
        stats = p.stats()
    assert seen >= 6 and flaky.calls > 4
    assert any("transient failure" in e for e in stats.errors)
