"""The sandbox AS as an aiohttp application: discovery, JWKS, token, introspection, revocation.

Endpoints (paths relative to the issuer URL):

- ``GET /.well-known/oauth-authorization-server`` (RFC 8414) and
  ``GET /.well-known/openid-configuration``: the same metadata document;
- ``GET /jwks``: public signing keys, current and those in their rotation grace period;
- ``GET /authorize`` and ``POST /token``: see ``finward.sandbox.authserver.grants``;
- ``POST /introspect`` (RFC 7662): for clients registered with ``can_introspect``;
- ``POST /revoke`` (RFC 7009): a client revokes its own tokens;
- ``POST /admin/rotate`` (sandbox mode only, loopback callers only): a test hook that makes
  new current keys (``alg`` query parameter: one algorithm, default all) and keeps the
  previous ones published for the grace period. Not part of any standard;
- ``POST /admin/mint`` (sandbox mode only, loopback callers only): a test hook that signs
  an access token with claims the caller chooses, e.g. one that expired a minute ago
  (``exp_in: -60``), which no grant would ever issue. The demo uses it for its
  expired-token attack. Not part of any standard either; see ``_mint``.

In sandbox mode the metadata names both hooks in the non-standard members
``sandbox_mint_endpoint`` and ``sandbox_rotate_endpoint``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from finward.auth.dpop import DEFAULT_DPOP_ALGORITHMS
from finward.auth.mtls import X5T_S256
from finward.sandbox.authserver.clients import AUTH_METHODS, CLIENT_SECRET_BASIC, SCOPES
from finward.sandbox.authserver.grants import (
    AUTHORIZE_PATH,
    PSU_ID,
    TOKEN_PATH,
    handle_authorize,
    handle_token,
)
from finward.sandbox.authserver.keys import SIGNING_ALGORITHMS
from finward.sandbox.authserver.protocol import (
    AUTHSERVER_KEY,
    MAX_FORM_BYTES,
    NO_STORE,
    OAuthError,
    authenticate_client,
    client_certificate,
    parse_scope,
    read_form,
)
from finward.sandbox.authserver.state import AuthServer, StoreFullError
from finward.sandbox.authserver.tokens import (
    access_token_claims,
    read_own_token,
    sign_access_token,
)

JWKS_PATH = "/jwks"
INTROSPECT_PATH = "/introspect"
REVOKE_PATH = "/revoke"
ROTATE_PATH = "/admin/rotate"
MINT_PATH = "/admin/mint"
# /admin/mint: how far from now a minted token may expire (either way).
MAX_MINT_EXP_S = 86_400
_MINT_FIELDS = frozenset({"client_id", "sub", "scope", "exp_in", "cnf", "alg", "claims"})
_MINT_CNF = frozenset({"jkt", X5T_S256})
METADATA_PATHS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")
# Claims an introspection response repeats from the token (RFC 7662 §2.2).
_INTROSPECTED_CLAIMS = ("scope", "client_id", "sub", "exp", "iat", "nbf", "iss", "aud", "jti")
# JWKS may be cached briefly by resource servers; rotation keeps old keys during the grace.
JWKS_MAX_AGE_S = 60

log = logging.getLogger("finward.sandbox.authserver")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(server: AuthServer) -> web.Application:
    """The aiohttp application for ``server``."""
    app = web.Application(middlewares=[_errors], client_max_size=MAX_FORM_BYTES)
    app[AUTHSERVER_KEY] = server
    for path in METADATA_PATHS:
        app.router.add_get(path, _metadata)
    app.router.add_get(JWKS_PATH, _jwks)
    app.router.add_get(AUTHORIZE_PATH, handle_authorize)
    app.router.add_post(TOKEN_PATH, handle_token)
    app.router.add_post(INTROSPECT_PATH, _introspect)
    app.router.add_post(REVOKE_PATH, _revoke)
    if server.config.sandbox_mode:
        app.router.add_post(ROTATE_PATH, _rotate)
        app.router.add_post(MINT_PATH, _mint)
    return app


def metadata(server: AuthServer) -> dict[str, Any]:
    """RFC 8414 §2 authorization server metadata (plus RFC 8705 §3.3, RFC 9449 §5.1)."""
    config = server.config
    body: dict[str, Any] = {
        "issuer": config.issuer,
        "authorization_endpoint": config.endpoint(AUTHORIZE_PATH),
        "token_endpoint": config.endpoint(TOKEN_PATH),
        "introspection_endpoint": config.endpoint(INTROSPECT_PATH),
        "revocation_endpoint": config.endpoint(REVOKE_PATH),
        "jwks_uri": config.endpoint(JWKS_PATH),
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": [CLIENT_SECRET_BASIC],
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "access_token_signing_alg_values_supported": [
            alg for alg in SIGNING_ALGORITHMS if alg in server.keys.algorithms
        ],
        "dpop_signing_alg_values_supported": list(DEFAULT_DPOP_ALGORITHMS),
        "tls_client_certificate_bound_access_tokens": True,
        "authorization_response_iss_parameter_supported": True,
    }
    if config.sandbox_mode:
        # Non-standard members (RFC 8414 §2 allows extensions): where the test hooks are.
        body["sandbox_mint_endpoint"] = config.endpoint(MINT_PATH)
        body["sandbox_rotate_endpoint"] = config.endpoint(ROTATE_PATH)
    return body


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except OAuthError as error:
        return error.response()
    except StoreFullError:
        return OAuthError("temporarily_unavailable", "the sandbox AS is full", 503).response()
    except web.HTTPException:
        raise
    except Exception:
        # The traceback, never the request: bodies and headers carry secrets and tokens.
        log.exception("sandbox AS handler failed on %s %s", request.method, request.path)
        return OAuthError("server_error", "the authorization server failed", 500).response()


async def _metadata(request: web.Request) -> web.Response:
    return web.json_response(metadata(request.app[AUTHSERVER_KEY]))


async def _jwks(request: web.Request) -> web.Response:
    server = request.app[AUTHSERVER_KEY]
    headers = {"Cache-Control": f"public, max-age={JWKS_MAX_AGE_S}"}
    return web.json_response(
        server.keys.jwks(), headers=headers, content_type="application/jwk-set+json"
    )


def token_claims(server: AuthServer, token: str) -> dict[str, Any] | None:
    """Claims of a live token this AS issued (JWT or opaque); None if unknown/expired/revoked."""
    if token.count(".") == 2:
        claims = read_own_token(
            server.keys, token, issuer=server.config.issuer, now=server.clock.now()
        )
    else:
        claims = server.opaque_claims(token)
    if claims is None or server.is_revoked(claims.get("jti")):
        return None
    return claims


async def _introspect(request: web.Request) -> web.Response:
    """RFC 7662 §2: ``active`` plus the token's metadata, or only ``active: false``."""
    server = request.app[AUTHSERVER_KEY]
    form = await read_form(request)
    client = authenticate_client(server.clients, request, form, client_certificate(request))
    if not client.can_introspect:
        # RFC 7662 §4: only protected resources may learn about tokens.
        raise OAuthError("unauthorized_client", "the client may not introspect tokens", 403)
    token = form.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is missing")
    claims = token_claims(server, token)
    if claims is None:
        return web.json_response({"active": False}, headers=NO_STORE)
    cnf = claims.get("cnf")
    body: dict[str, Any] = {
        "active": True,
        "token_type": "DPoP" if isinstance(cnf, dict) and "jkt" in cnf else "Bearer",
    }
    for name in (*_INTROSPECTED_CLAIMS, "cnf", server.config.consent_claim):
        if name in claims:
            body[name] = claims[name]
    return web.json_response(body, headers=NO_STORE)


