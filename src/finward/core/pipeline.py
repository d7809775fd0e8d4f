"""The policy pipeline: compiled once from configuration, run per request.

A policy is a plain object with a ``name`` and an ``evaluate(request, ctx)``
method that returns a :class:`Decision` to stop, or ``None`` to continue.
Enforcement fails closed: an exception inside a policy becomes a 503
``internal_error`` decision (DESIGN.md, "Enforcement fails closed").
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from finward.decision import ALLOW, Decision, Finding
from finward.http import RequestView

if TYPE_CHECKING:
    from finward.core.routing import RouteMatch

log = logging.getLogger("finward.pipeline")


@dataclass(slots=True)
class Context:
    """Per-request state that policies share; the adapter reads it afterwards."""

    route: RouteMatch | None = None
    findings: list[Finding] = field(default_factory=list)
    # Headers that policies want on the response (allowed or denied).
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    # The policy that produced the final decision (for logs and audit).
    decided_by: str | None = None
    # The authenticated caller (finward.auth.policy.Principal), when there is one.
    principal: Any = None
    # Headers added to, and inbound header names removed from, the upstream request.
    upstream_headers: list[tuple[str, str]] = field(default_factory=list)
    upstream_drop: frozenset[str] = frozenset()
    # Refuse a form body that carries access_token (RFC 6750 §2.2); the adapter owns
    # the body, so it checks before forwarding.
    check_form_token: bool = False
    # Awaited by the adapter once the exchange is over, whatever its outcome (answered,
    # refused by a later policy, upstream failure, client gone): e.g. releasing a
    # concurrency slot. None until a policy adds one (most requests need none).
    on_done: list[Callable[[], Awaitable[None]]] | None = None

    def add_on_done(self, callback: Callable[[], Awaitable[None]]) -> None:
        if self.on_done is None:
            self.on_done = []
        self.on_done.append(callback)


class Policy(Protocol):
    name: str

    def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        """Return a Decision to stop the pipeline, or None to go on."""


class AsyncPolicy(Protocol):
    """A policy that waits on a store protocol (JWKS, introspection, shared counters).

    The policy stays sans-IO: it awaits methods of a protocol object that an adapter
    implements (memory in tests, Redis or HTTP in production); it never opens a
    socket itself. ``is_async = True`` tells the pipeline to await it.
    """

    name: str
    is_async: bool

    async def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        """Return a Decision to stop the pipeline, or None to go on."""


AnyPolicy = Policy | AsyncPolicy


class Pipeline:
    """An ordered, immutable list of policies.

    ``evaluate`` runs an all-synchronous pipeline without creating a coroutine (the
    common, hot case); ``evaluate_async`` also awaits policies marked ``is_async``.
    ``is_async`` tells the adapter which one to call.
    """

    __slots__ = ("_policies", "is_async")

    def __init__(self, policies: Sequence[AnyPolicy]) -> None:
        self._policies: tuple[AnyPolicy, ...] = tuple(policies)
        self.is_async = any(getattr(p, "is_async", False) for p in self._policies)

    @property
    def policy_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._policies)

    def evaluate(self, request: RequestView, ctx: Context) -> Decision:
        if self.is_async:
            raise TypeError("this pipeline has async policies: use evaluate_async")
        for policy in self._policies:
            try:
                decision = cast(Policy, policy).evaluate(request, ctx)
            except Exception:  # fail closed; never leak the exception to the client
                return _failed(policy, request, ctx)
            if decision is not None and not decision.allowed:
                ctx.decided_by = policy.name
                return decision
        return ALLOW

    async def evaluate_async(self, request: RequestView, ctx: Context) -> Decision:
        for policy in self._policies:
            try:
                if getattr(policy, "is_async", False):
                    decision = await cast(AsyncPolicy, policy).evaluate(request, ctx)
                else:
                    decision = cast(Policy, policy).evaluate(request, ctx)
            except Exception:  # fail closed, as in evaluate()
                return _failed(policy, request, ctx)
            if decision is not None and not decision.allowed:
                ctx.decided_by = policy.name
                return decision
        return ALLOW


def _failed(policy: AnyPolicy, request: RequestView, ctx: Context) -> Decision:
    log.exception("policy %s raised; denying request %s", policy.name, request.request_id)
    ctx.decided_by = policy.name
    ctx.findings.append(Finding(policy.name, "internal_error", "policy raised"))
    return Decision.deny("internal_error")
