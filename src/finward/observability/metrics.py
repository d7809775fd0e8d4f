"""Prometheus metrics fed from the event stream, with no per-request allocation beyond a tuple.

Each worker keeps its own registry; the admin listener merges worker snapshots
(``snapshot``/``merge``), so counters are exact across ``--workers N``.
"""

from __future__ import annotations

import bisect
from typing import Any

from finward.events import Event, GatewayEvent, RequestEvent

# Seconds. Tuned for a gateway: most answers land between 0.5 ms and 50 ms.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Histogram:
    __slots__ = ("count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        self.count += 1
        self.sum += value


class MetricsRegistry:
    REQUESTS = "finward_requests_total"
    DURATION = "finward_request_duration_seconds"
    UPSTREAM_DURATION = "finward_upstream_duration_seconds"
    UPSTREAM_ERRORS = "finward_upstream_errors_total"
    EVENTS = "finward_gateway_events_total"
    RATE_LIMITED = "finward_rate_limit_refusals_total"
    RATE_LIMIT_STORE_ERRORS = "finward_rate_limit_store_errors_total"

    HELP = {
        REQUESTS: ("counter", "Requests by API, route template, method, status and reason code"),
        DURATION: ("histogram", "Total time in the gateway, by API and route template"),
        UPSTREAM_DURATION: ("histogram", "Upstream response time (to headers), by upstream"),
        UPSTREAM_ERRORS: ("counter", "Upstream failures by upstream and reason code"),
        EVENTS: ("counter", "Gateway events (reloads, admin actions) by kind and outcome"),
        RATE_LIMITED: ("counter", "Requests refused by a rate limit, by limit name and reason"),
        RATE_LIMIT_STORE_ERRORS: (
            "counter",
            "Requests the rate limit store could not count, by what happened to them "
            "(on_store_error: closed refused them, open let them pass)",
        ),
    }
    LABELS = {
        REQUESTS: ("api", "route", "method", "status", "reason"),
        DURATION: ("api", "route"),
        UPSTREAM_DURATION: ("upstream",),
        UPSTREAM_ERRORS: ("upstream", "reason"),
        EVENTS: ("kind", "outcome"),
        RATE_LIMITED: ("limit", "reason"),
        RATE_LIMIT_STORE_ERRORS: ("on_store_error",),
    }
    _UPSTREAM_REASONS = frozenset(
        {"upstream_unavailable", "upstream_timeout", "upstream_bad_response"}
    )
    _RATE_LIMIT_REASONS = frozenset({"rate_limited", "quota_exhausted", "concurrency_limited"})

    def __init__(self) -> None:
        self.counters: dict[str, dict[Labels, float]] = {
            self.REQUESTS: {},
            self.UPSTREAM_ERRORS: {},
            self.EVENTS: {},
            self.RATE_LIMITED: {},
            self.RATE_LIMIT_STORE_ERRORS: {},
        }
        self.histograms: dict[str, dict[Labels, Histogram]] = {
            self.DURATION: {},
            self.UPSTREAM_DURATION: {},
        }

    def _inc(self, name: str, labels: Labels, by: float = 1.0) -> None:
        series = self.counters[name]
        series[labels] = series.get(labels, 0.0) + by

    def _observe(self, name: str, labels: Labels, value: float) -> None:
        series = self.histograms[name]
        hist = series.get(labels)
        if hist is None:
            hist = series[labels] = Histogram()
        hist.observe(value)

    def __call__(self, event: Event) -> None:
        if isinstance(event, RequestEvent):
            api = event.api or ""
            # Unmatched paths are attacker-chosen: never use them as label values
            # (unbounded cardinality); the route template is bounded by the spec.
            route = event.route or ""
            self._inc(
                self.REQUESTS,
                (
                    api,
                    route,
                    event.method if event.route else "",
                    str(event.status),
                    event.reason or "",
                ),
            )
            self._observe(self.DURATION, (api, route), event.total_latency_ms / 1000.0)
            if event.upstream and event.upstream_latency_ms is not None:
                self._observe(
                    self.UPSTREAM_DURATION, (event.upstream,), event.upstream_latency_ms / 1000.0
                )
            if event.upstream and event.reason in self._UPSTREAM_REASONS:
                self._inc(self.UPSTREAM_ERRORS, (event.upstream, event.reason or ""))
            if event.findings or event.reason == "rate_limit_unavailable":
                self._count_rate_limit(event)
        elif isinstance(event, GatewayEvent):
            self._inc(self.EVENTS, (event.kind, event.outcome))

    def _count_rate_limit(self, event: RequestEvent) -> None:
        """From the rate limit policy's findings: the refusing limit's name (a configured
        name, so the label is bounded) and store failures."""
        for finding in event.findings:
            if finding.policy != "rate_limit":
                continue
            if finding.code in self._RATE_LIMIT_REASONS and finding.code == event.reason:
                self._inc(self.RATE_LIMITED, (finding.detail, finding.code))
            elif finding.code == "rate_limit_unavailable":
                self._inc(self.RATE_LIMIT_STORE_ERRORS, ("open",))
        if event.reason == "rate_limit_unavailable":
            self._inc(self.RATE_LIMIT_STORE_ERRORS, ("closed",))

    # -- multi-worker aggregation -------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "counters": {n: [[list(k), v] for k, v in s.items()] for n, s in self.counters.items()},
            "histograms": {
                n: [[list(k), h.counts, h.count, h.sum] for k, h in s.items()]
                for n, s in self.histograms.items()
            },
        }

    def merge(self, snap: dict[str, Any]) -> None:
        for name, rows in snap.get("counters", {}).items():
            for labels, value in rows:
                self._inc(name, tuple(labels), value)
        for name, rows in snap.get("histograms", {}).items():
            series = self.histograms[name]
            for labels, counts, count, total in rows:
                hist = series.setdefault(tuple(labels), Histogram())
                hist.counts = [a + b for a, b in zip(hist.counts, counts, strict=True)]
                hist.count += count
                hist.sum += total

    # -- exposition -----------------------------------------------------------------

    def render(self) -> str:
        out: list[str] = []
        for name, (kind, text) in self.HELP.items():
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} {kind}")
            names = self.LABELS[name]
            if kind == "counter":
                for labels, value in sorted(self.counters[name].items()):
                    out.append(f"{name}{{{self._fmt(names, labels)}}} {value:g}")
                continue
            for labels, hist in sorted(self.histograms[name].items()):
                base = self._fmt(names, labels)
                cumulative = 0
                for bound, n in zip((*LATENCY_BUCKETS, float("inf")), hist.counts, strict=True):
                    cumulative += n
                    le = "+Inf" if bound == float("inf") else f"{bound:g}"
                    out.append(f'{name}_bucket{{{base},le="{le}"}} {cumulative}')
                out.append(f"{name}_sum{{{base}}} {hist.sum:g}")
                out.append(f"{name}_count{{{base}}} {hist.count}")
        return "\n".join(out) + "\n"

    @staticmethod
    def _fmt(names: Labels, values: Labels) -> str:
        return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
