"""Routing as a policy: the positive security model's first gate.

A request whose (method, path) is not an operation of a mounted spec is denied
here and never forwarded, so shadow and zombie endpoints are unreachable.
"""

from __future__ import annotations

from finward.decision import Decision
from finward.http import RequestView

from .pipeline import Context
from .routing import RouteMiss, Router


class RoutingPolicy:
    name = "routing"

    def __init__(self, router: Router) -> None:
        self.router = router

    def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        result = self.router.match(request.method, request.path)
        if isinstance(result, RouteMiss):
            if result.reason == "method_not_allowed":
                return Decision.deny(
                    "method_not_allowed",
                    f"allowed methods: {', '.join(result.allowed)}",
                    headers=(("allow", ", ".join(result.allowed)),),
                )
            return Decision.deny(result.reason)
        ctx.route = result
        return None
