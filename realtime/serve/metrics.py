"""Prometheus view of the server, read at scrape time from the typed status (no second copy)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily

from dancenow.realtime.live.telemetry import PipelineStats


class StatsCollector:
    """`dancenow_*` gauges: fps, frame counts, peers, and latency percentiles per stage."""

    def __init__(self, stats: Callable[[], PipelineStats | None], peers: Callable[[], dict[str, int]]) -> None:
        self._stats = stats
        self._peers = peers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for role, n in self._peers().items():
            yield GaugeMetricFamily(f"dancenow_{role}", f"connected {role}", value=float(n))
        s = self._stats()
        if s is None:
            return
        for name, value, doc in (("fps", s.fps, "generated frames per second"),
                                 ("frames", s.frames, "frames generated since start"),
                                 ("dropped", s.dropped, "frames dropped before the generator")):
            yield GaugeMetricFamily(f"dancenow_{name}", doc, value=float(value))
        lat = GaugeMetricFamily("dancenow_latency_ms", "latency percentiles per stage, ms", labels=["stage", "quantile"])
        for stage, q in s.latency_ms.items():
            for name in ("p50", "p95", "p99"):
                lat.add_metric([stage, name], getattr(q, name))
        yield lat
