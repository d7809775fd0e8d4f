"""AuthServices builds issuer clients from configuration: introspection client
authentication (client_secret_basic, private_key_jwt, tls_client_auth) against a real
HTTPS endpoint on loopback, with certificates made by trustme."""

from __future__ import annotations

import base64
import dataclasses
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import trustme
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from finward.adapters.auth_runtime import AuthServices
from finward.auth.token_policy import TokenError
from finward.clock import FakeClock
from finward.config.model import AuthConfig, IntrospectionConfig, IssuerConfig

NOW = 1_800_000_000.0
ISSUER = "https://as.bank.example"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("as-pki")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("finward-gateway.example")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(d / "client.pem"))
    client.private_key_pem.write_to_path(str(d / "client.key"))
    key = ec.generate_private_key(ec.SECP256R1())
    (d / "assertion.key").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    return {"dir": d, "ca": ca, "server": server, "key": key}


@pytest.fixture
async def endpoint(pki: dict[str, Any]) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An HTTPS introspection endpoint that asks for (but does not demand) a client cert."""
    seen: list[dict[str, Any]] = []

    async def introspect(request: web.Request) -> web.Response:
        form = dict(await request.post())
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        seen.append({"form": form, "headers": dict(request.headers), "peercert": peer})
        return web.json_response(
            {"active": True, "client_id": "tpp-1", "scope": "accounts", "exp": int(NOW) + 60}
        )

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    pki["server"].configure_cert(context)
    pki["ca"].configure_trust(context)
    context.verify_mode = ssl.CERT_OPTIONAL
    app = web.Application()
    app.router.add_post("/introspect", introspect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield f"https://127.0.0.1:{runner.addresses[0][1]}/introspect", seen
    await runner.cleanup()


def _auth(pki: dict[str, Any], endpoint: str, **introspection: Any) -> AuthConfig:
    d: Path = pki["dir"]
    return AuthConfig(
        issuers=(
            IssuerConfig(
                issuer=ISSUER,
                token_format="opaque",
                ca=d / "ca.pem",
                introspection=IntrospectionConfig(
                    endpoint=endpoint, client_id="finward-gateway", **introspection
                ),
            ),
        ),
        audiences=("https://api.bank.example",),
    )


async def _introspect(auth: AuthConfig) -> Any:
    services = AuthServices(auth, FakeClock(NOW))
    await services.start()
    try:
        return await services.verifier(auth).verify("opaque-token-1")
    finally:
        await services.close()


async def test_client_secret_basic(pki: dict[str, Any], endpoint: Any) -> None:
    """INTRO-01: RFC 6749 §2.3.1 Basic authentication, over TLS verified by `ca`."""
    url, seen = endpoint
    token = await _introspect(_auth(pki, url, client_secret="s3cret"))
    assert token.client_id == "tpp-1" and token.scopes == frozenset({"accounts"})
    expected = base64.b64encode(b"finward-gateway:s3cret").decode()
    assert seen[0]["headers"]["Authorization"] == f"Basic {expected}"
    assert seen[0]["form"]["token"] == "opaque-token-1"


async def test_private_key_jwt(pki: dict[str, Any], endpoint: Any) -> None:
    """INTRO-01: RFC 7523 client assertion signed with the configured key."""
    url, seen = endpoint
    auth = _auth(
        pki,
        url,
        auth_method="private_key_jwt",
        private_key=pki["dir"] / "assertion.key",
        private_key_alg="ES256",
        key_id="gw-1",
    )
    await _introspect(auth)
    form = seen[0]["form"]
    assert form["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    claims = jwt.decode(
        form["client_assertion"],
        pki["key"].public_key(),
        algorithms=["ES256"],
        audience=url,
        options={"verify_iat": False, "verify_exp": False},  # signed at the fake clock
    )
    assert claims["iss"] == claims["sub"] == "finward-gateway"
    assert claims["iat"] == int(NOW) and claims["exp"] > claims["iat"]
    assert jwt.get_unverified_header(form["client_assertion"])["kid"] == "gw-1"
    assert "Authorization" not in seen[0]["headers"]


async def test_tls_client_auth(pki: dict[str, Any], endpoint: Any) -> None:
    """INTRO-01, RFC 8705 §2: the gateway presents its client certificate."""
    url, seen = endpoint
    d: Path = pki["dir"]
    auth = _auth(
        pki,
        url,
        auth_method="tls_client_auth",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
    )
    await _introspect(auth)
    assert seen[0]["form"]["client_id"] == "finward-gateway"
    assert seen[0]["peercert"] is not None  # the handshake carried our certificate
    assert "Authorization" not in seen[0]["headers"]


async def test_untrusted_as_certificate_fails_closed(pki: dict[str, Any], endpoint: Any) -> None:
    """Without the AS's CA, TLS verification fails: 503, never an unverified answer."""
    url, _ = endpoint
    auth = _auth(pki, url, client_secret="s3cret")
    issuer = auth.issuers[0]
    auth = dataclasses.replace(auth, issuers=(dataclasses.replace(issuer, ca=None),))
    with pytest.raises(Exception) as caught:
        await _introspect(auth)
    assert getattr(caught.value, "reason", None) == "introspection_unavailable"
    assert not isinstance(caught.value, TokenError)
