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


class PublishCollector:
    """`dancenow_encoder_*` (the one VP8 encoder) and `dancenow_publish_*` per publisher (kind, url)."""

    def __init__(self, encoder: Callable[[], dict | None], publishers: Callable[[], list[dict]]) -> None:
        self._encoder = encoder
        self._publishers = publishers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        enc = self._encoder()
        if enc is not None:
            for name, doc in (("frames", "frames encoded once for every viewer"), ("keyframes", "keyframes sent"),
                              ("keyframe_requests", "keyframes asked for (joins, PLI/FIR, late viewers)"),
                              ("sent_kbps", "mean encoded bitrate, kbit/s"), ("encode_ms", "VP8 encoding time, ms"),
                              ("subscribers", "peers and WHIP sessions fed by the encoder")):
                yield GaugeMetricFamily(f"dancenow_encoder_{name}", doc, value=float(enc[name]))
        families = {name: GaugeMetricFamily(f"dancenow_publish_{name}", doc, labels=["kind", "url"])
                    for name, doc in (("up", "1 while the publisher's session is live"),
                                      ("sessions", "sessions that went live (reconnections + 1)"),
                                      ("attempts", "connection attempts"), ("frames", "frames sent"))}
        for p in self._publishers():
            labels = [p["kind"], p["url"]]
            families["up"].add_metric(labels, 1.0 if p["state"] == "live" else 0.0)
            for name in ("sessions", "attempts", "frames"):
                families[name].add_metric(labels, float(p[name]))
        yield from families.values()
