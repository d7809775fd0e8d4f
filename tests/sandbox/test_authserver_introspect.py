"""Introspection (RFC 7662), revocation (RFC 7009), opaque tokens and key rotation over HTTP."""

from __future__ import annotations

import jwt
import pytest

from finward.auth.mtls import certificate_thumbprint
from finward.auth.tokens import TokenError, verify_access_token
from finward.sandbox.authserver.tokens import mint_access_token
from tests.sandbox.authserver_helpers import (
    ACME,
    GATEWAY,
    INITECH,
    acme_qwac,
    cert_header,
    pkce_pair,
    running_authserver,
)


async def test_introspection_describes_a_live_jwt_token() -> None:
    async with running_authserver() as auth:
        token = await auth.access_token(scope="accounts")
        reply = await auth.introspect(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert reply.status == 200 and reply.headers["Cache-Control"] == "no-store"
    body = reply.body
    assert body["active"] is True and body["token_type"] == "Bearer"
    for name in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti"):
        assert body[name] == claims[name], name
    assert body["iss"] == auth.url and "cnf" not in body


async def test_introspection_reports_the_binding_and_the_consent() -> None:
    verifier, challenge = pkce_pair()
    async with running_authserver() as auth:
        code = await auth.code(challenge, consent_id="consent-9")
        token = (
            await auth.token(
                headers={"X-Client-Cert": cert_header(acme_qwac())},
                grant_type="authorization_code",
                code=code,
                redirect_uri="http://127.0.0.1/cb",
                code_verifier=verifier,
            )
        ).body["access_token"]
        body = (await auth.introspect(token)).body
    assert body["cnf"] == {"x5t#S256": certificate_thumbprint(acme_qwac())}
    assert body["sub"] == "psu-alice" and body["consent_id"] == "consent-9"


async def test_opaque_tokens_are_random_strings_that_only_introspection_explains() -> None:
    async with running_authserver() as auth:
        reply = await auth.token(
            grant_type="client_credentials", token_format="opaque", scope="payments"
        )
        token, expires = reply.body["access_token"], int(auth.now) + 300
        assert "." not in token and len(token) >= 43
        with pytest.raises(TokenError):
            await auth.verify(token)
        live = (await auth.introspect(token)).body
        auth.clock.advance(300)
        expired = (await auth.introspect(token)).body
    assert live["active"] is True and live["scope"] == "payments"
    assert live["client_id"] == "tpp-initech" and live["exp"] == expires
    assert live["iss"] == auth.url and live["token_type"] == "Bearer" and live["jti"]
    assert expired == {"active": False}


@pytest.mark.parametrize("token_format", ["jwt", "opaque"])
async def test_revoked_tokens_are_inactive(token_format: str) -> None:
    async with running_authserver() as auth:
        token = await auth.access_token(token_format=token_format)
        before = (await auth.introspect(token)).body["active"]
        revoke = await auth.post("/revoke", {"token": token}, client=INITECH)
        after = (await auth.introspect(token)).body
    assert before is True and revoke.status == 200
    assert after == {"active": False}


async def test_only_the_owner_may_revoke_and_unknown_tokens_are_ok() -> None:
    async with running_authserver() as auth:
        token = await auth.access_token()
        by_other = await auth.post("/revoke", {"token": token}, client=ACME)
        unknown = await auth.post("/revoke", {"token": "no-such-token"}, client=ACME)
        anonymous = await auth.post("/revoke", {"token": token}, client=None)
        still = (await auth.introspect(token)).body["active"]
    assert (by_other.status, by_other.body["error"]) == (400, "unauthorized_client")
    assert unknown.status == 200
    assert (anonymous.status, anonymous.body["error"]) == (401, "invalid_client")
    assert still is True


@pytest.mark.parametrize(
    "token",
    [
        "unknown-opaque-token",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "a.b.c",
        "x" * 10_000,
    ],
)
async def test_unknown_tokens_are_inactive_without_details(token: str) -> None:
    async with running_authserver() as auth:
        reply = await auth.introspect(token)
    assert reply.status == 200 and reply.body == {"active": False}


async def test_tokens_of_another_key_or_issuer_are_inactive() -> None:
    async with running_authserver() as auth:
        foreign = mint_access_token(
            auth.server.keys, client_id="tpp-initech", sub="s", scope="accounts"
        )  # signed by our key, but for the default issuer, not this one
        ours = mint_access_token(
            auth.server.keys, client_id="tpp-initech", sub="s", scope="accounts", issuer=auth.url
        )
        assert (await auth.introspect(foreign)).body == {"active": False}
        assert (await auth.introspect(ours)).body["active"] is True


@pytest.mark.parametrize(
    ("client", "form", "status", "error"),
    [
        (("finward-gateway", "wrong"), {"token": "t"}, 401, "invalid_client"),
        (None, {"token": "t"}, 401, "invalid_client"),
        (INITECH, {"token": "t"}, 403, "unauthorized_client"),  # a TPP is no resource server
        (GATEWAY, {}, 400, "invalid_request"),
    ],
)
async def test_introspection_needs_an_authenticated_resource_server(
    client: tuple[str, str] | None, form: dict[str, str], status: int, error: str
) -> None:
    async with running_authserver() as auth:
        reply = await auth.post("/introspect", form, client=client)
    assert (reply.status, reply.body["error"]) == (status, error)


async def test_the_gateway_secret_is_configurable() -> None:
    from finward.sandbox.authserver.clients import default_clients

    clients = default_clients(gateway_secret="another-secret")
    async with running_authserver(clients=clients) as auth:
        token = await auth.access_token()
        old = await auth.introspect(token, client=GATEWAY)
        new = await auth.introspect(token, client=("finward-gateway", "another-secret"))
    assert old.status == 401 and new.body["active"] is True


async def test_rotation_keeps_old_tokens_valid_during_the_grace_period() -> None:
    async with running_authserver(token_lifetime_s=3600) as auth:
        old_kid = auth.server.keys.current("ES256").kid
        old = await auth.access_token()
        rotated = await auth.post("/admin/rotate", {}, client=None)
        assert rotated.status == 200
        new_kids = {entry["alg"]: entry["kid"] for entry in rotated.body["rotated"]}
        assert set(new_kids) == {"ES256", "EdDSA"} and new_kids["ES256"] != old_kid
        assert old_kid in rotated.body["published"]
        new = await auth.access_token()
        assert jwt.get_unverified_header(new)["kid"] == new_kids["ES256"]
        await auth.verify(old)  # the previous key is still in the JWKS
        await auth.verify(new)
        assert (await auth.introspect(old)).body["active"] is True

        auth.clock.advance(auth.server.keys.grace_s)
        keyset = await auth.keyset()
        assert not keyset.has_kid(old_kid) and keyset.has_kid(new_kids["ES256"])
        with pytest.raises(TokenError) as refused:
            verify_access_token(old, keyset, auth.policy(), auth.now)
        assert refused.value.reason == "token_key_unknown"
        assert (await auth.introspect(old)).body == {"active": False}
        await auth.verify(new)


async def test_rotation_of_one_algorithm_by_query_parameter() -> None:
    async with running_authserver() as auth:
        eddsa = auth.server.keys.current("EdDSA").kid
        reply = await auth.post("/admin/rotate?alg=ES256", {}, client=None)
        bad = await auth.post("/admin/rotate?alg=PS256", {}, client=None)
    assert [entry["alg"] for entry in reply.body["rotated"]] == ["ES256"]
    assert auth.server.keys.current("EdDSA").kid == eddsa
    assert (bad.status, bad.body["error"]) == (400, "invalid_request")
