"""The simulated PSU flow: /authorize auto-approves, /token redeems the code with PKCE."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.auth.dpop_client import signer
from tests.sandbox.authserver_helpers import (
    ACME,
    INITECH,
    INITECH_REDIRECT,
    RunningAS,
    pkce_pair,
    running_authserver,
)


async def _redeem(
    auth: RunningAS, code: str, verifier: str, *, client: tuple[str, str] = INITECH, **form: str
) -> Any:
    values = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": INITECH_REDIRECT,
        "code_verifier": verifier,
        **form,
    }
    return await auth.token(client=client, **values)


async def test_the_psu_flow_issues_a_token_for_the_psu_and_the_consent() -> None:
    verifier, challenge = pkce_pair()
    async with running_authserver() as auth:
        status, query, location = await auth.authorize(
            response_type="code",
            client_id="tpp-initech",
            redirect_uri=INITECH_REDIRECT,
            scope="accounts payments",
            state="xyz-state",
            psu="psu-alice",
            consent_id="consent-42",
            code_challenge=challenge,
            code_challenge_method="S256",
        )
        assert status == 302 and location.startswith(INITECH_REDIRECT + "?")
        assert query["state"] == "xyz-state" and query["iss"] == auth.url  # RFC 9207
        reply = await _redeem(auth, query["code"], verifier)
        assert reply.status == 200, reply.body
        verified = await auth.verify(reply.body["access_token"])
    assert verified.sub == "psu-alice" and verified.client_id == "tpp-initech"
    assert verified.claims["consent_id"] == "consent-42"
    assert (
        verified.scopes == {"accounts", "payments"} and reply.body["scope"] == "accounts payments"
    )


async def test_the_consent_claim_name_is_configurable() -> None:
    verifier, challenge = pkce_pair()
    async with running_authserver(consent_claim="openbanking_intent_id") as auth:
        code = await auth.code(challenge, consent_id="urn-intent-7")
        reply = await _redeem(auth, code, verifier)
        verified = await auth.verify(reply.body["access_token"])
    assert verified.claims["openbanking_intent_id"] == "urn-intent-7"
    assert "consent_id" not in verified.claims


async def test_a_wrong_verifier_fails_and_burns_the_code() -> None:
    verifier, challenge = pkce_pair()
    async with running_authserver() as auth:
        code = await auth.code(challenge)
        wrong = await _redeem(auth, code, pkce_pair()[0])
        right = await _redeem(auth, code, verifier)
    assert (wrong.status, wrong.body["error"]) == (400, "invalid_grant")
    assert (right.status, right.body["error"]) == (400, "invalid_grant")


@pytest.mark.parametrize("verifier", ["short", "a" * 129, "ä" * 50])
async def test_malformed_verifiers_are_refused(verifier: str) -> None:
    _, challenge = pkce_pair()
    async with running_authserver() as auth:
        code = await auth.code(challenge)
        reply = await _redeem(auth, code, verifier)
    assert reply.body["error"] == "invalid_grant"


async def test_a_reused_code_fails_and_revokes_the_token_it_bought() -> None:
    verifier, challenge = pkce_pair()
    async with running_authserver() as auth:
        code = await auth.code(challenge)
        first = await _redeem(auth, code, verifier)
        token = first.body["access_token"]
        assert (await auth.introspect(token)).body["active"] is True
        again = await _redeem(auth, code, verifier)
        assert (again.status, again.body["error"]) == (400, "invalid_grant")
        assert (await auth.introspect(token)).body == {"active": False}


async def test_an_expired_code_is_refused() -> None:
    verifier, challenge = pkce_pair()
    async with running_authserver() as auth:
        code = await auth.code(challenge)
        auth.clock.advance(60)
        reply = await _redeem(auth, code, verifier)
    assert (reply.status, reply.body["error"]) == (400, "invalid_grant")


async def test_a_code_is_bound_to_its_client_and_redirect_uri() -> None:
    verifier, challenge = pkce_pair()
    async with running_authserver() as auth:
        code = await auth.code(challenge)
        other_client = await _redeem(auth, code, verifier, client=ACME)
        other_uri = await _redeem(auth, code, verifier, redirect_uri="https://evil.example/cb")
        missing = await auth.token(
            grant_type="authorization_code", code=code, code_verifier=verifier
        )
    assert other_client.body["error"] == "invalid_grant"
    assert other_uri.body["error"] == "invalid_grant"
    assert missing.body["error"] == "invalid_request"


async def test_an_unknown_code_is_refused() -> None:
    verifier, _ = pkce_pair()
    async with running_authserver() as auth:
        reply = await _redeem(auth, secrets.token_urlsafe(32), verifier)
    assert reply.body["error"] == "invalid_grant"


async def test_the_code_flow_can_end_in_a_dpop_bound_token() -> None:
    verifier, challenge = pkce_pair()
    async with running_authserver() as auth:
        code = await auth.code(challenge)
        proof = signer("ES256").proof(
            htm="POST", htu=auth.token_url, iat=int(auth.now), ath=None, jti="code-flow-1"
        )
        reply = await auth.token(
            headers={"DPoP": proof},
            grant_type="authorization_code",
            code=code,
            redirect_uri=INITECH_REDIRECT,
            code_verifier=verifier,
        )
        verified = await auth.verify(reply.body["access_token"])
    assert reply.body["token_type"] == "DPoP"
    assert verified.cnf == {"jkt": signer("ES256").jkt} and verified.sub == "psu-alice"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"scope": "accounts admin"}, "invalid_scope"),
        ({"psu": ""}, "access_denied"),
        ({"psu": "psu alice"}, "access_denied"),
        ({"consent_id": "c/../1"}, "invalid_request"),
    ],
)
async def test_authorization_errors_go_back_to_the_client_with_the_state(
    params: dict[str, str], error: str
) -> None:
    _, challenge = pkce_pair()
    values = {
        "response_type": "code",
        "client_id": "tpp-initech",
        "redirect_uri": INITECH_REDIRECT,
        "state": "st-9",
        "psu": "psu-alice",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **params,
    }
    async with running_authserver() as auth:
        status, query, _ = await auth.authorize(**values)
    assert status == 302
    assert query["error"] == error and query["state"] == "st-9" and "code" not in query


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": "tpp-nobody"},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": INITECH_REDIRECT + "/"},  # exact match only
    ],
)
async def test_an_untrusted_redirect_uri_is_never_followed(params: dict[str, str]) -> None:
    _, challenge = pkce_pair()
    values = {
        "response_type": "code",
        "client_id": "tpp-initech",
        "redirect_uri": INITECH_REDIRECT,
        "psu": "psu-alice",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **params,
    }
    async with running_authserver() as auth:
        status, query, body = await auth.authorize(**values)
    assert status == 400 and query == {} and body["error"] == "invalid_request"


async def test_known_psus_restrict_who_can_approve() -> None:
    _, challenge = pkce_pair()
    async with running_authserver(known_psus=frozenset({"psu-alice"})) as auth:
        await auth.code(challenge)
        status, query, _ = await auth.authorize(
            response_type="code",
            client_id="tpp-initech",
            redirect_uri=INITECH_REDIRECT,
            psu="psu-mallory",
            code_challenge=challenge,
            code_challenge_method="S256",
        )
    assert status == 302 and query["error"] == "access_denied"
