from __future__ import annotations

import orjson

from finward.core.pipeline import Context, Pipeline
from finward.core.problem import render_problem
from finward.decision import Decision
from finward.http import Headers, RequestView


def _request() -> RequestView:
    return RequestView(
        "GET",
        "/x",
        "/x",
        "",
        Headers(),
        "127.0.0.1",
        "127.0.0.1",
        request_id="r1",
        interaction_id="i1",
    )


class _Raises:
    name = "boom"

    def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        raise RuntimeError("secret-internal-detail")


class _Denies:
    name = "denier"

    def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        return Decision.deny("route_not_found")


class _Counts:
    name = "counter"

    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        self.calls += 1
        return None


def test_exception_in_policy_fails_closed_without_leaking() -> None:
    after = _Counts()
    ctx = Context()
    decision = Pipeline([_Raises(), after]).evaluate(_request(), ctx)
    assert not decision.allowed and decision.status == 503 and decision.reason == "internal_error"
    assert after.calls == 0
    assert ctx.decided_by == "boom"
    body = render_problem(decision, request_id="r1", interaction_id="i1")
    assert b"secret-internal-detail" not in body


def test_first_denial_stops_the_pipeline() -> None:
    after = _Counts()
    ctx = Context()
    decision = Pipeline([_Denies(), after]).evaluate(_request(), ctx)
    assert decision.reason == "route_not_found" and after.calls == 0 and ctx.decided_by == "denier"


def test_all_allow() -> None:
    a, b = _Counts(), _Counts()
    assert Pipeline([a, b]).evaluate(_request(), Context()).allowed
    assert a.calls == b.calls == 1


def test_problem_is_rfc9457() -> None:
    body = orjson.loads(
        render_problem(
            Decision.deny("method_not_allowed", "allowed methods: GET"),
            request_id="r",
            interaction_id="i",
        )
    )
    assert body == {
        "type": "urn:finward:reason:method_not_allowed",
        "title": "The operation does not allow this method",
        "status": 405,
        "reason": "method_not_allowed",
        "detail": "allowed methods: GET",
        "request_id": "r",
        "interaction_id": "i",
    }