async def _revoke(request: web.Request) -> web.Response:
    """RFC 7009 §2: revoke a token issued to the calling client; 200 for unknown tokens."""
    server = request.app[AUTHSERVER_KEY]
    form = await read_form(request)
    client = authenticate_client(server.clients, request, form, client_certificate(request))
    token = form.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is missing")
    claims = token_claims(server, token)
    if claims is not None:
        if claims.get("client_id") != client.client_id:
            raise OAuthError("unauthorized_client", "the token was not issued to this client")
        server.revoke_jti(str(claims["jti"]), float(claims["exp"]))
        server.forget_opaque(token)
    # §2.2: 200 whether or not the token was valid; the client cannot tell.
    return web.Response(status=200, headers=NO_STORE)


async def _rotate(request: web.Request) -> web.Response:
    """Sandbox-only test hook: new current keys; the previous ones stay in the grace period."""
    if not _is_loopback(request.remote):
        raise OAuthError("access_denied", "key rotation is only allowed from loopback", 403)
    server = request.app[AUTHSERVER_KEY]
    alg = request.query.get("alg")
    if alg is not None and alg not in server.keys.algorithms:
        raise OAuthError("invalid_request", "the AS has no key for this alg")
    # Key generation blocks the loop briefly (an RSA key takes ~0.1 s): fine for a test hook.
    created = server.keys.rotate(alg)
    body = {
        "rotated": [{"alg": key.alg, "kid": key.kid} for key in created],
        "published": [key.kid for key in server.keys.published()],
        "grace_s": server.keys.grace_s,
    }
    return web.json_response(body, headers=NO_STORE)


