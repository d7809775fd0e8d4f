"""The admin listener: health, readiness and metrics open; everything else authenticated.

It binds to loopback by default. Every authenticated action (and every failed
authentication) is an event on the stream, so it reaches the access log now and
the audit trail when that consumer is configured.
"""

from __future__ import annotations

import hmac
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from finward.core.problem import PROBLEM_CONTENT_TYPE, render_problem
from finward.core.request_ids import new_id, pick_ids
from finward.decision import Decision
from finward.events import GatewayEvent
from finward.storage.base import (
    StateStore,
    StateStoreError,
    check_identifier,
    check_reason,
)

# A JSON body holds one id (<= 256 chars) and a reason (<= 1024 chars); even fully
# \uXXXX-escaped that is under 8 KiB. Anything larger is refused before parsing.
MAX_ADMIN_BODY_BYTES = 8 * 1024
# Each revocation sits in every worker's snapshot until `until`: refuse one meant to
# outlive any access token (FAPI 2.0 tokens live minutes; a year is a typo).
MAX_REVOCATION_S = 366 * 86_400.0
DEFAULT_REVOCATION_TTL_S = 86_400.0
NO_STATE_STORE = "authentication is not configured: no state store"


def _no_store() -> StateStore | None:
    return None


@dataclass
class AdminHooks:
    """What the admin listener can ask of the running gateway."""

    metrics: Callable[[], Awaitable[str]]
    reload: Callable[[str], Awaitable[tuple[bool, str]]]
    ready: Callable[[], bool]
    status: Callable[[], dict[str, object]]
    emit: Callable[[GatewayEvent], None]
    # The state store revocations and suspensions go to (None: auth not configured).
    state_store: Callable[[], StateStore | None] = _no_store
    # auth.revocation_ttl_s of the configuration being served.
    revocation_ttl_s: Callable[[], float] = lambda: DEFAULT_REVOCATION_TTL_S
    now: Callable[[], float] = time.time


class _BadRequest(Exception):
    """An admin request the API refuses with 400; the message is safe to echo."""


IDS = web.RequestKey("finward_ids", tuple)


def _actor(request: web.Request) -> str:
    return f"admin:{request.remote or 'unknown'}"


