"""KeyProvider against the real sandbox AS (and tiny hostile servers), on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import secrets

import aiohttp
import jwt
import pytest
from aiohttp import web

from finward.adapters.jwks import (
    DEFAULT_MAX_AGE_S,
    MIN_REFETCH_INTERVAL_S,
    RETRY_AFTER_FAILURE_S,
    FetchFailure,
    JwksUnavailableError,
    KeyProvider,
    discovery_urls,
)
from finward.auth.jwk import MAX_JWKS_BYTES
from finward.auth.tokens import TokenError, verify_access_token
from finward.clock import FakeClock
from finward.sandbox.authserver.keys import SigningKeys
from finward.sandbox.authserver.server import authserver_of, start_authserver
from finward.sandbox.authserver.tokens import mint_access_token
from tests.adapters.stub_servers import closed_port, counting_session, serve
from tests.sandbox.authserver_helpers import FAST_ALGORITHMS, RunningAS, running_authserver


def mint(auth: RunningAS, alg: str = "ES256") -> str:
    return mint_access_token(
        auth.server.keys,
        client_id="tpp-initech",
        sub="psu-alice",
        scope="accounts",
        alg=alg,
        issuer=auth.url,
    )


def provider(session: aiohttp.ClientSession, auth: RunningAS, **kwargs: object) -> KeyProvider:
    return KeyProvider(
        session,
        clock=auth.clock,
        issuer=auth.url,
        allow_insecure_loopback=True,
        **kwargs,  # type: ignore[arg-type]
    )


# --- discovery, caching, verification ------------------------------------------------------


async def test_discovery_finds_the_keys_and_a_minted_token_verifies() -> None:
    async with running_authserver() as auth, counting_session() as (session, paths):
        keys_provider = provider(session, auth)
        keys = await keys_provider.get_keys()
        assert paths == ["/.well-known/openid-configuration", "/jwks"]
        assert keys_provider.jwks_uri == auth.url + "/jwks"
        token = await auth.access_token(scope="accounts")
        verified = verify_access_token(token, keys, auth.policy(), auth.now)
        assert verified.client_id == "tpp-initech"
        assert await keys_provider.get_keys() is keys  # cached: no new request
        assert len(paths) == 2


async def test_keys_are_refreshed_lazily_after_the_max_age() -> None:
    async with running_authserver() as auth, counting_session() as (session, paths):
        keys_provider = provider(session, auth)
        await keys_provider.get_keys()
        auth.clock.advance(DEFAULT_MAX_AGE_S - 1)
        await keys_provider.get_keys()
        assert len(paths) == 2
        auth.clock.advance(1)
        await keys_provider.get_keys()
        assert paths[2:] == ["/jwks"]  # the discovered jwks_uri is reused


async def test_rotation_unknown_kid_refetches_once_then_verifies() -> None:
    async with running_authserver() as auth, counting_session() as (session, paths):
        keys_provider = provider(session, auth)
        keys = await keys_provider.get_keys()
        auth.server.keys.rotate("ES256")
        token = mint(auth)
        kid = jwt.get_unverified_header(token)["kid"]
        with pytest.raises(TokenError) as refused:
            verify_access_token(token, keys, auth.policy(), auth.now)
        assert refused.value.reason == "token_key_unknown"
        auth.clock.advance(MIN_REFETCH_INTERVAL_S)
        fresh = await keys_provider.keys_for_unknown_kid(kid)
        assert fresh.has_kid(kid) and paths.count("/jwks") == 2
        verify_access_token(token, fresh, auth.policy(), auth.now)
        # Known now: asking again costs nothing.
        assert await keys_provider.keys_for_unknown_kid(kid) is fresh
        assert paths.count("/jwks") == 2


async def test_concurrent_unknown_kid_callers_share_one_fetch() -> None:
    async with running_authserver() as auth, counting_session() as (session, paths):
        keys_provider = KeyProvider(
            session, clock=auth.clock, jwks_uri=auth.url + "/jwks", allow_insecure_loopback=True
        )
        await keys_provider.get_keys()
        auth.server.keys.rotate("ES256")
        kid = jwt.get_unverified_header(mint(auth))["kid"]
        auth.clock.advance(MIN_REFETCH_INTERVAL_S)
        results = await asyncio.gather(
            *(keys_provider.keys_for_unknown_kid(kid) for _ in range(50))
        )
        assert paths == ["/jwks", "/jwks"]
        assert all(r is results[0] and r.has_kid(kid) for r in results)


async def test_concurrent_cold_start_callers_share_one_fetch() -> None:
    async with running_authserver() as auth, counting_session() as (session, paths):
        keys_provider = provider(session, auth)
        results = await asyncio.gather(*(keys_provider.get_keys() for _ in range(50)))
        assert paths == ["/.well-known/openid-configuration", "/jwks"]
        assert all(r is results[0] for r in results)


async def test_a_storm_of_random_kids_is_rate_limited() -> None:
    async with running_authserver() as auth, counting_session() as (session, paths):
        keys_provider = provider(session, auth)
        keys = await keys_provider.get_keys()
        fetches = len(paths)
        for _ in range(100):  # sequential: each inside the interval
            assert await keys_provider.keys_for_unknown_kid(secrets.token_hex(8)) is keys
        storm = (keys_provider.keys_for_unknown_kid(secrets.token_hex(8)) for _ in range(100))
        await asyncio.gather(*storm)
        assert len(paths) == fetches
        auth.clock.advance(MIN_REFETCH_INTERVAL_S)
        storm = (keys_provider.keys_for_unknown_kid(secrets.token_hex(8)) for _ in range(100))
        await asyncio.gather(*storm)
        assert len(paths) == fetches + 1  # one refetch per interval, whatever the rate


async def test_a_cancelled_fetcher_does_not_strand_the_waiters() -> None:
    async with running_authserver() as auth:
        calls: list[int] = []
        first_seen, release = asyncio.Event(), asyncio.Event()

        async def jwks(_request: web.Request) -> web.Response:
            calls.append(1)
            if len(calls) == 1:
                first_seen.set()
                await release.wait()  # hangs until the test is done
            return web.json_response(auth.server.keys.jwks())

        async with serve({"/jwks": jwks}) as url, aiohttp.ClientSession() as session:
            keys_provider = KeyProvider(
                session, clock=auth.clock, jwks_uri=url + "/jwks", allow_insecure_loopback=True
            )
            first = asyncio.create_task(keys_provider.get_keys())
            await first_seen.wait()
            second = asyncio.create_task(keys_provider.get_keys())
            await asyncio.sleep(0)
            first.cancel()
            keys = await second
            release.set()
            assert len(keys) == len(auth.server.keys.published()) and len(calls) == 2
            with pytest.raises(asyncio.CancelledError):
                await first


# --- failures ------------------------------------------------------------------------------


async def test_as_down_with_cached_keys_keeps_verifying_and_reports() -> None:
    clock = FakeClock()
    keys = SigningKeys(clock, algorithms=FAST_ALGORITHMS)
    runner, _ = await start_authserver("127.0.0.1", 0, keys=keys, clock=clock)
    failures: list[FetchFailure] = []
    try:
        async with counting_session() as (session, paths):
            server = authserver_of(runner)
            auth = RunningAS(server.config.issuer, server, clock, session)
            keys_provider = provider(session, auth, on_failure=failures.append)
            cached = await keys_provider.get_keys()
            await runner.cleanup()  # the AS goes down
            clock.advance(DEFAULT_MAX_AGE_S + 1)
            token = mint(auth)
            assert await keys_provider.get_keys() is cached
            verify_access_token(token, await keys_provider.get_keys(), auth.policy(), clock.now())
            assert len(failures) == 1 and failures[0].serving_cached
            assert failures[0].source == auth.url
            assert len(paths) == 3  # the second call is backing off, no new request
            clock.advance(RETRY_AFTER_FAILURE_S)
            assert await keys_provider.get_keys() is cached
            assert len(paths) == 4 and len(failures) == 2
    finally:
        await runner.cleanup()


async def test_as_down_without_keys_is_jwks_unavailable() -> None:
    failures: list[FetchFailure] = []
    clock = FakeClock()
    async with counting_session() as (session, paths):
        keys_provider = KeyProvider(
            session,
            clock=clock,
            jwks_uri=f"http://127.0.0.1:{closed_port()}/jwks",
            allow_insecure_loopback=True,
            on_failure=failures.append,
        )
        with pytest.raises(JwksUnavailableError) as error:
            await keys_provider.get_keys()
        assert error.value.reason == "jwks_unavailable" and error.value.status == 503
        assert error.value.to_decision().status == 503
        assert failures and not failures[0].serving_cached
        with pytest.raises(JwksUnavailableError):  # fails fast while backing off
            await keys_provider.keys_for_unknown_kid("k1")
        assert len(paths) == 1


async def _huge(request: web.Request) -> web.StreamResponse:
    filler = "x" * (MAX_JWKS_BYTES + 1)
    body = json.dumps({"keys": [], "filler": filler}).encode()
    if request.path == "/sized":
        return web.Response(body=body, content_type="application/json")
    response = web.StreamResponse()  # chunked: no Content-Length to refuse up front
    await response.prepare(request)
    for start in range(0, len(body), 8192):
        await response.write(body[start : start + 8192])
    await response.write_eof()
    return response


@pytest.mark.parametrize("path", ["/sized", "/chunked"])
async def test_an_oversized_jwks_is_refused(path: str) -> None:
    async with serve({"/sized": _huge, "/chunked": _huge}) as url, aiohttp.ClientSession() as s:
        keys_provider = KeyProvider(
            s, clock=FakeClock(), jwks_uri=url + path, allow_insecure_loopback=True
        )
        with pytest.raises(JwksUnavailableError, match="exceeds"):
            await keys_provider.get_keys()


async def test_redirects_are_not_followed() -> None:
    async with running_authserver() as auth:

        async def redirect(_request: web.Request) -> web.Response:
            raise web.HTTPFound(auth.url + "/jwks")

        async with serve({"/jwks": redirect}) as url, aiohttp.ClientSession() as session:
            keys_provider = KeyProvider(
                session, clock=auth.clock, jwks_uri=url + "/jwks", allow_insecure_loopback=True
            )
            with pytest.raises(JwksUnavailableError, match="HTTP status 302"):
                await keys_provider.get_keys()


async def test_discovery_refuses_metadata_naming_another_issuer() -> None:
    clock = FakeClock()
    keys = SigningKeys(clock, algorithms=FAST_ALGORITHMS)
    runner, port = await start_authserver(
        "127.0.0.1", 0, keys=keys, clock=clock, issuer="http://127.0.0.1:1"
    )
    try:
        async with counting_session() as (session, paths):
            keys_provider = KeyProvider(
                session,
                clock=clock,
                issuer=f"http://127.0.0.1:{port}",
                allow_insecure_loopback=True,
            )
            with pytest.raises(JwksUnavailableError, match="another issuer"):
                await keys_provider.get_keys()
            assert "/jwks" not in paths and keys_provider.jwks_uri is None
    finally:
        await runner.cleanup()


async def test_discovery_falls_back_to_rfc8414_and_wants_https_jwks_uri() -> None:
    base: list[str] = []

    async def metadata(_request: web.Request) -> web.Response:
        return web.json_response({"issuer": base[0], "jwks_uri": "http://example.com/jwks"})

    async with serve({"/.well-known/oauth-authorization-server": metadata}) as url:
        base.append(url)
        async with counting_session() as (session, paths):
            keys_provider = KeyProvider(
                session, clock=FakeClock(), issuer=url, allow_insecure_loopback=True
            )
            with pytest.raises(JwksUnavailableError, match="jwks_uri must be an https URL"):
                await keys_provider.get_keys()
            assert paths == [
                "/.well-known/openid-configuration",
                "/.well-known/oauth-authorization-server",
            ]


def test_discovery_urls_follow_oidc_and_rfc8414() -> None:
    assert discovery_urls("https://as.example/tenant") == (
        "https://as.example/tenant/.well-known/openid-configuration",
        "https://as.example/.well-known/oauth-authorization-server/tenant",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"jwks_uri": "http://as.example/jwks"}, "https"),
        ({"jwks_uri": "http://127.0.0.1/jwks"}, "https"),  # loopback http needs the flag
        ({"jwks_uri": "http://as.example/jwks", "allow_insecure_loopback": True}, "https"),
        ({"issuer": "ftp://as.example"}, "https"),
        ({}, "exactly one"),
        ({"jwks_uri": "https://a/jwks", "issuer": "https://a"}, "exactly one"),
        ({"jwks_uri": "https://a/jwks", "max_age_s": 0}, "max_age_s"),
    ],
)
async def test_configuration_is_checked(kwargs: dict[str, object], message: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match=message):
            KeyProvider(session, clock=FakeClock(), **kwargs)  # type: ignore[arg-type]
