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
  previous ones published for the grace period. Not part of any standard.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from finward.auth.dpop import DEFAULT_DPOP_ALGORITHMS
from finward.sandbox.authserver.clients import AUTH_METHODS, CLIENT_SECRET_BASIC, SCOPES
from finward.sandbox.authserver.grants import (
    AUTHORIZE_PATH,
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
    read_form,
)
from finward.sandbox.authserver.state import AuthServer, StoreFullError
from finward.sandbox.authserver.tokens import read_own_token

JWKS_PATH = "/jwks"
INTROSPECT_PATH = "/introspect"
REVOKE_PATH = "/revoke"
ROTATE_PATH = "/admin/rotate"
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
    return app


def metadata(server: AuthServer) -> dict[str, Any]:
    """RFC 8414 §2 authorization server metadata (plus RFC 8705 §3.3, RFC 9449 §5.1)."""
    config = server.config
    return {
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


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
