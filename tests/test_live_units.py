"""Fast checks of the live loop's parts: presence easing, telemetry, slot hand-over, layouts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time

import numpy as np
import pytest

from dancenow.realtime.live.compositor import compose
from dancenow.realtime.live.presence import HOLD, LIVE, REST, RETURN, Presence, PresenceConfig
from dancenow.realtime.live.slot import LatestSlot
from dancenow.realtime.live.sources import DemoSource
from dancenow.realtime.live.telemetry import Telemetry, stage_durations
from dancenow.realtime.pose.choreography import PERIOD, pose_at
from dancenow.realtime.pose.pose import Pose


def test_presence_holds_eases_to_rest_and_returns_smoothly():
    pr = Presence(PresenceConfig(hold_seconds=0.5, ease_seconds=1.0, return_seconds=0.3))
    fps = 30
    shown = []
    for i in range(90):  # 3 s of dance
        shown.append(pr.apply(pose_at(i / fps), i / fps))
    last_live = shown[-1][0]
    rest = pr.rest_pose()
    gap = [pr.apply(Pose.missing((256, 192)), (90 + i) / fps) for i in range(60)]  # 2 s away
    states = [s for _, s in gap]
    assert states[:15] == [HOLD] * 15 and states[-1] == REST
    assert all(np.array_equal(p.points, last_live.points) for p, s in gap if s == HOLD)
    vis = rest.confidence >= 0.3
    assert np.allclose(gap[-1][0].points[vis], rest.points[vis], atol=1e-3)  # at rest after hold + ease
    steps = [np.abs(b[0].points - a[0].points).max() for a, b in zip(gap, gap[1:], strict=False)]
    assert max(steps) < 0.25 * np.abs(rest.points - last_live.points).max()  # eased, not jumped
    back = [pr.apply(pose_at(5 + i / fps), (150 + i) / fps) for i in range(15)]
    assert back[0][1] == RETURN and back[-1][1] == LIVE
    direct = np.abs(pose_at(5).points - rest.points).max()
    assert np.abs(back[0][0].points - gap[-1][0].points).max() < 0.3 * direct
    assert np.array_equal(back[-1][0].points, pose_at(5 + 14 / fps).points)


def test_presence_before_anyone_was_seen_is_missing():
    pose, state = Presence().apply(Pose.missing((256, 192)), 0.0)
    assert not pose.detected and state == REST


def test_stage_durations_and_stats_are_json():
    t = Telemetry(window=10)
    for i in range(30):
        base = 100.0 + i / 30
        t.record({"capture": base, "pose_in": base + 0.001, "track": base + 0.016, "render": base + 0.018,
                  "gen_in": base + 0.019, "generate": base + 0.04, "face": base + 0.041, "output": base + 0.042})
    lat = t.latency()
    assert lat["total"].p50 == 42.0 and lat["track"].p99 == 15.0
    assert abs(t.fps() - 30.0) < 0.5
    assert len(t._stages["total"]) == 10  # bounded window
    json.dumps({k: dataclasses.asdict(v) for k, v in lat.items()})
    assert stage_durations({"capture": 1.0, "output": 1.5}) == {"output": 0.5, "total": 0.5}
    # a frame with a slow computing stage is kept with its times (bench soak's drop diagnosis);
    # a long wait (gen_in) is not a slow stage, and the fast frames above left nothing
    assert not t.slow
    t.record({"capture": 200.0, "pose_in": 200.001, "track": 200.09, "render": 200.092, "gen_in": 200.3,
              "generate": 200.32, "face": 200.321, "output": 200.322})
    assert len(t.slow) == 1 and t.slow[0][:3] == (200.001, 200.322, "track") and abs(t.slow[0][3] - 0.089) < 1e-6
    t.record({"capture": 300.0, "pose_in": 300.001, "track": 300.01, "gen_in": 300.4, "generate": 300.42,
              "output": 300.43})
    assert len(t.slow) == 1


def test_wait_taken_hands_over_without_dropping():
    slot: LatestSlot[int] = LatestSlot()
    got = []

    def reader():
        after = 0
        while len(got) < 50:
            r = slot.get(after, timeout=2)
            assert r is not None
            after, v = r
            got.append(v)
            time.sleep(0.001)

    th = threading.Thread(target=reader)
    th.start()
    for i in range(50):
        assert slot.wait_taken(timeout=2)
        slot.put(i)
    th.join()
    assert got == list(range(50)) and slot.dropped == 0


def test_layouts():
    gen = np.full((256, 192, 3), 100, np.uint8)
    perf = np.zeros((480, 640, 3), np.uint8)
    lab = np.full((256, 192, 3), 255, np.uint8)
    out = compose("side-by-side", gen, perf, lab)
    assert out.shape == (256, 342 + 192 + 192, 3)
    target = compose("target", gen, mark=True)
    assert target.shape == gen.shape and not np.array_equal(target, gen)  # the synthetic badge
    assert np.array_equal(gen, np.full((256, 192, 3), 100, np.uint8))  # the generated frame is untouched


def test_demo_source_is_deterministic_and_cached():
    a, b = DemoSource(cache=True), DemoSource()
    img_a, pose_a = a.frame_at(45)
    img_b, pose_b = b.frame_at(45)
    assert np.array_equal(img_a, img_b) and np.array_equal(pose_a.points, pose_b.points)
    loop = int(round(PERIOD * a.fps))
    assert a.frame_at(45 + loop)[0] is img_a  # the next loop reuses the drawn frame


def test_aget_cancelled_as_a_frame_arrives_stays_cancelled() -> None:
    """The race that hung the server in CI (the encoder's task survived its cancel, so stopping the
    stream never returned): an item wakes a waiting `aget` in the same loop turn as the cancel.
    Python 3.11's `asyncio.wait_for` then returns the item and drops the cancellation."""

    async def main() -> None:
        slot: LatestSlot[str] = LatestSlot()
        task = asyncio.create_task(slot.aget(0, timeout=5.0))
        await asyncio.sleep(0)  # asleep on its waiter
        slot.put("frame")  # wakes it through call_soon_threadsafe ...
        task.cancel()  # ... and the cancel comes in the same turn
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await slot.aget(0, timeout=1.0) == (1, "frame")  # the slot is as it was
        assert await slot.aget(1, timeout=0.05) is None and not slot._waiters

    asyncio.run(main())
