"""The per-call series (requests, faults, duration histogram) as plain ints on the event loop.

``prometheus_client``'s ``Counter.inc`` and ``Histogram.observe`` take a lock each and walk
the bucket list in Python; a label lookup builds tuples. Every RPC call of the daemon is
counted on the event loop thread (the dispatcher counts, never a pool thread), so the counts
need no lock: ``CallStats.observe`` is a few dict and list updates, and ``collect`` turns them
into the same metric families (names, labels, buckets) when ``/metrics`` is scraped — also
on the loop, so a scrape always sees a consistent set.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["CallStats"]


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``0.001``, ``30.0``)."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return text


class CallStats(Collector):
    """``rpcd_requests_total``, ``rpcd_faults_total``, ``rpcd_request_duration_seconds``."""

    def __init__(self, buckets: Sequence[float], code_label: Callable[[int], str]) -> None:
        self._buckets = tuple(float(b) for b in buckets)
        self._les = [_le(b) for b in self._buckets] + ["+Inf"]
        self._code_label = code_label
        # (protocol, method) -> [count per bucket (not cumulative; the last one is +Inf),
        # ..., sum of seconds]; the call count is the sum of the buckets. One row per label
        # set: a call is one lookup and two additions.
        self._rows: dict[tuple[str, str], list[float]] = {}
        self._faults: dict[str, int] = {}

    def observe(
        self, protocol: str, method: str, seconds: float, fault_code: int | None = None
    ) -> None:
        """One call; ``method`` is already a bounded label. Only ever called on the loop."""
        row = self._rows.get((protocol, method))
        if row is None:
            row = self._rows[(protocol, method)] = [0.0] * (len(self._buckets) + 2)
        row[bisect_left(self._buckets, seconds)] += 1
        row[-1] += seconds
        if fault_code is not None:
            label = self._code_label(fault_code)
            self._faults[label] = self._faults.get(label, 0) + 1

    def describe(self) -> Iterator[Metric]:
        """The families without samples: lets the registry check names at registration."""
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        requests, faults, durations = self._families()
        by_method: dict[str, list[float]] = {}
        for (protocol, method), row in list(self._rows.items()):
            requests.add_metric([protocol, method], sum(row[:-1]))
            merged = by_method.get(method)
            by_method[method] = (
                list(row) if merged is None else [x + y for x, y in zip(merged, row, strict=True)]
            )
        for code, count in list(self._faults.items()):
            faults.add_metric([code], count)
        for method, row in by_method.items():
            cumulative: list[tuple[str, float]] = []
            total = 0.0
            for le, in_bucket in zip(self._les, row, strict=False):
                total += in_bucket
                cumulative.append((le, total))
            durations.add_metric([method], cumulative, row[-1])
        yield requests
        yield faults
        yield durations

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily, HistogramMetricFamily]:
        return (
            CounterMetricFamily(
                "rpcd_requests",
                "RPC calls (each call of a multicall or batch counts)",
                labels=["protocol", "method"],
            ),
            CounterMetricFamily("rpcd_faults", "RPC calls answered with a fault", labels=["code"]),
            HistogramMetricFamily(
                "rpcd_request_duration_seconds",
                "Time to run one RPC call, by method",
                labels=["method"],
            ),
        )
