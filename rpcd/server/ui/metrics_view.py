"""Request, fault and latency figures for the console, read from the daemon's own metrics.

The console shows what ``GET /metrics`` would: it collects the same families from the app's
``Metrics`` (``rpcd.server.ops.metrics``) and sums them. Latency quantiles come from the
histogram buckets, so they are upper bounds ("at most 25 ms"), as Prometheus would estimate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

from rpcd.server.ops.metrics import Metrics

__all__ = [
    "RATE_WINDOW_S",
    "SAMPLE_EVERY_S",
    "CallSummary",
    "ConnectionSummary",
    "RecentRates",
    "call_summary",
    "connection_summary",
    "outbound_counts",
]


@dataclass(frozen=True)
class CallSummary:
    """RPC calls since start: counts, rates per second, latency."""

    requests: int
    faults: int
    requests_per_s: float
    faults_per_s: float
    mean_ms: float | None
    p50_ms: float | None
    p95_ms: float | None


#: Seconds between two samples of the call counters, and the span recent rates cover.
SAMPLE_EVERY_S = 5.0
RATE_WINDOW_S = 60.0


class RecentRates:
    """Request and fault rates over about the last minute: the counters sampled every
    ``SAMPLE_EVERY_S`` seconds (by the console's sampler task) into a short ring."""

    def __init__(self) -> None:
        size = int(RATE_WINDOW_S / SAMPLE_EVERY_S) + 1
        self._samples: deque[tuple[float, float, float]] = deque(maxlen=size)

    def add(self, at: float, requests: float, faults: float) -> None:
        self._samples.append((at, requests, faults))

    def rates(self) -> tuple[float, float, float] | None:
        """(requests/s, faults/s, seconds covered), or None before two samples."""
        if len(self._samples) < 2:
            return None
        (t0, r0, f0), (t1, r1, f1) = self._samples[0], self._samples[-1]
        span = t1 - t0
        if span <= 0:
            return None
        return (r1 - r0) / span, (f1 - f0) / span, span


def call_totals(metrics: Metrics) -> tuple[float, float]:
    """(requests, faults) since start."""
    return _totals(metrics.calls.collect())


def _totals(families: Iterable[Metric]) -> tuple[float, float]:
    requests = faults = 0.0
    for family in families:
        if family.name == "rpcd_requests":
            requests += sum(s.value for s in family.samples if s.name.endswith("_total"))
        elif family.name == "rpcd_faults":
            faults += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return requests, faults


@dataclass(frozen=True)
class ConnectionSummary:
    """Outbound attempts over one connection since start."""

    calls: int
    failures: int
    mean_ms: float | None
    p95_ms: float | None


def _bound_ms(buckets: list[tuple[float, float]], count: float, q: float) -> float | None:
    """The smallest bucket bound (ms) holding a share ``q`` of ``count`` observations."""
    if count <= 0:
        return None
    wanted = q * count
    for le, cumulative in buckets:
        if cumulative >= wanted:
            return None if math.isinf(le) else le * 1000
    return None


def _histogram(
    families: Iterable[Metric], name: str, label: str | None = None, value: str | None = None
) -> tuple[list[tuple[float, float]], float, float]:
    """Cumulative buckets (bound → count), count and sum of a histogram family, summed over
    its series (only the series whose ``label`` is ``value`` when given)."""
    buckets: dict[float, float] = {}
    count = total = 0.0
    for family in families:
        if family.name != name:
            continue
        for sample in family.samples:
            if label is not None and sample.labels.get(label) != value:
                continue
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_sum"):
                total += sample.value
    return sorted(buckets.items()), count, total


def call_summary(metrics: Metrics, uptime_s: float) -> CallSummary:
    """Every RPC call since start (each call of a batch or multicall counts)."""
    families = list(metrics.calls.collect())
    requests, faults = _totals(families)
    buckets, count, total = _histogram(families, "rpcd_request_duration_seconds")
    seconds = max(uptime_s, 1.0)
    return CallSummary(
        requests=int(requests),
        faults=int(faults),
        requests_per_s=requests / seconds,
        faults_per_s=faults / seconds,
        mean_ms=total / count * 1000 if count else None,
        p50_ms=_bound_ms(buckets, count, 0.5),
        p95_ms=_bound_ms(buckets, count, 0.95),
    )


def connection_summary(metrics: Metrics, full_id: str) -> ConnectionSummary:
    """Outbound attempts over ``full_id`` (``class/id``): proxy methods and ``/v1/call``."""
    calls = failures = 0.0
    for family in metrics.outbound.collect():
        for sample in family.samples:
            if sample.labels.get("connection") != full_id or not sample.name.endswith("_total"):
                continue
            calls += sample.value
            if sample.labels.get("result") == "error":
                failures += sample.value
    buckets, count, total = _histogram(
        metrics.outbound_duration.collect(), "rpcd_outbound_duration_seconds", "connection", full_id
    )
    return ConnectionSummary(
        calls=int(calls),
        failures=int(failures),
        mean_ms=total / count * 1000 if count else None,
        p95_ms=_bound_ms(buckets, count, 0.95),
    )


def outbound_counts(metrics: Metrics) -> dict[str, tuple[int, int]]:
    """``class/id`` -> (attempts, failures) since start, for every connection called so far
    (one pass over the counter, for a page that shows many connections)."""
    counts: dict[str, list[int]] = {}
    for family in metrics.outbound.collect():
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            row = counts.setdefault(sample.labels["connection"], [0, 0])
            row[0] += int(sample.value)
            if sample.labels.get("result") == "error":
                row[1] += int(sample.value)
    return {k: (v[0], v[1]) for k, v in counts.items()}
