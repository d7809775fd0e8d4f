"""The sandbox AS's ``POST /admin/mint`` test hook: tokens no grant would issue."""

from __future__ import annotations

from typing import Any

import pytest

from finward.auth.tokens import verify_access_token
from finward.sandbox.authserver.app import _is_loopback
from tests.sandbox.authserver_helpers import Reply, RunningAS, running_authserver


async def mint(auth: RunningAS, body: Any, content_type: str = "application/json") -> Reply:
    async with auth.session.post(
        auth.url + "/admin/mint", json=body, headers={"Content-Type": content_type}
    ) as response:
        is_json = response.content_type == "application/json"
        payload = await response.json() if is_json else await response.text()
        return Reply(response.status, dict(response.headers), payload)


async def test_minted_tokens_are_signed_by_the_as_with_the_claims_asked_for() -> None:
    async with running_authserver() as auth:
        reply = await mint(
            auth,
            {
                "client_id": "tpp-acme-ais",
                "sub": "psu-alice",
                "cnf": {"jkt": "thumbprint-of-a-dpop-key"},
                "claims": {"consent_id": "consent-7"},
            },
        )
        assert reply.status == 200, reply.body
        verified = await auth.verify(reply.body["access_token"])
    assert reply.body["token_type"] == "DPoP"
    assert reply.headers["Cache-Control"] == "no-store"
    assert (verified.sub, verified.client_id) == ("psu-alice", "tpp-acme-ais")
    assert verified.scopes == frozenset({"accounts"})  # the client's registration
    assert verified.cnf == {"jkt": "thumbprint-of-a-dpop-key"}
    assert verified.claims["consent_id"] == "consent-7"


async def test_an_expired_token_verifies_except_for_its_expiry() -> None:
    async with running_authserver() as auth:
        reply = await mint(auth, {"client_id": "tpp-initech", "scope": "payments", "exp_in": -60})
        assert reply.status == 200, reply.body
        keyset = await auth.keyset()
        token = reply.body["access_token"]
        claims = reply.body["claims"]
        assert claims["exp"] == int(auth.now) - 60
        assert claims["iat"] == claims["nbf"] == claims["exp"] - auth.server.config.token_lifetime_s
        with pytest.raises(Exception, match="expired") as info:
            verify_access_token(token, keyset, auth.policy(), auth.now)
        assert getattr(info.value, "reason", None) == "token_expired"
        # Signed by the AS's own key: two minutes earlier, the same token was accepted.
        verified = verify_access_token(token, keyset, auth.policy(), auth.now - 120)
    assert verified.scopes == frozenset({"payments"})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"client_id": "tpp-nobody"}, "client_id is missing or unknown"),
        ({"client_id": "tpp-acme-ais", "scope": "payments"}, "not allowed"),
        ({"client_id": "tpp-acme-ais", "exp_in": 10**9}, "exp_in"),
        ({"client_id": "tpp-acme-ais", "exp_in": "soon"}, "exp_in"),
        ({"client_id": "tpp-acme-ais", "cnf": {"kid": "x"}}, "cnf"),
        ({"client_id": "tpp-acme-ais", "sub": "psu alice"}, "sub"),
        ({"client_id": "tpp-acme-ais", "alg": "HS256"}, "alg"),
        ({"client_id": "tpp-acme-ais", "claims": ["exp"]}, "claims"),
        ({"client_id": "tpp-acme-ais", "lifetime": 5}, "unknown member"),
        (["tpp-acme-ais"], "JSON object"),
    ],
)
async def test_bad_mint_requests_are_refused(body: Any, error: str) -> None:
    async with running_authserver() as auth:
        reply = await mint(auth, body)
    assert reply.status == 400
    assert error in reply.body["error_description"]


async def test_mint_wants_json_and_exists_only_in_sandbox_mode() -> None:
    async with running_authserver() as auth:
        form = await auth.post("/admin/mint", {"client_id": "tpp-acme-ais"}, client=None)
        metadata = await auth.get_json("/.well-known/oauth-authorization-server")
    assert form.status == 400
    assert form.body["error_description"] == "the body must be application/json"
    assert metadata["sandbox_mint_endpoint"] == auth.url + "/admin/mint"
    assert metadata["sandbox_rotate_endpoint"] == auth.url + "/admin/rotate"
    async with running_authserver(sandbox_mode=False) as auth:
        missing = await mint(auth, {"client_id": "tpp-acme-ais"})
        metadata = await auth.get_json("/.well-known/oauth-authorization-server")
    assert missing.status == 404
    assert not any(name.startswith("sandbox_") for name in metadata)


def test_only_loopback_callers_may_mint() -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("::1")
    assert not _is_loopback("192.0.2.7") and not _is_loopback(None)
