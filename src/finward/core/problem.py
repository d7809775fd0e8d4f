"""RFC 9457 problem details for every response the gateway itself produces."""

from __future__ import annotations

from http import HTTPStatus

import orjson

from finward.decision import Decision
from finward.errors import get_reason

PROBLEM_CONTENT_TYPE = "application/problem+json"
# A stable, documented URI per reason code (RFC 9457 §3.1.1 "type").
PROBLEM_TYPE_PREFIX = "urn:finward:reason:"


def status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def render_problem(decision: Decision, *, request_id: str, interaction_id: str) -> bytes:
    """Serialise a denial. ``detail`` must already be free of secrets and input echoes."""
    reason = decision.reason or "internal_error"
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_PREFIX + reason,
        "title": get_reason(reason).title,
        "status": decision.status,
        "reason": reason,
        "request_id": request_id,
        "interaction_id": interaction_id,
    }
    if decision.detail:
        body["detail"] = decision.detail
    for name, value in decision.members:
        body.setdefault(name, value)  # never overrides the RFC 9457 members above
    return orjson.dumps(body)
