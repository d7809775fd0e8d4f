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


class _AsyncStore:
    """Stands in for a store protocol an adapter implements (e.g. a shared counter)."""

    def __init__(self) -> None:
        self.calls = 0

    async def allowed(self, key: str) -> bool:
        self.calls += 1
        return key != "blocked"


class _AsyncPolicy:
    name = "async-check"
    is_async = True

    def __init__(self, store: _AsyncStore) -> None:
        self.store = store

    async def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        if await self.store.allowed(request.client_ip):
            return None
        return Decision.deny("route_not_found")


class _AsyncRaises:
    name = "async-boom"
    is_async = True

    async def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        raise RuntimeError("store down")


async def test_async_policies_are_awaited_in_order() -> None:
    store = _AsyncStore()
    after = _Counts()
    pipeline = Pipeline([_Counts(), _AsyncPolicy(store), after])
    assert pipeline.is_async
    assert (await pipeline.evaluate_async(_request(), Context())).allowed
    assert store.calls == 1 and after.calls == 1
    blocked = _request()
    blocked.client_ip = "blocked"
    ctx = Context()
    decision = await pipeline.evaluate_async(blocked, ctx)
    assert decision.reason == "route_not_found" and ctx.decided_by == "async-check"
    assert after.calls == 1


async def test_async_policy_failure_fails_closed() -> None:
    ctx = Context()
    decision = await Pipeline([_AsyncRaises()]).evaluate_async(_request(), ctx)
    assert decision.status == 503 and decision.reason == "internal_error"


def test_sync_entry_point_refuses_an_async_pipeline() -> None:
    import pytest

    with pytest.raises(TypeError):
        Pipeline([_AsyncPolicy(_AsyncStore())]).evaluate(_request(), Context())


def test_sync_pipeline_is_not_async() -> None:
    assert not Pipeline([_Counts()]).is_async
