"""The authorization endpoint (simulated PSU, auto-approved) and the token endpoint.

``GET /authorize`` stands in for the bank's login and consent pages: the PSU named by the
``psu`` parameter "approves" at once and the client gets a one-time code (PKCE S256
mandatory, RFC 7636 / FAPI 2.0 §5.3.1.2). ``POST /token`` serves ``client_credentials``
and ``authorization_code``, binding the token to the client certificate (RFC 8705 §3)
and/or the DPoP key (RFC 9449 §5).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from finward.auth.dpop import DPoPError, verify_dpop_proof
from finward.auth.jwk import b64url_encode
from finward.auth.mtls import X5T_S256, certificate_thumbprint
from finward.http import Headers
from finward.sandbox.authserver.keys import SIGNING_ALGORITHMS
from finward.sandbox.authserver.protocol import (
    AUTHSERVER_KEY,
    NO_STORE,
    OAuthError,
    authenticate_client,
    client_certificate,
    parse_scope,
    read_form,
    single_query,
)
from finward.sandbox.authserver.state import AuthorizationCode, AuthServer
from finward.sandbox.authserver.tokens import access_token_claims, sign_access_token

TOKEN_PATH = "/token"  # noqa: S105 - a path
AUTHORIZE_PATH = "/authorize"
# RFC 7636 §4.1: code_verifier is 43-128 unreserved characters; §4.2: an S256 challenge
# is the 43-character base64url of a SHA-256 digest.
_CODE_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_CODE_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
# Same shape the sandbox bank accepts in X-Finward-PSU-ID (finward.sandbox.tpp).
PSU_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CONSENT_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# RFC 6749 §10.10: codes must be unguessable; 256 random bits.
CODE_BYTES = 32
MAX_STATE_CHARS = 512
TOKEN_FORMATS = ("jwt", "opaque")


async def handle_authorize(request: web.Request) -> web.Response:
    """Auto-approve for the named PSU and redirect with ``code``, ``state`` and ``iss``."""
    server = request.app[AUTHSERVER_KEY]
    query = single_query(request)
    client = server.clients.get(query.get("client_id", ""))
    redirect_uri = query.get("redirect_uri", "")
    # RFC 6749 §4.1.2.1: without a trustworthy redirect URI, answer here, never redirect.
    if client is None:
        raise OAuthError("invalid_request", "client_id is missing or unknown")
    if redirect_uri not in client.redirect_uris:  # exact match, FAPI 2.0 §5.3.1.2
        raise OAuthError("invalid_request", "redirect_uri is not registered for this client")
    state = query.get("state")
    if state is not None and len(state) > MAX_STATE_CHARS:
        raise OAuthError("invalid_request", "state is too long")
    try:
        grant = _grant_from_query(server, query, client.client_id, redirect_uri)
        scope = parse_scope(query.get("scope"), client)
        if "authorization_code" not in client.grant_types:
            raise OAuthError("unauthorized_client", "the client may not use this grant")
    except OAuthError as error:
        params = {"error": error.error, "error_description": error.description}
        raise _redirect(server, redirect_uri, params, state) from None
    grant.scope = scope
    code = secrets.token_urlsafe(CODE_BYTES)
    server.store_code(code, grant)
    raise _redirect(server, redirect_uri, {"code": code}, state)


def _grant_from_query(
    server: AuthServer, query: dict[str, str], client_id: str, redirect_uri: str
) -> AuthorizationCode:
    if query.get("response_type") != "code":
        raise OAuthError("unsupported_response_type", "response_type must be code")
    challenge = query.get("code_challenge", "")
    if query.get("code_challenge_method") != "S256" or not _CODE_CHALLENGE.fullmatch(challenge):
        raise OAuthError("invalid_request", "PKCE with code_challenge_method S256 is required")
    psu = query.get("psu", "")
    known = server.config.known_psus
    if not PSU_ID.fullmatch(psu) or (known is not None and psu not in known):
        # The simulated PSU did not log in: the user-agent flow ends in a refusal.
        raise OAuthError("access_denied", "the PSU is missing or unknown")
    consent_id = query.get("consent_id") or None
    if consent_id is not None and not _CONSENT_ID.fullmatch(consent_id):
        raise OAuthError("invalid_request", "consent_id is malformed")
    return AuthorizationCode(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scope="",
        psu_id=psu,
        consent_id=consent_id,
        code_challenge=challenge,
        expires_at=server.clock.now() + server.config.code_lifetime_s,
    )


def _redirect(
    server: AuthServer, redirect_uri: str, params: dict[str, str], state: str | None
) -> web.HTTPFound:
    if state is not None:
        params["state"] = state
    params["iss"] = server.config.issuer  # RFC 9207: mix-up attack defence
    separator = "&" if "?" in redirect_uri else "?"
    headers = {**NO_STORE, "Referrer-Policy": "no-referrer"}
    return web.HTTPFound(redirect_uri + separator + urlencode(params), headers=headers)


async def handle_token(request: web.Request) -> web.Response:
    """RFC 6749 §5.1 token response; errors per §5.2 (and RFC 9449 §5 for DPoP)."""
    server = request.app[AUTHSERVER_KEY]
    form = await read_form(request)
    cert_der = client_certificate(request)
    client = authenticate_client(server.clients, request, form, cert_der)
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is missing")
    if grant_type not in ("client_credentials", "authorization_code"):
        raise OAuthError("unsupported_grant_type", "the grant type is not supported")
    if grant_type not in client.grant_types:
        raise OAuthError("unauthorized_client", "the client may not use this grant")
    alg, opaque = _sandbox_options(server, form)
    cnf: dict[str, str] = {}
    if cert_der is not None:
        cnf[X5T_S256] = certificate_thumbprint(cert_der)
    if "DPoP" in request.headers:
        cnf["jkt"] = _dpop_jkt(server, request)
    # Only after the proof verified may a code be consumed.
    grant: AuthorizationCode | None = None
    if grant_type == "authorization_code":
        grant = _redeem_code(server, form, client.client_id)
        sub, scope = grant.psu_id, grant.scope
        extra = {server.config.consent_claim: grant.consent_id} if grant.consent_id else None
    else:
        sub, scope, extra = client.client_id, parse_scope(form.get("scope"), client), None
    lifetime = server.config.token_lifetime_s
    claims = access_token_claims(
        issuer=server.config.issuer,
        audience=server.config.audience,
        client_id=client.client_id,
        sub=sub,
        scope=scope,
        now=server.clock.now(),
        exp_in=lifetime,
        cnf=cnf or None,
        extra_claims=extra,
    )
    token = server.store_opaque(claims) if opaque else sign_access_token(server.keys, claims, alg)
    if grant is not None:
        grant.issued.append((claims["jti"], claims["exp"]))
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "DPoP" if "jkt" in cnf else "Bearer",
        "expires_in": lifetime,
        "scope": scope,
    }
    return web.json_response(body, headers=NO_STORE)


def _sandbox_options(server: AuthServer, form: dict[str, str]) -> tuple[str, bool]:
    """The test-only ``alg`` and ``token_format`` parameters (refused outside sandbox mode)."""
    alg = form.get("alg")
    wanted_format = form.get("token_format")
    if (alg is not None or wanted_format is not None) and not server.config.sandbox_mode:
        raise OAuthError("invalid_request", "alg and token_format are sandbox-only parameters")
    if alg is not None and (alg not in SIGNING_ALGORITHMS or alg not in server.keys.algorithms):
        raise OAuthError("invalid_request", "the AS has no signing key for this alg")
    if wanted_format is not None and wanted_format not in TOKEN_FORMATS:
        raise OAuthError("invalid_request", "token_format must be jwt or opaque")
    return alg or server.config.default_alg, wanted_format == "opaque"


def _dpop_jkt(server: AuthServer, request: web.Request) -> str:
    """Verify the proof for this token request (RFC 9449 §4.3, no ``ath``); its key thumbprint."""
    headers = Headers((name, value) for name, value in request.headers.items())
    try:
        proof = verify_dpop_proof(
            headers,
            request.method,
            server.config.endpoint(TOKEN_PATH),  # from the issuer, never from Host (DPOP-09)
            None,
            server.clock.now(),
            server.dpop_policy,
            replay=server.dpop_replay,
        )
    except DPoPError as error:
        raise OAuthError("invalid_dpop_proof", error.detail) from None
    return proof.jkt


def _redeem_code(server: AuthServer, form: dict[str, str], client_id: str) -> AuthorizationCode:
    code, verifier = form.get("code", ""), form.get("code_verifier", "")
    if not code or not verifier or "redirect_uri" not in form:
        raise OAuthError("invalid_request", "code, redirect_uri and code_verifier are required")
    grant = server.take_code(code)
    if grant is None or grant.client_id != client_id:
        raise OAuthError("invalid_grant", "the code is invalid or expired")
    if grant.redeemed:
        # RFC 6749 §4.1.2 / §10.5: a replayed code suggests theft; revoke what it bought.
        for jti, exp in grant.issued:
            server.revoke_jti(jti, exp)
        raise OAuthError("invalid_grant", "the code was already used")
    # One attempt per code, whatever its outcome: a verifier cannot be guessed by retrying.
    grant.redeemed = True
    if form["redirect_uri"] != grant.redirect_uri:  # RFC 6749 §4.1.3
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    if not _CODE_VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
        b64url_encode(hashlib.sha256(verifier.encode("ascii")).digest()), grant.code_challenge
    ):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
    return grant
