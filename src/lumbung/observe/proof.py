"""Recording and shadow counts for ``GET /metrics``, read at scrape time from the recorder and the
shadow lanes (proof/): what was written, and what was dropped rather than wait."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from lumbung.proof.tap import ProofTap


class ProofState(Collector):
    def __init__(self, tap: ProofTap) -> None:
        self.tap = tap

    def collect(self) -> Iterator[Metric]:
        recorded = CounterMetricFamily(
            "lumbung_recorded_exchanges",
            "Exchanges handed to the recordings' writer, by outcome: written; dropped (its queue was full); "
            "too_large (over max_exchange_bytes); full (the recording reached max_recording_bytes); failed.",
            labels=["outcome"],
        )
        for outcome, count in sorted(self.tap.recorder.counts.items()):
            recorded.add_metric([outcome], count)
        yield recorded
        shadow = CounterMetricFamily(
            "lumbung_shadow_requests",
            "Live requests mirrored to a route's shadow candidate, by outcome: queued; dropped (the lane's "
            "queue was full); answered; failed (error or timeout); egress_denied (never sent).",
            labels=["route", "outcome"],
        )
        if self.tap.shadows is not None:
            for route, lane in sorted(self.tap.shadows.lanes.items()):
                for outcome, count in sorted(lane.counts.items()):
                    shadow.add_metric([route, outcome], count)
        yield shadow
