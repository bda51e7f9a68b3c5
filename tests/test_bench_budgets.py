"""`bench budgets`: rounds summarised so that one slow spell of a shared host cannot decide a budget."""

from __future__ import annotations

from dancenow.realtime.bench.budgets import _summary


def test_a_slow_round_does_not_decide_the_figure():
    rounds = [{"median_ms": 16.0, "p95_ms": 17.0}, {"median_ms": 22.0, "p95_ms": 25.0}, {"median_ms": 16.4, "p95_ms": 18.0}]
    s = _summary(rounds)
    assert s["median_ms"] == 16.4 and s["p95_ms"] == 18.0
    assert s["rounds_ms"] == [16.0, 22.0, 16.4]


def test_failed_rounds_are_left_out_and_an_all_failed_row_keeps_its_error():
    assert _summary([{"error": "boom"}, {"median_ms": 10.0, "p95_ms": 11.0}])["median_ms"] == 10.0
    assert _summary([{"error": "boom"}, {"error": "bang"}]) == {"error": "bang"}
