"""The admin API's revocation and suspension endpoints, and the CLI that calls them.

In process, on real loopback sockets: the admin app over a real state store (memory,
or a Redis URL nobody listens on for the failure path), and a real gateway worker with
the sandbox AS's tokens for the effect on traffic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import typer
from aiohttp import web

from finward.adapters.admin import (
    MAX_ADMIN_BODY_BYTES,
    NO_STATE_STORE,
    AdminHooks,
    create_admin_app,
    start_admin,
)
from finward.cli.admin_cmd import AdminTarget, resolve_target
from finward.clock import SystemClock
from finward.config.model import ApiAuthConfig, AuthConfig, IssuerConfig
from finward.events import Event, GatewayEvent
from finward.sandbox.authserver.server import authserver_of, start_authserver
from finward.sandbox.authserver.tokens import mint_access_token
from finward.storage import MemoryStateStore, StateStore, open_state_store
from tests.harness import TEST_SPEC, Upstream, make_config, start_gateway

TOKEN = "admin-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TTL_S = 3600.0


@dataclass
class Admin:
    url: str
    store: StateStore | None
    runner: web.AppRunner
    events: list[Event] = field(default_factory=list)

    def audit(self, kind: str) -> list[GatewayEvent]:
        return [e for e in self.events if isinstance(e, GatewayEvent) and e.kind == kind]


async def start_admin_app(store: StateStore | None) -> Admin:
    events: list[Event] = []

    async def metrics() -> str:
        return ""

    async def reload(actor: str) -> tuple[bool, str]:
        return True, "ok"

    hooks = AdminHooks(
        metrics=metrics,
        reload=reload,
        ready=lambda: True,
        status=dict,
        emit=events.append,
        state_store=lambda: store,
        revocation_ttl_s=lambda: TTL_S,
    )
    runner, port = await start_admin(create_admin_app(hooks, TOKEN), "127.0.0.1", 0)
    return Admin(f"http://127.0.0.1:{port}", store, runner, events)


@pytest.fixture
async def admin() -> AsyncIterator[Admin]:
    store = MemoryStateStore(clock=SystemClock())
    running = await start_admin_app(store)
    yield running
    await running.runner.cleanup()
    await store.close()


async def call(
    method: str, url: str, *, headers: dict[str, str] | None = AUTH, **kwargs: Any
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, **kwargs) as response,
    ):
        return response.status, await response.json(content_type=None)


ENDPOINTS = [
    ("POST", "/admin/tokens/revoke", {"jti": "abc"}),
    ("POST", "/admin/clients/tpp-1/suspend", {"reason": "x"}),
    ("DELETE", "/admin/clients/tpp-1/suspend", None),
    ("GET", "/admin/clients/suspended", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]
)
async def test_every_state_endpoint_needs_the_admin_token(
    admin: Admin, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    status, problem = await call(method, admin.url + path, headers=headers, json=body)
    assert status == 401 and problem["reason"] == "admin_unauthorized"
    assert admin.store is not None
    assert not admin.store.is_token_revoked("abc")
    assert not admin.store.is_client_suspended("tpp-1")
    [event] = admin.audit("admin_auth_failed")
    assert event.outcome == "failure" and TOKEN not in repr(event)


async def test_revoke_defaults_to_the_revocation_ttl_and_is_audited(admin: Admin) -> None:
    before = time.time()
    status, body = await call("POST", admin.url + "/admin/tokens/revoke", json={"jti": "j-42"})
    assert status == 200 and body["jti"] == "j-42"
    assert before + TTL_S <= body["until"] <= time.time() + TTL_S
    assert admin.store is not None and admin.store.is_token_revoked("j-42")
    [event] = admin.audit("token_revoked")
    assert event.outcome == "success" and event.actor == "admin:127.0.0.1"
    assert event.attrs == {"jti": "j-42"}
    assert TOKEN not in repr(admin.events)


async def test_revoke_with_an_explicit_until(admin: Admin) -> None:
    until = time.time() + 120
    status, body = await call(
        "POST", admin.url + "/admin/tokens/revoke", json={"jti": "j-1", "until": until}
    )
    assert (status, body) == (200, {"jti": "j-1", "until": until})
    assert admin.store is not None and admin.store.is_token_revoked("j-1")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "jti must be a string"),
        (b'{"jti": 7}', "jti must be a string"),
        (b'{"jti": ""}', "jti must be 1-256 printable characters"),
        (b'{"jti": "' + b"a" * 257 + b'"}', "jti must be 1-256 printable characters"),
        (b'{"jti": "a\\nb"}', "jti must be 1-256 printable characters"),
        (b'{"jti": "a", "until": "tomorrow"}', "until must be a number"),
        (b'{"jti": "a", "until": true}', "until must be a number"),
        (b'{"jti": "a", "until": 1000}', "until must be in the future"),
        (b'{"jti": "a", "until": 1e300}', "until must be within"),
        (b'{"jti": "a", "exp": 5}', "unknown member(s): exp"),
        (b'{"jti": "' + b"a" * MAX_ADMIN_BODY_BYTES + b'"}', "larger than 8192 bytes"),
    ],
)
async def test_revoke_refuses_bad_input_with_problem_json(
    admin: Admin, payload: bytes, message: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(admin.url + "/admin/tokens/revoke", data=payload, headers=AUTH) as response,
    ):
        assert response.status == 400
        assert response.content_type == "application/problem+json"
        problem = await response.json(content_type=None)
    assert problem["reason"] == "admin_invalid_request" and message in problem["detail"]
    assert "\n" not in problem["detail"] and "aaaa" not in problem["detail"]  # no echoes
    [event] = admin.audit("token_revoked")
    assert event.outcome == "failure" and message in event.detail


async def test_an_oversized_chunked_body_is_refused(admin: Admin) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 4096

    status, problem = await call("POST", admin.url + "/admin/tokens/revoke", data=chunks())
    assert status == 400 and "larger than" in problem["detail"]


async def test_suspend_list_unsuspend(admin: Admin) -> None:
    store = admin.store
    assert store is not None
    url = admin.url + "/admin/clients/tpp-acme/suspend"
    status, body = await call("POST", url, json={"reason": "fraud report #12"})
    assert (status, body["suspended"], body["client_id"]) == (200, True, "tpp-acme")
    assert store.is_client_suspended("tpp-acme")
    # No body at all: the reason is optional. Ids may be URLs (escaped "/").
    status, _ = await call("POST", admin.url + "/admin/clients/https:%2F%2Ftpp.example/suspend")
    assert status == 200 and store.is_client_suspended("https://tpp.example")
    status, listing = await call("GET", admin.url + "/admin/clients/suspended")
    assert status == 200 and listing["count"] == 2
    first, second = listing["suspended"]
    assert first["client_id"] == "https://tpp.example" and first["reason"] == ""
    assert second["client_id"] == "tpp-acme" and second["reason"] == "fraud report #12"
    assert second["actor"] == "admin:127.0.0.1" and second["since"] <= time.time()

    assert await call("DELETE", url) == (200, {"client_id": "tpp-acme", "unsuspended": True})
    assert not store.is_client_suspended("tpp-acme")
    assert await call("DELETE", url) == (200, {"client_id": "tpp-acme", "unsuspended": False})
    assert [e.outcome for e in admin.audit("client_suspended")] == ["success", "success"]
    events = admin.audit("client_unsuspended")
    assert [e.detail for e in events] == ["client unsuspended", "client was not suspended"]
    assert events[0].attrs == {"client_id": "tpp-acme"}


@pytest.mark.parametrize(
    ("path", "payload", "message"),
    [
        ("/admin/clients/tpp/suspend", {"reason": "x" * 1025}, "reason must be at most 1024"),
        ("/admin/clients/tpp/suspend", {"reason": 5}, "reason must be a string"),
        ("/admin/clients/tpp/suspend", {"why": "x"}, "unknown member(s): why"),
        ("/admin/clients/tpp%0Ax/suspend", {}, "client_id must be 1-256 printable"),
        (f"/admin/clients/{'c' * 257}/suspend", {}, "client_id must be 1-256 printable"),
    ],
)
async def test_suspend_refuses_bad_input(
    admin: Admin, path: str, payload: dict[str, Any], message: str
) -> None:
    status, problem = await call("POST", admin.url + path, json=payload)
    assert status == 400 and message in problem["detail"]
    assert admin.store is not None and admin.store.list_suspensions() == {}


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_without_a_state_store_the_answer_is_409(method: str, path: str, body: Any) -> None:
    running = await start_admin_app(None)
    try:
        status, problem = await call(method, running.url + path, json=body)
    finally:
        await running.runner.cleanup()
    assert status == 409 and problem["detail"] == NO_STATE_STORE
    assert problem["reason"] == "admin_not_configured"
    assert all(e.outcome == "failure" for e in running.events if isinstance(e, GatewayEvent))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_an_unreachable_store_is_503_and_audited(method: str, path: str, body: Any) -> None:
    url = f"redis://:hunter2@127.0.0.1:{_closed_port()}/0?timeout_ms=200&max_stale_ms=1000"
    store = open_state_store(url, clock=SystemClock())
    running = await start_admin_app(store)
    try:
        status, problem = await call(method, running.url + path, json=body)
    finally:
        await running.runner.cleanup()
        await store.close()
    assert status == 503 and problem["reason"] == "state_store_unavailable"
    assert "may not have been applied" in problem["detail"]
    failures = [e for e in running.events if isinstance(e, GatewayEvent)]
    assert len(failures) == 1 and failures[0].outcome == "failure"
    assert "state store" in failures[0].detail and "hunter2" not in repr(running.events)


# -- the effect on traffic, single process ---------------------------------------------


async def test_single_process_revocation_and_suspension_apply_at_once(
    upstream: Upstream,
) -> None:
    as_runner, as_port = await start_authserver()
    issuer = f"http://127.0.0.1:{as_port}"
    auth = AuthConfig(
        issuers=(IssuerConfig(issuer=issuer, allow_insecure_loopback=True),),
        audiences=("finward",),
        public_base_url="http://127.0.0.1:8443",
    )
    cfg = make_config(upstream.url, auth=auth)
    api = dataclasses.replace(cfg.apis[0], auth=ApiAuthConfig(sender_constraint="optional"))
    gw = await start_gateway(dataclasses.replace(cfg, apis=(api,)))
    assert gw.worker.auth is not None
    running = await start_admin_app(gw.worker.auth.store)
    keys = authserver_of(as_runner).keys

    def token(jti: str) -> dict[str, str]:
        minted = mint_access_token(
            keys,
            client_id="tpp-initech",
            sub="psu-1",
            scope="accounts",
            issuer=issuer,
            extra_claims={"jti": jti},
        )
        return {"Authorization": f"Bearer {minted}"}

    async def get(headers: dict[str, str]) -> tuple[int, str | None]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(gw.url + "/items/a", headers=headers) as r,
        ):
            body = await r.json(content_type=None)
            return r.status, body.get("reason")

    try:
        assert await get(token("jti-a")) == (200, None)
        await call("POST", running.url + "/admin/tokens/revoke", json={"jti": "jti-a"})
        assert await get(token("jti-a")) == (401, "token_revoked")
        assert await get(token("jti-b")) == (200, None)
        await call("POST", running.url + "/admin/clients/tpp-initech/suspend", json={})
        assert await get(token("jti-b")) == (403, "client_suspended")
        await call("DELETE", running.url + "/admin/clients/tpp-initech/suspend")
        assert await get(token("jti-b")) == (200, None)
    finally:
        await running.runner.cleanup()
        await gw.stop()
        await as_runner.cleanup()


# -- the CLI against a live admin listener -----------------------------------------------


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FINWARD_ADMIN")}
    return subprocess.run(
        [sys.executable, "-c", "from finward.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **(env or {})},
    )


async def test_cli_commands(admin: Admin) -> None:
    store = admin.store
    assert store is not None
    env = {"FINWARD_ADMIN_TOKEN": TOKEN}
    url = ("--admin-url", admin.url)

    def run(*args: str, env: dict[str, str] | None = env) -> Any:
        return asyncio.to_thread(_cli, *args, env=env)

    done = await run("tokens", "revoke", "jti-cli", "--ttl", "60", *url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("revoked token jti-cli until ")
    assert store.is_token_revoked("jti-cli")

    done = await run("clients", "suspend", "tpp/x", "--reason", "chargebacks", *url)
    assert done.returncode == 0 and store.is_client_suspended("tpp/x")
    done = await run("clients", "list", *url)
    assert done.returncode == 0 and "tpp/x\tsince " in done.stdout and "chargebacks" in done.stdout
    done = await run("clients", "unsuspend", "tpp/x", *url)
    assert (done.returncode, done.stdout) == (0, "unsuspended client tpp/x\n")
    done = await run("clients", "unsuspend", "tpp/x", *url)
    assert (done.returncode, done.stdout) == (0, "client tpp/x was not suspended\n")
    done = await run("clients", "list", "--json", *url)
    assert done.returncode == 0 and '"count": 0' in done.stdout

    # Failures: a clear message and a non-zero status, never a traceback.
    done = await run("tokens", "revoke", "j", *url, env={})
    assert done.returncode == 2 and "no admin token" in done.stderr
    done = await run("tokens", "revoke", "j", *url, env={"FINWARD_ADMIN_TOKEN": "wrong"})
    assert done.returncode == 1 and "admin token was refused" in done.stderr
    done = await run("tokens", "revoke", "j", "--until", "5", *url)
    assert done.returncode == 1 and "until must be in the future" in done.stderr
    assert "admin_invalid_request" in done.stderr
    done = await run("tokens", "revoke", "j", "--until", "5", "--ttl", "5", *url)
    assert done.returncode == 2 and "not both" in done.stderr
    closed = f"http://127.0.0.1:{_closed_port()}"
    done = await run("clients", "list", "--admin-url", closed)
    assert done.returncode == 1 and f"admin listener unreachable at {closed}" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_finds_the_admin_listener_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "finward.yaml"
    config.write_text(
        f"""version: 1
admin: {{enabled: true, host: 0.0.0.0, port: 9911, token: from-file-0123456789}}
upstreams: {{test: {{url: "http://127.0.0.1:1"}}}}
apis: [{{name: a, spec: {TEST_SPEC}, upstream: test}}]
"""
    )
    assert resolve_target(config, None, None) == AdminTarget(
        "http://127.0.0.1:9911", "from-file-0123456789"
    )
    # Options (and their environment variables) win over the file.
    assert resolve_target(config, "http://10.0.0.5:9000/", "t") == AdminTarget(
        "http://10.0.0.5:9000", "t"
    )
    assert resolve_target(None, None, "t").url == "http://127.0.0.1:9901"
    with pytest.raises(typer.Exit):
        resolve_target(None, None, None)
