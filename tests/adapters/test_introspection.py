"""IntrospectionClient against the real sandbox AS (and tiny stub servers), on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from finward.adapters.introspection import (
    ClientSecretBasic,
    IntrospectionClient,
    IntrospectionUnavailableError,
    PrivateKeyJwt,
)
from finward.auth.tokens import IssuerPolicy, TokenError, token_sha256
from finward.clock import FakeClock
from finward.sandbox.authserver.clients import DEFAULT_GATEWAY_SECRET
from tests.adapters.stub_servers import closed_port, counting_session, serve
from tests.sandbox.authserver_helpers import GATEWAY, INITECH, RunningAS, running_authserver

POLICY = IssuerPolicy(issuer="https://as.example", audiences=frozenset({"finward"}))


def client(
    session: aiohttp.ClientSession,
    auth: RunningAS,
    *,
    credentials: tuple[str, str] = GATEWAY,
    **kwargs: Any,
) -> IntrospectionClient:
    return IntrospectionClient(
        session,
        endpoint=auth.url + "/introspect",
        auth=ClientSecretBasic(*credentials),
        clock=auth.clock,
        policy=auth.policy(),
        allow_insecure_loopback=True,
        **kwargs,
    )


@asynccontextmanager
async def stub_as(reply: web.Response | None = None) -> AsyncIterator[tuple[str, list[Any]]]:
    """An introspection endpoint answering ``reply``; records each request's form and headers."""
    seen: list[Any] = []

    async def introspect(request: web.Request) -> web.Response:
        seen.append((dict(await request.post()), dict(request.headers)))
        if reply is None:
            return web.json_response({"active": True, "iss": POLICY.issuer, "aud": "finward"})
        return reply

    async with serve({"/introspect": introspect}, method="POST") as url:
        yield url + "/introspect", seen


def stub_client(
    session: aiohttp.ClientSession, endpoint: str, clock: FakeClock | None = None
) -> IntrospectionClient:
    return IntrospectionClient(
        session,
        endpoint=endpoint,
        auth=ClientSecretBasic("finward-gateway", "s3cret"),
        clock=clock or FakeClock(),
        policy=POLICY,
        allow_insecure_loopback=True,
    )


# --- against the sandbox AS ----------------------------------------------------------------


async def test_an_active_token_is_described_and_cached_by_its_hash() -> None:
    async with running_authserver() as auth, counting_session() as (session, paths):
        introspection = client(session, auth)
        token = await auth.access_token(scope="accounts")
        claims = await introspection.introspect(token)
        assert claims["active"] is True and claims["client_id"] == "tpp-initech"
        assert claims["scope"] == "accounts" and claims["iss"] == auth.url
        assert await introspection.introspect(token) is claims
        assert paths == ["/introspect"]  # the second answer came from the cache
        cache = introspection._cache
        assert list(cache) == [token_sha256(token)]
        assert token not in repr(cache) and token not in repr(introspection.__dict__)
        # Cached for min(exp, max_ttl_s): here the 60 s default beats the 300 s lifetime.
        exp = claims["exp"]
        assert isinstance(exp, int) and exp == auth.now + 300
        assert cache[token_sha256(token)].expires_at == auth.now + 60


async def test_an_unknown_token_is_inactive() -> None:
    async with running_authserver() as auth, counting_session() as (session, paths):
        introspection = client(session, auth)
        for _ in range(2):
            with pytest.raises(TokenError) as refused:
                await introspection.introspect("not-a-token-the-as-issued")
            assert refused.value.reason == "token_inactive" and refused.value.status == 401
        assert paths == ["/introspect"]  # negative answers are cached too


async def test_a_revoked_token_is_inactive_once_the_cache_ttl_ends() -> None:
    async with running_authserver() as auth, plain_session() as session:
        introspection = client(session, auth, max_ttl_s=30)
        token = await auth.access_token(scope="accounts")
        await introspection.introspect(token)
        reply = await auth.post("/revoke", {"token": token}, client=INITECH)
        assert reply.status == 200
        await introspection.introspect(token)  # INTRO-04: revocation latency <= max_ttl_s
        auth.clock.advance(30)
        with pytest.raises(TokenError) as refused:
            await introspection.introspect(token)
        assert refused.value.reason == "token_inactive"


async def test_the_cache_never_outlives_the_token_exp() -> None:
    async with running_authserver(token_lifetime_s=20) as auth, plain_session() as session:
        introspection = client(session, auth, max_ttl_s=600)
        token = await auth.access_token(scope="accounts")
        claims = await introspection.introspect(token)
        assert introspection._cache[token_sha256(token)].expires_at == claims["exp"]
        auth.clock.advance(20)
        with pytest.raises(TokenError) as refused:
            await introspection.introspect(token)
        assert refused.value.reason == "token_inactive"  # asked again: the AS says expired


async def test_the_audience_is_checked() -> None:
    async with running_authserver() as auth, plain_session() as session:
        introspection = IntrospectionClient(
            session,
            endpoint=auth.url + "/introspect",
            auth=ClientSecretBasic(*GATEWAY),
            clock=auth.clock,
            policy=auth.policy("another-api"),
            allow_insecure_loopback=True,
        )
        with pytest.raises(TokenError) as refused:
            await introspection.introspect(await auth.access_token(scope="accounts"))
        assert refused.value.reason == "token_audience_invalid"