async def _mint(request: web.Request) -> web.Response:
    """Sandbox-only test hook: sign an access token with caller-chosen claims.

    A JSON object: ``client_id`` (a registered client, required), ``sub`` (default: the
    client), ``scope`` (checked against the registration; default: all of it),
    ``exp_in`` (seconds from now, negative for an already expired token, then issued one
    lifetime before it expired; default: the usual lifetime), ``cnf`` (``jkt`` and/or
    ``x5t#S256``: the binding), ``alg`` (a key of this AS) and ``claims`` (merged last,
    so they may override any claim). The token is signed with this AS's current key, so
    only its claims can make a resource server refuse it. Nothing is recorded: the AS
    does not know the token afterwards (introspection of a live one still works).
    """
    if not _is_loopback(request.remote):
        raise OAuthError("access_denied", "minting is only allowed from loopback", 403)
    server = request.app[AUTHSERVER_KEY]
    body = await _json_object(request)
    if set(body) - _MINT_FIELDS:
        raise OAuthError("invalid_request", "unknown member in the mint request")
    client = server.clients.get(body.get("client_id") or "")
    if client is None:
        raise OAuthError("invalid_request", "client_id is missing or unknown")
    sub = body.get("sub", client.client_id)
    if not isinstance(sub, str) or not PSU_ID.fullmatch(sub):
        raise OAuthError("invalid_request", "sub is malformed")
    scope = body.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise OAuthError("invalid_scope", "scope must be a string")
    exp_in = body.get("exp_in", server.config.token_lifetime_s)
    if (
        not isinstance(exp_in, int)
        or isinstance(exp_in, bool)
        or not -MAX_MINT_EXP_S <= exp_in <= MAX_MINT_EXP_S
    ):
        raise OAuthError("invalid_request", f"exp_in must be an integer within ±{MAX_MINT_EXP_S}")
    cnf = body.get("cnf")
    if cnf is not None and not (
        isinstance(cnf, dict)
        and set(cnf) <= _MINT_CNF
        and all(isinstance(v, str) and 0 < len(v) <= 128 for v in cnf.values())
    ):
        raise OAuthError("invalid_request", "cnf may only hold jkt and x5t#S256 strings")
    alg = body.get("alg", server.config.default_alg)
    if alg not in server.keys.algorithms:
        raise OAuthError("invalid_request", "the AS has no signing key for this alg")
    extra = body.get("claims")
    if extra is not None and not isinstance(extra, dict):
        raise OAuthError("invalid_request", "claims must be an object")
    # A token that expired a minute ago was issued one lifetime before that: iat and nbf
    # stay consistent with exp, so expiry is the only thing wrong with it.
    lifetime = server.config.token_lifetime_s
    issued = server.clock.now() + (exp_in - lifetime if exp_in < 0 else 0)
    claims = access_token_claims(
        issuer=server.config.issuer,
        audience=server.config.audience,
        client_id=client.client_id,
        sub=sub,
        scope=parse_scope(scope, client),
        now=issued,
        exp_in=lifetime if exp_in < 0 else exp_in,
        cnf=cnf or None,
        extra_claims=extra,
    )
    token = sign_access_token(server.keys, claims, alg)
    is_dpop = isinstance(claims.get("cnf"), dict) and "jkt" in claims["cnf"]
    body = {
        "access_token": token,
        "token_type": "DPoP" if is_dpop else "Bearer",
        "claims": claims,
    }
    return web.json_response(body, headers=NO_STORE)


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise OAuthError("invalid_request", "the body must be application/json")
    try:
        # The application's client_max_size is MAX_FORM_BYTES: aiohttp stops reading there.
        body = await request.json()
    except web.HTTPRequestEntityTooLarge:
        raise OAuthError("invalid_request", "the request body is too large", 413) from None
    except ValueError:
        raise OAuthError("invalid_request", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise OAuthError("invalid_request", "the body must be a JSON object")
    return body


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
