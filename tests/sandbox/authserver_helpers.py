"""Running the sandbox AS on a loopback socket for a test, and talking to it."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from finward.auth.jwk import KeySet, parse_jwks
from finward.auth.tokens import IssuerPolicy, VerifiedToken, verify_access_token
from finward.clock import FakeClock
from finward.sandbox.authserver.clients import DEFAULT_GATEWAY_SECRET, SANDBOX_CLIENT_SECRETS
from finward.sandbox.authserver.keys import SigningKeys
from finward.sandbox.authserver.server import authserver_of, start_authserver
from finward.sandbox.authserver.state import AuthServer
from tests.auth.certs import qwac

INITECH = ("tpp-initech", SANDBOX_CLIENT_SECRETS["tpp-initech"])
ACME = ("tpp-acme-ais", SANDBOX_CLIENT_SECRETS["tpp-acme-ais"])
GATEWAY = ("finward-gateway", DEFAULT_GATEWAY_SECRET)
INITECH_REDIRECT = "http://127.0.0.1/cb"
FAST_ALGORITHMS = ("ES256", "EdDSA")  # RSA key generation costs ~0.2 s; most tests skip it


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode both parts, then RFC 7617 Basic."""
    pair = f"{quote(client_id, safe='')}:{quote(secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def cert_header(der: bytes) -> str:
    """The ``X-Client-Cert`` value: URL-encoded PEM, as nginx's $ssl_client_escaped_cert."""
    pem = x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM).decode()
    return quote(pem, safe="")


@cache
def acme_qwac() -> bytes:
    return qwac("PSP_AI", organization_id="PSDDE-BAFIN-123456")


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any


@dataclass
class RunningAS:
    url: str
    server: AuthServer
    clock: FakeClock
    session: aiohttp.ClientSession

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    def policy(self, audience: str = "finward") -> IssuerPolicy:
        return IssuerPolicy(issuer=self.url, audiences=frozenset({audience}))

    async def post(
        self,
        path: str,
        form: Mapping[str, str] | str,
        *,
        client: tuple[str, str] | None = INITECH,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        if client is not None:
            sent["Authorization"] = basic(*client)
        data = form if isinstance(form, str) else dict(form)
        async with self.session.post(self.url + path, data=data, headers=sent) as response:
            is_json = response.content_type == "application/json"
            body = await response.json() if is_json else await response.text()
            return Reply(response.status, dict(response.headers), body)

    async def token(
        self,
        *,
        client: tuple[str, str] | None = INITECH,
        headers: Mapping[str, str] | None = None,
        **form: str,
    ) -> Reply:
        return await self.post("/token", form, client=client, headers=headers)

    async def access_token(
        self,
        *,
        client: tuple[str, str] | None = INITECH,
        headers: Mapping[str, str] | None = None,
        **form: str,
    ) -> str:
        reply = await self.token(
            client=client, headers=headers, grant_type="client_credentials", **form
        )
        assert reply.status == 200, reply.body
        token: str = reply.body["access_token"]
        return token

    async def introspect(self, token: str, client: tuple[str, str] = GATEWAY) -> Reply:
        return await self.post("/introspect", {"token": token}, client=client)

    async def get_json(self, path: str) -> Any:
        async with self.session.get(self.url + path) as response:
            assert response.status == 200
            return await response.json(content_type=None)

    async def keyset(self) -> KeySet:
        return parse_jwks(await self.get_json("/jwks"))

    async def verify(self, token: str, audience: str = "finward") -> VerifiedToken:
        return verify_access_token(token, await self.keyset(), self.policy(audience), self.now)

    @property
    def now(self) -> float:
        return self.clock.now()

    async def authorize(self, **params: str) -> tuple[int, dict[str, str], Any]:
        """GET /authorize; returns the status, the redirect's query (if any), the body."""
        async with self.session.get(
            self.url + "/authorize", params=params, allow_redirects=False
        ) as response:
            location = response.headers.get("Location")
            if location is None:
                return response.status, {}, await response.json()
            query = parse_qs(urlsplit(location).query, strict_parsing=True)
            return response.status, {k: v[0] for k, v in query.items()}, location

    async def code(self, challenge: str, **params: str) -> str:
        values = {
            "response_type": "code",
            "client_id": INITECH[0],
            "redirect_uri": INITECH_REDIRECT,
            "scope": "accounts",
            "state": "st-123",
            "psu": "psu-alice",
            "consent_id": "consent-42",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        values.update(params)
        status, query, _ = await self.authorize(**values)
        assert status == 302 and "code" in query, query
        return query["code"]


@asynccontextmanager
async def running_authserver(
    *,
    clock: FakeClock | None = None,
    keys: SigningKeys | None = None,
    algorithms: tuple[str, ...] = FAST_ALGORITHMS,
    **config: Any,
) -> AsyncIterator[RunningAS]:
    """A real AS on a free loopback port, on a fake clock, with a client session."""
    clock = clock if clock is not None else FakeClock()
    keys = keys if keys is not None else SigningKeys(clock, algorithms=algorithms)
    runner, _ = await start_authserver("127.0.0.1", 0, keys=keys, clock=clock, **config)
    try:
        async with aiohttp.ClientSession() as session:
            server = authserver_of(runner)
            yield RunningAS(server.config.issuer, server, clock, session)
    finally:
        await runner.cleanup()
