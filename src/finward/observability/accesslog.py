"""One structured JSON line per request (and per gateway event)."""

from __future__ import annotations

import functools
import sys
import time
from typing import IO

import orjson

from finward.events import Event, GatewayEvent, RequestEvent

# POSIX guarantees atomic pipe writes up to PIPE_BUF (4096 on Linux).
PIPE_BUF = 4096


@functools.lru_cache(maxsize=4)
def _second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def _iso(ts: float) -> str:
    second = int(ts)
    return f"{_second(second)}.{int((ts - second) * 1000):03d}Z"


def format_request(ev: RequestEvent) -> dict[str, object]:
    line: dict[str, object] = {
        "time": _iso(ev.time),
        "type": "request",
        "request_id": ev.request_id,
        "interaction_id": ev.interaction_id,
        "client": ev.client_ip,
        "method": ev.method,
        "api": ev.api,
        "route": ev.route,
        "operation_id": ev.operation_id,
        "status": ev.status,
        "reason": ev.reason,
        "upstream_ms": None if ev.upstream_latency_ms is None else round(ev.upstream_latency_ms, 3),
        "total_ms": round(ev.total_latency_ms, 3),
        "bytes_in": ev.bytes_in,
        "bytes_out": ev.bytes_out,
    }
    for attribute, name in _OPTIONAL_FIELDS:
        value = getattr(ev, attribute)
        if value:
            line[name] = value
    return line


# RequestEvent attributes written only when set, and their names in the log line.
_OPTIONAL_FIELDS = (
    ("decided_by", "decided_by"),
    ("tls_version", "tls"),
    ("client_cert", "client_cert"),
    ("detail", "detail"),
    ("client_id", "client_id"),
    ("organisation_id", "tpp"),
    ("token_id", "jti"),
    ("binding", "binding"),
)


class AccessLog:
    """Writes JSON lines; buffered and flushed once per event-loop turn by the adapter."""

    def __init__(self, target: str) -> None:
        self._owned = False
        self._out: IO[bytes] | None
        if target == "off":
            self._out = None
        elif target == "stdout":
            self._out = sys.stdout.buffer
        elif target == "stderr":
            self._out = sys.stderr.buffer
        else:
            self._out = open(target, "ab")  # noqa: SIM115 - closed in close()
            self._owned = True
        self._buf: list[bytes] = []

    @property
    def enabled(self) -> bool:
        return self._out is not None

    def __call__(self, event: Event) -> None:
        if self._out is None:
            return
        if isinstance(event, RequestEvent):
            line = format_request(event)
        elif isinstance(event, GatewayEvent):
            line = {
                "time": _iso(event.time),
                "type": "event",
                "kind": event.kind,
                "outcome": event.outcome,
                "detail": event.detail,
                "actor": event.actor,
                **event.attrs,
            }
        else:  # pragma: no cover - exhaustive
            return
        self._buf.append(orjson.dumps(line) + b"\n")

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def flush(self) -> None:
        if self._out is None or not self._buf:
            return
        lines, self._buf = self._buf, []
        try:
            # Several workers share stdout: a pipe write is atomic only up to
            # PIPE_BUF bytes, so write whole lines in groups that fit.
            group: list[bytes] = []
            size = 0
            for line in lines:
                if group and size + len(line) > PIPE_BUF:
                    self._out.write(b"".join(group))
                    self._out.flush()
                    group, size = [], 0
                group.append(line)
                size += len(line)
            if group:
                self._out.write(b"".join(group))
                self._out.flush()
        except (OSError, ValueError):
            pass  # observation fails open (closed pipe, full disk)

    def close(self) -> None:
        self.flush()
        if self._owned and self._out is not None:
            self._out.close()
