"""bench soak's stall probes: a stall of this process is seen by its own probe and not by the
probe in a process of its own; each drop is put down to the stall it fell in, a burst, or nothing."""

from __future__ import annotations

import time
from pathlib import Path

from dancenow.realtime.bench.stalls import StallProbes, explain


def test_a_stall_of_this_process_is_seen_by_its_own_probe(tmp_path: Path) -> None:
    probes = StallProbes(tmp_path / "stalls.log")
    try:
        time.sleep(0.3)
        probes.take()
        t = time.monotonic()
        sum(range(40_000_000))  # one C call that keeps the GIL: the other threads wait
        held = time.monotonic() - t
        time.sleep(0.3)
        stalls = probes.take()
    finally:
        probes.close()
    assert held > 0.1, "the machine is too fast for this test's stall"
    assert any(late > 0.5 * held for _, late in stalls["process"]), (held, stalls)
    # the other process kept its pace: the stall was this process's, not the host's
    assert max((late for _, late in stalls["host"]), default=0.0) < 0.5 * held, (held, stalls)


def test_each_drop_is_put_down_to_one_cause() -> None:
    stalls = {"host": [(10.0, 0.08)], "process": [(10.0, 0.08), (20.0, 0.06)]}
    drops = [(10.05, 0.06),  # just after a stall both probes saw: the host's
             (19.99, 0.06),  # inside a stall of this process only
             (30.0, 0.004),  # two frames 4 ms apart at a 16 fps source: a burst
             (40.0, 0.06),   # nothing seen
             (50.1, 0.06),   # while the soak's control process ran
             (60.05, 0.06)]  # while the tracker took 90 ms on one frame
    control = [(49.0, 52.0)]
    slow = [(59.98, 60.1, "track", 0.09)]
    assert explain(drops, stalls, 1 / 16, control, slow) == {"host": 1, "process": 1, "control": 1, "slow": 1,
                                                             "burst": 1, "unexplained": 1}
    assert explain(drops, stalls, 1 / 16)["unexplained"] == 3  # neither ran: the last two are not theirs
    assert explain([], stalls, frame_s=1 / 16) == dict.fromkeys(("host", "process", "control", "slow", "burst",
                                                                  "unexplained"), 0)


def test_both_probes_record(tmp_path: Path) -> None:
    """With no threshold every wake-up is recorded: the probe in its own process runs and its log is read."""
    probes = StallProbes(tmp_path / "stalls.log", threshold=0.0)
    try:
        time.sleep(0.5)
        stalls = probes.take()
    finally:
        probes.close()
    assert len(stalls["process"]) > 10 and len(stalls["host"]) > 10, {k: len(v) for k, v in stalls.items()}