def _problem(
    request: web.Request, reason: str, detail: str | None = None, *, status: int | None = None
) -> web.Response:
    rid, iid = request.get(IDS, (new_id(), new_id()))
    decision = Decision.deny(reason, detail, status=status)
    resp = web.Response(
        body=render_problem(decision, request_id=rid, interaction_id=iid),
        status=decision.status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    if decision.status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="finward-admin"'
    return resp


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def _read_object(request: web.Request, allowed: frozenset[str]) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` members; empty body -> {}."""
    if request.content_length is not None and request.content_length > MAX_ADMIN_BODY_BYTES:
        raise _BadRequest(f"the body is larger than {MAX_ADMIN_BODY_BYTES} bytes")
    raw = b""
    while len(raw) <= MAX_ADMIN_BODY_BYTES:  # bounded even for a chunked body
        chunk = await request.content.read(MAX_ADMIN_BODY_BYTES + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > MAX_ADMIN_BODY_BYTES:
        raise _BadRequest(f"the body is larger than {MAX_ADMIN_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _BadRequest("the body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        # Member names are echoed only when they look like names (no input echoes).
        shown = ", ".join(n if n.isidentifier() and len(n) <= 32 else "?" for n in unknown)
        raise _BadRequest(f"unknown member(s): {shown}; allowed: {', '.join(sorted(allowed))}")
    return data


def _identifier(kind: str, value: object) -> str:
    if not isinstance(value, str):
        raise _BadRequest(f"{kind} must be a string")
    try:
        check_identifier(kind, value)
    except ValueError as exc:
        raise _BadRequest(str(exc)) from None
    return value


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

    def audit(request: web.Request, kind: str, ok: bool, detail: str, **attrs: str) -> None:
        hooks.emit(
            GatewayEvent(
                time.time(),
                kind,
                "success" if ok else "failure",
                detail=detail,
                actor=_actor(request),
                attrs=attrs,
            )
        )

    async def state_action(
        request: web.Request,
        kind: str,
        action: Callable[[StateStore], Awaitable[tuple[dict[str, Any], str, dict[str, str]]]],
    ) -> web.Response:
        """Authenticate, run one state store action, audit it whatever the outcome."""
        if not authenticated(request, kind):
            return _problem(request, "admin_unauthorized")
        store = hooks.state_store()
        if store is None:
            audit(request, kind, False, NO_STATE_STORE)
            return _problem(request, "admin_not_configured", NO_STATE_STORE)
        try:
            body, detail, attrs = await action(store)
        except _BadRequest as exc:
            audit(request, kind, False, f"refused: {exc}")
            return _problem(request, "admin_invalid_request", str(exc))
        except StateStoreError as exc:
            # The message names the store with its password redacted, never a secret.
            audit(request, kind, False, f"state store: {exc}"[:500])
            detail = (
                "the state store did not answer; the change may not have been applied: "
                "retry (the operation is idempotent)"
            )
            return _problem(request, "state_store_unavailable", detail)
        audit(request, kind, True, detail, **attrs)
        return _json(body)

    async def revoke_token(request: web.Request) -> web.Response:
        async def action(store: StateStore) -> tuple[dict[str, Any], str, dict[str, str]]:
            data = await _read_object(request, frozenset({"jti", "until"}))
            jti = _identifier("jti", data.get("jti"))
            now = hooks.now()
            until = data.get("until")
            if until is None:
                until = now + hooks.revocation_ttl_s()
            elif isinstance(until, bool) or not isinstance(until, int | float):
                raise _BadRequest("until must be a number of epoch seconds")
            elif not math.isfinite(until) or until <= now:
                raise _BadRequest("until must be in the future (epoch seconds)")
            elif until > now + MAX_REVOCATION_S:
                raise _BadRequest(f"until must be within {MAX_REVOCATION_S:.0f} s from now")
            until = float(until)
            await store.revoke_token(jti, until, actor=_actor(request))
            detail = f"token revoked until {until:.0f}"
            return {"jti": jti, "until": until}, detail, {"jti": jti}

        return await state_action(request, "token_revoked", action)

    async def suspend_client(request: web.Request) -> web.Response:
        async def action(store: StateStore) -> tuple[dict[str, Any], str, dict[str, str]]:
            client_id = _identifier("client_id", request.match_info["client_id"])
            data = await _read_object(request, frozenset({"reason"}))
            reason = data.get("reason", "")
            if not isinstance(reason, str):
                raise _BadRequest("reason must be a string")
            try:
                check_reason(reason)
            except ValueError as exc:
                raise _BadRequest(str(exc)) from None
            await store.suspend_client(client_id, actor=_actor(request), reason=reason)
            body = {"client_id": client_id, "suspended": True, "reason": reason}
            return body, f"client suspended: {reason}", {"client_id": client_id}

        return await state_action(request, "client_suspended", action)

    async def unsuspend_client(request: web.Request) -> web.Response:
        async def action(store: StateStore) -> tuple[dict[str, Any], str, dict[str, str]]:
            client_id = _identifier("client_id", request.match_info["client_id"])
            removed = await store.unsuspend_client(client_id, actor=_actor(request))
            detail = "client unsuspended" if removed else "client was not suspended"
            body = {"client_id": client_id, "unsuspended": removed}
            return body, detail, {"client_id": client_id}

        return await state_action(request, "client_unsuspended", action)

    async def list_suspended(request: web.Request) -> web.Response:
        async def action(store: StateStore) -> tuple[dict[str, Any], str, dict[str, str]]:
            entries = store.list_suspensions()
            clients = [
                {"client_id": cid, "since": s.since, "actor": s.actor, "reason": s.reason}
                for cid, s in sorted(entries.items())
            ]
            return {"suspended": clients, "count": len(clients)}, "list suspended clients", {}

        return await state_action(request, "admin_action", action)

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
    app.router.add_post("/admin/tokens/revoke", revoke_token)
    app.router.add_get("/admin/clients/suspended", list_suspended)
    app.router.add_post(r"/admin/clients/{client_id:[\s\S]+}/suspend", suspend_client)
    app.router.add_delete(r"/admin/clients/{client_id:[\s\S]+}/suspend", unsuspend_client)
    app.router.add_route("*", r"/{tail:[\s\S]*}", not_found)
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
