from __future__ import annotations

from pathlib import Path

import orjson

from finward.events import GatewayEvent, RequestEvent
from finward.observability.accesslog import AccessLog
from finward.observability.metrics import MetricsRegistry


def _event(**kw: object) -> RequestEvent:
    base: dict[str, object] = {
        "time": 1_800_000_000.25,
        "request_id": "r1",
        "interaction_id": "i1",
        "client_ip": "203.0.113.9",
        "peer_ip": "127.0.0.1",
        "method": "GET",
        "path": "/v1/accounts/DE89370400440532013000",
        "status": 200,
        "api": "bank",
        "route": "/v1/accounts/{account-id}",
        "operation_id": "readAccountDetails",
        "upstream": "bank",
        "upstream_latency_ms": 1.5,
        "total_latency_ms": 2.25,
    }
    base.update(kw)
    return RequestEvent(**base)  # type: ignore[arg-type]


def test_access_log_line_has_the_documented_fields(tmp_path: Path) -> None:
    target = tmp_path / "access.log"
    log = AccessLog(str(target))
    log(_event())
    log(GatewayEvent(1_800_000_001.0, "config_reloaded", "success", actor="signal:SIGHUP"))
    log.close()
    request, event = (orjson.loads(line) for line in target.read_bytes().splitlines())
    assert request == {
        "time": "2027-01-15T08:00:00.250Z",
        "type": "request",
        "request_id": "r1",
        "interaction_id": "i1",
        "client": "203.0.113.9",
        "method": "GET",
        "api": "bank",
        "route": "/v1/accounts/{account-id}",
        "operation_id": "readAccountDetails",
        "status": 200,
        "reason": None,
        "upstream_ms": 1.5,
        "total_ms": 2.25,
        "bytes_in": 0,
        "bytes_out": 0,
    }
    # The raw path (with the account id) is not logged; the template is.
    assert b"DE89370400440532013000" not in target.read_bytes()
    assert event["kind"] == "config_reloaded" and event["type"] == "event"


def test_many_lines_are_written_whole(tmp_path: Path) -> None:
    target = tmp_path / "access.log"
    log = AccessLog(str(target))
    for i in range(500):
        log(_event(request_id=f"r{i}"))
    log.flush()
    log.close()
    lines = target.read_bytes().splitlines()
    assert [orjson.loads(x)["request_id"] for x in lines] == [f"r{i}" for i in range(500)]


def test_metrics_render_and_merge_across_workers() -> None:
    a, b = MetricsRegistry(), MetricsRegistry()
    a(_event())
    b(_event())
    b(_event(status=404, reason="route_not_found", api=None, route=None, upstream=None))
    b(_event(status=502, reason="upstream_unavailable", upstream_latency_ms=None))
    merged = MetricsRegistry()
    merged.merge(a.snapshot())
    merged.merge(b.snapshot())
    text = merged.render()
    assert (
        'finward_requests_total{api="bank",route="/v1/accounts/{account-id}",method="GET",'
        'status="200",reason=""} 2' in text
    )
    assert (
        'finward_requests_total{api="",route="",method="",status="404",reason="route_not_found"} 1'
        in text
    )
    assert 'finward_upstream_errors_total{upstream="bank",reason="upstream_unavailable"} 1' in text
    assert (
        'finward_request_duration_seconds_count{api="bank",route="/v1/accounts/{account-id}"} 3'
        in text
    )
    assert 'finward_upstream_duration_seconds_bucket{upstream="bank",le="0.0025"} 2' in text
    assert "# TYPE finward_request_duration_seconds histogram" in text