async def test_a_wrong_client_secret_is_unavailable_with_a_clear_detail() -> None:
    async with running_authserver() as auth, plain_session() as session:
        introspection = client(session, auth, credentials=("finward-gateway", "wrong"))
        with pytest.raises(IntrospectionUnavailableError) as error:
            await introspection.introspect(await auth.access_token(scope="accounts"))
        assert error.value.reason == "introspection_unavailable" and error.value.status == 503
        assert "client authentication" in error.value.detail
        assert "wrong" not in str(error.value) and DEFAULT_GATEWAY_SECRET not in str(error.value)


async def test_a_client_without_the_introspection_right_is_unavailable() -> None:
    async with running_authserver() as auth, plain_session() as session:
        introspection = client(session, auth, credentials=INITECH)
        with pytest.raises(IntrospectionUnavailableError, match="not allowed to introspect"):
            await introspection.introspect(await auth.access_token(scope="accounts"))


async def test_an_unreachable_as_fails_closed() -> None:
    async with plain_session() as session:
        introspection = stub_client(session, f"http://127.0.0.1:{closed_port()}/introspect")
        with pytest.raises(IntrospectionUnavailableError) as error:
            await introspection.introspect("some-token")
        assert error.value.to_decision().status == 503
        assert error.value.to_decision().reason == "introspection_unavailable"
        assert introspection._cache == {}  # failures are never cached


# --- against stub servers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (web.Response(status=500), "HTTP 500"),
        (web.Response(status=503), "HTTP 503"),
        (web.Response(text="<html>oops</html>"), "not JSON"),
        (web.json_response([True]), "not a JSON object"),
        (web.json_response({"active": "true"}), "not a boolean"),
        (web.json_response({"active": 1}), "not a boolean"),
        (web.Response(body=b"{" + b" " * (64 * 1024)), "too large"),
    ],
)
async def test_broken_answers_fail_closed(reply: web.Response, message: str) -> None:
    async with stub_as(reply) as (endpoint, _), plain_session() as session:
        with pytest.raises(IntrospectionUnavailableError, match=message):
            await stub_client(session, endpoint).introspect("some-token")


async def test_a_missing_active_member_is_inactive() -> None:
    reply = web.json_response({"scope": "accounts"})
    async with stub_as(reply) as (endpoint, _), plain_session() as session:
        with pytest.raises(TokenError, match="token_inactive"):
            await stub_client(session, endpoint).introspect("some-token")


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": 1_700_000_000}, "token_expired"),
        ({"iss": "https://evil.example"}, "token_issuer_invalid"),
        ({"nbf": 1_900_000_000}, "token_not_yet_valid"),
        ({"exp": "tomorrow"}, "token_malformed"),
    ],
)
async def test_active_responses_are_still_checked(claims: dict[str, Any], reason: str) -> None:
    body = {"active": True, "iss": POLICY.issuer, "aud": ["finward"], **claims}
    async with stub_as(web.json_response(body)) as (endpoint, _), plain_session() as session:
        with pytest.raises(TokenError) as refused:
            await stub_client(session, endpoint).introspect("some-token")
        assert refused.value.reason == reason


async def test_the_request_is_rfc7662_with_basic_auth() -> None:
    async with stub_as() as (endpoint, seen), plain_session() as session:
        await stub_client(session, endpoint).introspect("tok-1")
    form, headers = seen[0]
    assert form == {"token": "tok-1", "token_type_hint": "access_token"}
    assert headers["Authorization"] == "Basic Zmlud2FyZC1nYXRld2F5OnMzY3JldA=="


async def test_private_key_jwt_signs_an_assertion_for_the_endpoint() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    async with stub_as() as (endpoint, seen), plain_session() as session:
        clock = FakeClock()
        introspection = IntrospectionClient(
            session,
            endpoint=endpoint,
            auth=PrivateKeyJwt("finward-gateway", key, alg="ES256", kid="gw-1"),
            clock=clock,
            policy=POLICY,
            allow_insecure_loopback=True,
        )
        await introspection.introspect("tok-2")
    form, headers = seen[0]
    assert "Authorization" not in headers and form["token"] == "tok-2"
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assertion = form["client_assertion"]
    assert jwt.get_unverified_header(assertion)["kid"] == "gw-1"
    claims = jwt.decode(
        assertion,
        key.public_key(),
        algorithms=["ES256"],
        audience=endpoint,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == "finward-gateway"
    assert claims["exp"] - claims["iat"] == 60 and claims["iat"] == int(clock.now())


async def test_the_cache_is_bounded() -> None:
    async with stub_as() as (endpoint, _), plain_session() as session:
        introspection = IntrospectionClient(
            session,
            endpoint=endpoint,
            auth=ClientSecretBasic("finward-gateway", "s3cret"),
            clock=FakeClock(),
            max_entries=3,
            allow_insecure_loopback=True,
        )
        for n in range(5):
            await introspection.introspect(f"tok-{n}")
        assert list(introspection._cache) == [token_sha256(f"tok-{n}") for n in (2, 3, 4)]


async def test_an_oversized_token_is_refused_before_any_request() -> None:
    async with stub_as() as (endpoint, seen), plain_session() as session:
        with pytest.raises(TokenError) as refused:
            await stub_client(session, endpoint).introspect("t" * 8193)
    assert refused.value.reason == "token_too_large" and seen == []


def test_configuration_is_checked() -> None:
    basic = ClientSecretBasic("id", "secret")
    assert "secret" not in repr(basic)
    with pytest.raises(ValueError, match="https"):
        IntrospectionClient(
            None,  # type: ignore[arg-type]
            endpoint="http://as.example/introspect",
            auth=basic,
            clock=FakeClock(),
        )
    with pytest.raises(ValueError, match="alg"):
        PrivateKeyJwt("id", ec.generate_private_key(ec.SECP256R1()), alg="HS256")


@asynccontextmanager
async def plain_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
