"""`dancenow bench soak` for half a minute (the 30-minute run is a benchmark, not a test): every
figure is there, per row and overall, and the table names the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dancenow.cli import main
from dancenow.host import cpu_info, describe_cpu
from dancenow.realtime.bench import soak

from live_helpers import demo_clip

pytestmark = pytest.mark.slow


def test_soak_reports_every_figure(live_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clip = demo_clip(tmp_path / "performer.mp4", frames=45, size=(360, 270), fps=15.0)
    r = soak.run(live_bundle, minutes=0.75, clip=clip, interval=15.0)
    json.dumps(r)
    progress = capsys.readouterr().err.splitlines()  # each row as it ended, under the table's header
    assert soak.HEADER in progress and all(soak.format_row(row) in progress for row in r["rows"])
    assert r["host"] == cpu_info() and r["clip"] == "performer.mp4"
    assert len(r["rows"]) >= 2
    for row in r["rows"]:
        assert row["fps"] > 0 and row["fps_min"] > 0 and row["frames_out"] > 0, row
        assert row["samples"] > 0 and 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"], row
        assert row["dropped"] >= 0 and row["missed"] >= 0 and row["rss_mb"] > 0
        # each drop put down to a cause (stalls.py), the probes' stalls counted
        assert set(row["drops_why"]) == {"host", "process", "control", "slow", "burst", "unexplained"}
        assert sum(row["drops_why"].values()) <= row["dropped"] + 1 and set(row["stalls"]) == {"process", "host"}
        assert len(row["drops"]) == sum(row["drops_why"].values())
        assert all(d["slot"] in ("source", "poses") and 0 <= d["at_s"] <= row["seconds"] + 1 for d in row["drops"])
        # kept when over 50 ms, reported to 0.1 ms: a 50.04 ms stage reads 50.0
        assert all(f["stage"] in ("track", "render", "generate", "face", "output") and f["ms"] >= 50.0
                   for f in row["slow_frames"])
        # when the control ran: it starts with the row (a drop in that window is put down to it)
        assert row["control_ran_s"] and all(-1 < a <= b <= row["seconds"] + 1 for a, b in row["control_ran_s"]), row
    assert r["drift_ms"] is not None and r["rss_slope_mb_per_min"] is not None
    # viewers come and go: one joins after the first row, the oldest leaves after the second
    assert [row["viewers"] for row in r["rows"][:2]] == [2, 3]
    for row in r["rows"]:
        assert row["process"]["threads"] > 2 and row["process"]["open_files"] > 0 and row["process"]["gc_objects"] > 0
        assert row["sizes"]["peers"] >= row["viewers"] and row["sizes"]["telemetry_samples"] > 0
        assert row["thread_cores"]["pose"] > 0 and row["thread_cores"]["generate"] > 0 and row["cpu_cores"] > 0
    # the control: a fresh process timed the same tracker and engine beside the rows
    controls = [row["control"] for row in r["rows"] if "track_ms" in row["control"]]
    assert controls and all(c["track_ms"]["p50"] > 0 and c["generate_ms"]["p50"] > 0 for c in controls), r["rows"]
    # and how fast it computed when it ran, whatever its waits for a core
    assert all(0 < c["track_ms"]["cpu_p50"] and 0 < c["generate_ms"]["cpu_p50"] for c in controls), controls
    assert isinstance(r["targets"]["quiet_host"], bool) and r["targets"]["steal_max_pct"] >= 0.0
    table = soak.format_table(r)
    print("\n" + table)
    assert describe_cpu() in table and "drift" in table and "RSS slope" in table


def test_soak_arguments_are_checked(live_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["bench", "soak", "--target", str(live_bundle), "--minutes", "0"]) == 2
    assert "--minutes must be positive" in capsys.readouterr().err
    assert main(["bench", "soak", str(tmp_path / "none.mp4"), "--target", str(live_bundle), "--minutes", "1"]) == 2
    assert "clip not found" in capsys.readouterr().err


def test_a_minute_with_steal_is_not_a_quiet_hosts() -> None:
    rows = [{"minute": 1.0, "steal_pct": 0.4}, {"minute": 2.0, "steal_pct": 44.9}, {"minute": 3.0}]
    assert soak.noisy_minutes(rows) == [2.0]
    r = {"bundle": "b", "backend": "openvino", "clip": "c.mp4", "viewers": 2, "churn": True, "minutes": 3,
         "rows": [], "drift_ms": 1.0, "drifts_ms": {}, "rss_slope_mb_per_min": 0.1, "rss_mb": {"start": 1, "end": 1},
         "targets": {"drift_max_ms": 5, "rss_slope_max_mb_per_min": 0.5, "no_drops_after_minute_1": True,
                     "met": True, "quiet_host": False, "noisy_minutes": [2.0], "steal_max_pct": 44.9}}
    assert "not quiet" in soak.format_table(r) and "44.9 %" in soak.format_table(r)


def test_drift_compares_windows_not_single_minutes() -> None:
    """One minute's p50 swings with the viewer count (2 or 3 alternate): a single late 3-viewer
    minute against an early 2-viewer one is no drift; a real rise across the window is."""
    def row(p50: float, track: float, ctl: float) -> dict:
        return {"latency_ms": {"p50": p50}, "pipeline_p50_ms": track + 10, "stage_p50_ms": {"track": track, "generate": 5.0},
                "control": {"track_ms": {"p50": ctl}, "generate_ms": {"p50": 5.0}}}

    flat = [row(100.0 + 15 * (i % 2), 15.0, 16.0) for i in range(60)]
    d = soak.window_drifts(flat)
    assert flat[-1]["latency_ms"]["p50"] - flat[0]["latency_ms"]["p50"] == 15.0  # what last-minus-first said
    assert d["rows"] == 10 and d["latency_ms"] == 0.0 and d["pipeline_ms"] == 0.0 and d["control"]["track_ms"] == 0.0
    rising = [row(100.0 + i, 15.0 + i / 10, 16.0) for i in range(60)]
    d = soak.window_drifts(rising)
    assert d["latency_ms"] == 50.0 and d["track_ms"] == 5.0 and d["control"] == {"track_ms": 0.0, "generate_ms": 0.0}
    short = soak.window_drifts(rising[:4])  # a short run compares a fifth (at least one row) at each end
    assert short["rows"] == 1 and short["latency_ms"] == 3.0


def test_bench_web_drift_is_the_same_window_measure() -> None:
    """bench web's latency drift (first and last fifth of a phase's samples) uses the soak's helper:
    a spike at either end is no drift, a rise across the phase is."""
    from dancenow.realtime.bench.web import _summarise

    spikes = [{"t": i, "ms": 400.0 if i in (0, 99) else 50.0} for i in range(100)]
    assert _summarise(spikes)["drift_ms"] == 0.0
    rising = [{"t": i, "ms": 50.0 + i / 2} for i in range(100)]
    assert _summarise(rising)["drift_ms"] == 40.0


def test_the_verdict_is_a_creep_not_a_speed_up() -> None:
    """A run whose end is faster than its start (the host sped up) has not crept; a rise past the
    bar, an RSS slope past its bar or a drop after the first minute fails it."""
    assert soak.verdict(-18.5, 0.1, [0, 0])
    assert not soak.verdict(soak.TARGET_DRIFT_MS + 0.5, 0.1, [0])
    assert not soak.verdict(1.0, soak.TARGET_RSS_SLOPE + 0.1, [0])
    assert not soak.verdict(1.0, 0.1, [0, 1, 0])
    assert not soak.verdict(None, 0.1, [])
