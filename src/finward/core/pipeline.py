"""The policy pipeline: compiled once from configuration, run per request.

A policy is a plain object with a ``name`` and an ``evaluate(request, ctx)``
method that returns a :class:`Decision` to stop, or ``None`` to continue.
Enforcement fails closed: an exception inside a policy becomes a 503
``internal_error`` decision (DESIGN.md, "Enforcement fails closed").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

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


class Policy(Protocol):
    name: str

    def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        """Return a Decision to stop the pipeline, or None to go on."""


class Pipeline:
    """An ordered, immutable list of policies."""

    __slots__ = ("_policies",)

    def __init__(self, policies: Sequence[Policy]) -> None:
        self._policies: tuple[Policy, ...] = tuple(policies)

    @property
    def policy_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._policies)

    def evaluate(self, request: RequestView, ctx: Context) -> Decision:
        for policy in self._policies:
            try:
                decision = policy.evaluate(request, ctx)
            except Exception:  # fail closed; never leak the exception to the client
                log.exception(
                    "policy %s raised; denying request %s", policy.name, request.request_id
                )
                ctx.decided_by = policy.name
                ctx.findings.append(Finding(policy.name, "internal_error", "policy raised"))
                return Decision.deny("internal_error")
            if decision is not None and not decision.allowed:
                ctx.decided_by = policy.name
                return decision
        return ALLOW
