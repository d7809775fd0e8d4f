"""The sandbox AS over real loopback sockets: discovery, JWKS, client credentials, binding."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import jwt
import pytest

from finward.auth.dpop import access_token_hash, verify_dpop_proof
from finward.auth.mtls import certificate_thumbprint, check_mtls_binding
from finward.http import Headers, TlsInfo
from tests.auth.certs import qwac
from tests.auth.dpop_client import signer
from tests.sandbox.authserver_helpers import (
    ACME,
    GATEWAY,
    INITECH,
    acme_qwac,
    cert_header,
    running_authserver,
)


async def test_discovery_documents_name_every_endpoint_under_the_issuer() -> None:
    async with running_authserver() as auth:
        oauth = await auth.get_json("/.well-known/oauth-authorization-server")
        oidc = await auth.get_json("/.well-known/openid-configuration")
    assert oauth == oidc
    assert oauth["issuer"] == auth.url
    for name, path in [
        ("jwks_uri", "/jwks"),
        ("token_endpoint", "/token"),
        ("introspection_endpoint", "/introspect"),
        ("authorization_endpoint", "/authorize"),
        ("revocation_endpoint", "/revoke"),
    ]:
        assert oauth[name] == auth.url + path
    assert oauth["tls_client_certificate_bound_access_tokens"] is True
    assert set(oauth["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "tls_client_auth",
    }
    assert set(oauth["dpop_signing_alg_values_supported"]) == {"PS256", "ES256", "EdDSA"}
    assert oauth["code_challenge_methods_supported"] == ["S256"]


async def test_jwks_publishes_the_current_public_keys() -> None:
    async with running_authserver() as auth:
        keyset = await auth.keyset()
        current = auth.server.keys.current_keys()
    assert {key.kid for key in keyset.keys} == {key.kid for key in current.values()}
    assert keyset.skipped == ()


async def test_client_credentials_token_verifies_at_the_resource_server() -> None:
    async with running_authserver() as auth:
        reply = await auth.token(grant_type="client_credentials", scope="accounts payments")
        assert reply.status == 200, reply.body
        assert reply.headers["Cache-Control"] == "no-store"
        assert reply.body["token_type"] == "Bearer" and reply.body["expires_in"] == 300
        verified = await auth.verify(reply.body["access_token"])
    assert verified.issuer == auth.url and verified.client_id == "tpp-initech"
    assert verified.sub == "tpp-initech"  # RFC 9068 §2.2: the client itself
    assert verified.scopes == {"accounts", "payments"} and verified.cnf is None
    assert verified.token_type == "at+jwt" and verified.alg == "ES256"
    assert verified.exp == auth.now + 300


async def test_scope_defaults_to_the_registration_and_cannot_exceed_it() -> None:
    async with running_authserver() as auth:
        default = await auth.token(client=ACME, grant_type="client_credentials")
        wider = await auth.token(client=ACME, grant_type="client_credentials", scope="payments")
    assert default.body["scope"] == "accounts"
    assert wider.status == 400 and wider.body["error"] == "invalid_scope"


async def test_audience_and_lifetime_are_configurable() -> None:
    async with running_authserver(audience="bank-api", token_lifetime_s=30) as auth:
        token = await auth.access_token()
        verified = await auth.verify(token, audience="bank-api")
    assert verified.exp == auth.now + 30


@pytest.mark.parametrize(
    ("client", "form", "status", "error"),
    [
        (("tpp-initech", "wrong"), {}, 401, "invalid_client"),
        (("tpp-nobody", "x"), {}, 401, "invalid_client"),
        (None, {}, 401, "invalid_client"),
        (None, {"client_id": "tpp-initech", "client_secret": "initech-sandbox-secret"}, 401,
         "invalid_client"),
        (INITECH, {"client_id": "tpp-acme-ais"}, 400, "invalid_request"),
        (GATEWAY, {}, 400, "unauthorized_client"),
        (INITECH, {"grant_type": "password"}, 400, "unsupported_grant_type"),
        (INITECH, {"grant_type": ""}, 400, "invalid_request"),
        (INITECH, {"scope": "accounts  payments"}, 400, "invalid_scope"),
        (INITECH, {"alg": "HS256"}, 400, "invalid_request"),
        (INITECH, {"alg": "PS256"}, 400, "invalid_request"),  # no RSA key in this AS
        (INITECH, {"token_format": "jwe"}, 400, "invalid_request"),
    ],
)  # fmt: skip
async def test_token_endpoint_errors_follow_rfc6749(
    client: tuple[str, str] | None, form: dict[str, str], status: int, error: str
) -> None:
    async with running_authserver() as auth:
        reply = await auth.token(client=client, **{"grant_type": "client_credentials", **form})
    assert (reply.status, reply.body["error"]) == (status, error)
    assert reply.headers["Cache-Control"] == "no-store"
    if status == 401:
        assert reply.headers["WWW-Authenticate"].startswith("Basic ")


async def test_repeated_parameters_and_other_bodies_are_refused() -> None:
    async with running_authserver() as auth:
        repeated = await auth.post("/token", "grant_type=client_credentials&scope=a&scope=b")
        broken = await auth.post("/token", "grant_type=client_credentials&&")
        json_body = await auth.post("/token", "{}", headers={"Content-Type": "application/json"})
        huge = await auth.post("/token", "grant_type=client_credentials&x=" + "a" * 40_000)
    assert [r.body["error"] for r in (repeated, broken, json_body)] == ["invalid_request"] * 3
    assert huge.status == 413 and huge.body["error"] == "invalid_request"


async def test_sandbox_mode_mints_every_fapi_alg_on_request() -> None:
    async with running_authserver(algorithms=("ES256", "PS256", "EdDSA")) as auth:
        for alg in ("PS256", "EdDSA", "ES256"):
            token = await auth.access_token(alg=alg)
            verified = await auth.verify(token)
            assert verified.alg == alg and verified.kid == auth.server.keys.current(alg).kid


async def test_without_sandbox_mode_the_test_knobs_are_refused() -> None:
    async with running_authserver(sandbox_mode=False) as auth:
        alg = await auth.token(grant_type="client_credentials", alg="EdDSA")
        opaque = await auth.token(grant_type="client_credentials", token_format="opaque")
        rotate = await auth.post("/admin/rotate", {}, client=None)
    assert alg.body["error"] == opaque.body["error"] == "invalid_request"
    assert rotate.status == 404


async def test_tls_client_auth_binds_the_token_to_the_certificate() -> None:
    der = acme_qwac()
    async with running_authserver() as auth:
        reply = await auth.token(
            client=None,
            headers={"X-Client-Cert": cert_header(der)},
            grant_type="client_credentials",
            client_id="tpp-acme-ais",
        )
        assert reply.status == 200, reply.body
        verified = await auth.verify(reply.body["access_token"])
    assert verified.client_id == "tpp-acme-ais"
    assert verified.cnf == {"x5t#S256": certificate_thumbprint(der)}
    check_mtls_binding(verified.cnf, TlsInfo(client_cert_der=der))  # RFC 8705 §3


async def test_secret_authenticated_client_presenting_a_certificate_gets_a_bound_token() -> None:
    der = qwac("PSP_AI", organization_id="PSDDE-BAFIN-777777")
    async with running_authserver() as auth:
        token = await auth.access_token(headers={"X-Client-Cert": cert_header(der)})
        verified = await auth.verify(token)
    assert verified.cnf == {"x5t#S256": certificate_thumbprint(der)}


@pytest.mark.parametrize(
    ("cert", "client_id"),
    [
        (lambda: qwac("PSP_AI", organization_id="PSDDE-BAFIN-999999"), "tpp-acme-ais"),
        (acme_qwac, "tpp-globex-pis"),  # a valid QWAC, but of another TPP
        (acme_qwac, "finward-gateway"),  # not registered for tls_client_auth
        (acme_qwac, ""),
    ],
)
async def test_tls_client_auth_needs_the_registered_organisation(
    cert: Callable[[], bytes], client_id: str
) -> None:
    async with running_authserver() as auth:
        reply = await auth.token(
            client=None,
            headers={"X-Client-Cert": cert_header(cert())},
            grant_type="client_credentials",
            client_id=client_id,
        )
    assert (reply.status, reply.body["error"]) == (401, "invalid_client")
    assert "WWW-Authenticate" not in reply.headers


async def test_a_malformed_certificate_header_is_refused() -> None:
    async with running_authserver() as auth:
        reply = await auth.token(
            headers={"X-Client-Cert": "-----BEGIN%20CERTIFICATE-----%0Agarbage"},
            grant_type="client_credentials",
        )
    assert (reply.status, reply.body["error"]) == (400, "invalid_request")


def _token_proof(url: str, now: float, alg: str = "ES256", **claims: object) -> str:
    return signer(alg).proof(
        **{
            "htm": "POST",
            "htu": url,
            "iat": int(now),
            "ath": None,
            "jti": secrets.token_urlsafe(16),
        }
        | claims
    )


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
async def test_dpop_proof_binds_the_token_to_the_proof_key(alg: str) -> None:
    async with running_authserver() as auth:
        proof = _token_proof(auth.token_url, auth.now, alg)
        reply = await auth.token(headers={"DPoP": proof}, grant_type="client_credentials")
        assert reply.status == 200, reply.body
        assert reply.body["token_type"] == "DPoP"
        token = reply.body["access_token"]
        verified = await auth.verify(token)
    assert verified.cnf == {"jkt": signer(alg).jkt}
    # The resource server then accepts a proof of the same key for this token.
    resource_url = "https://api.bank.example/v1/accounts"
    resource_proof = signer(alg).proof(
        htm="GET", htu=resource_url, iat=int(auth.now), ath=access_token_hash(token)
    )
    accepted = verify_dpop_proof(
        Headers([("DPoP", resource_proof)]),
        "GET",
        resource_url,
        token,
        auth.now,
        auth.server.dpop_policy,
        replay=None,
        token_jkt=signer(alg).jkt,
    )
    assert accepted.jkt == signer(alg).jkt


@pytest.mark.parametrize(
    "claims",
    [
        {"htu": "http://127.0.0.1:1/token"},  # another endpoint
        {"htm": "GET"},
        {"iat": 1_700_000_000},  # stale
    ],
)
async def test_an_invalid_dpop_proof_is_invalid_dpop_proof(claims: dict[str, object]) -> None:
    async with running_authserver() as auth:
        proof = _token_proof(auth.token_url, auth.now, **claims)
        reply = await auth.token(headers={"DPoP": proof}, grant_type="client_credentials")
    assert (reply.status, reply.body["error"]) == (400, "invalid_dpop_proof")


async def test_a_replayed_dpop_proof_is_refused() -> None:
    async with running_authserver() as auth:
        proof = _token_proof(auth.token_url, auth.now)
        first = await auth.token(headers={"DPoP": proof}, grant_type="client_credentials")
        again = await auth.token(headers={"DPoP": proof}, grant_type="client_credentials")
    assert first.status == 200
    assert (again.status, again.body["error"]) == (400, "invalid_dpop_proof")


async def test_tokens_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    async with running_authserver() as auth:
        token = await auth.access_token()
        await auth.introspect(token)
    assert token not in caplog.text
    assert "initech-sandbox-secret" not in caplog.text
    assert jwt.get_unverified_header(token)["kid"]
