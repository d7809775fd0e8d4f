"""One event stream, many consumers (DESIGN.md).

Every decision emits a typed event; the access log, metrics and (later) audit,
detectors and inventory subscribe to the stream. Observers fail open: an
exception in a consumer is logged and never breaks traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from finward.decision import Finding

log = logging.getLogger("finward.events")


@dataclass(slots=True)
class RequestEvent:
    time: float
    request_id: str
    interaction_id: str
    client_ip: str
    peer_ip: str
    method: str
    path: str  # raw path; consumers that persist it must redact object ids as needed
    status: int
    reason: str | None = None
    decided_by: str | None = None
    api: str | None = None
    route: str | None = None  # the OpenAPI path template
    operation_id: str | None = None
    upstream: str | None = None
    upstream_latency_ms: float | None = None
    total_latency_ms: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    tls_version: str | None = None
    client_cert: str | None = None  # "tls" or "header" when a verified cert was present
    findings: tuple[Finding, ...] = ()
    # Why a refusal happened, in the policy's fixed words (never echoes input or tokens).
    detail: str | None = None
    # The authenticated caller, when a token was verified. The PSU (token `sub`) is
    # personal data and is not carried here; the token itself never is.
    client_id: str | None = None
    organisation_id: str | None = None  # eIDAS organizationIdentifier of the QWAC
    token_id: str | None = None  # the token's jti
    binding: str | None = None  # "mtls", "dpop" or None


@dataclass(slots=True)
class GatewayEvent:
    """Lifecycle, admin and control events (reloads, admin actions, failures)."""

    time: float
    kind: str  # e.g. "config_reloaded", "config_rejected", "admin_action", "upstream_error"
    outcome: str  # "success" or "failure"
    detail: str = ""
    actor: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)


Event = RequestEvent | GatewayEvent
Consumer = Callable[[Event], None]


class EventBus:
    __slots__ = ("_consumers",)

    def __init__(self) -> None:
        self._consumers: list[Consumer] = []

    def subscribe(self, consumer: Consumer) -> None:
        self._consumers.append(consumer)

    def emit(self, event: Event) -> None:
        for consumer in self._consumers:
            try:
                consumer(event)
            except Exception:
                log.exception("event consumer %r failed", consumer)
