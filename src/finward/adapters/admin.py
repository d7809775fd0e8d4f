"""The admin listener: health, readiness and metrics open; everything else authenticated.

It binds to loopback by default. Every authenticated action (and every failed
authentication) is an event on the stream, so it reaches the access log now and
the audit trail when that consumer is configured.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

from finward.core.problem import PROBLEM_CONTENT_TYPE, render_problem
from finward.core.request_ids import new_id, pick_ids
from finward.decision import Decision
from finward.events import GatewayEvent


@dataclass
class AdminHooks:
    """What the admin listener can ask of the running gateway."""

    metrics: Callable[[], Awaitable[str]]
    reload: Callable[[str], Awaitable[tuple[bool, str]]]
    ready: Callable[[], bool]
    status: Callable[[], dict[str, object]]
    emit: Callable[[GatewayEvent], None]


IDS = web.RequestKey("finward_ids", tuple)


def _problem(request: web.Request, reason: str, detail: str | None = None) -> web.Response:
    rid, iid = request.get(IDS, (new_id(), new_id()))
    decision = Decision.deny(reason, detail)
    resp = web.Response(
        body=render_problem(decision, request_id=rid, interaction_id=iid),
        status=decision.status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    if decision.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="finward-admin"'
    return resp


def create_admin_app(hooks: AdminHooks, token: str | None) -> web.Application:
    expected = token.encode() if token else None

    def authenticated(request: web.Request, action: str) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        ok = (
            expected is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(presented.strip().encode(), expected)
        )
        if not ok:
            hooks.emit(
                GatewayEvent(
                    time.time(),
                    "admin_auth_failed",
                    "failure",
                    detail=action,
                    actor=request.remote or "",
                )
            )
        return ok

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ready = hooks.ready()
        return web.json_response(
            {"status": "ready" if ready else "not_ready"}, status=200 if ready else 503
        )

    async def metrics(_: web.Request) -> web.Response:
        text = await hooks.metrics()
        return web.Response(text=text, content_type="text/plain", charset="utf-8")

    async def reload(request: web.Request) -> web.Response:
        if not authenticated(request, "reload"):
            return _problem(request, "admin_unauthorized")
        ok, detail = await hooks.reload(f"admin:{request.remote}")
        hooks.emit(
            GatewayEvent(
                time.time(),
                "admin_action",
                "success" if ok else "failure",
                detail=f"reload: {detail}",
                actor=f"admin:{request.remote}",
            )
        )
        return web.Response(
            body=orjson.dumps({"reloaded": ok, "detail": detail}),
            status=200 if ok else 422,
            content_type="application/json",
        )

    async def status(request: web.Request) -> web.Response:
        if not authenticated(request, "status"):
            return _problem(request, "admin_unauthorized")
        hooks.emit(
            GatewayEvent(
                time.time(),
                "admin_action",
                "success",
                detail="status",
                actor=f"admin:{request.remote}",
            )
        )
        return web.Response(body=orjson.dumps(hooks.status()), content_type="application/json")

    async def not_found(request: web.Request) -> web.Response:
        return _problem(request, "admin_not_found")

    @web.middleware
    async def request_ids(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # The admin listener answers with the same correlation headers as the data plane.
        rid, iid = pick_ids(
            request.headers.get("X-Request-ID"), request.headers.get("x-fapi-interaction-id")
        )
        request[IDS] = (rid, iid)
        response = await handler(request)
        response.headers["X-Request-ID"] = rid
        response.headers["x-fapi-interaction-id"] = iid
        return response

    app = web.Application(client_max_size=64 * 1024, middlewares=[request_ids])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/admin/reload", reload)
    app.router.add_get("/admin/status", status)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


async def start_admin(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    actual = sockets[0].getsockname()[1] if sockets else port
    return runner, int(actual)
