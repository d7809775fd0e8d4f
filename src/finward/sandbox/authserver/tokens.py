"""Minting RFC 9068 JWT access tokens, and reading back the ones this AS signed.

``mint_access_token`` works without HTTP: tests and the demo call it with a ``SigningKeys``
to get a token finward will accept (or, through ``extra_claims``, one it must refuse).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import jwt

from finward.sandbox.authserver.keys import DEFAULT_ALGORITHM, SigningKeys

# Issuer of `finward sandbox authserver` on its default port; the HTTP AS uses its own URL.
DEFAULT_ISSUER = "http://127.0.0.1:8082"
DEFAULT_AUDIENCE = "finward"
# FAPI 2.0 leaves the lifetime to the AS; short-lived tokens limit what a leaked one is
# worth. Five minutes matches the brief's default and common open-banking ASes.
DEFAULT_TOKEN_LIFETIME_S = 300
# RFC 9068 §2.1 (ATJWT-01): explicit typing of access tokens.
ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - a media type
# FAPI 2.0 §5.3.2.1 (FAPI-11) asks for at least 128 bits of entropy in access tokens; the
# jti carries 192 bits so that it is unguessable and unique on its own.
JTI_BYTES = 24
# Opaque tokens: 256 random bits (RFC 6749 §10.10: the probability of guessing must be
# negligible).
OPAQUE_TOKEN_BYTES = 32
# Same cap as the resource server's (finward.auth.token_policy.MAX_TOKEN_BYTES): checked
# before a presented token is parsed.
MAX_TOKEN_BYTES = 8192


def new_jti() -> str:
    return secrets.token_urlsafe(JTI_BYTES)


def new_opaque_token() -> str:
    return secrets.token_urlsafe(OPAQUE_TOKEN_BYTES)


def token_digest(token: str) -> str:
    """SHA-256 hex of a token: how stores key tokens, so the token itself is never kept."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def access_token_claims(
    *,
    issuer: str,
    audience: str | Iterable[str],
    client_id: str,
    sub: str,
    scope: str | Iterable[str],
    now: float,
    exp_in: int = DEFAULT_TOKEN_LIFETIME_S,
    cnf: Mapping[str, str] | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The RFC 9068 §2.2 claim set. ``extra_claims`` are applied last and may override."""
    issued = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": sub,
        "aud": audience if isinstance(audience, str) else list(audience),
        "exp": issued + exp_in,
        "nbf": issued,
        "iat": issued,
        "jti": new_jti(),
        "client_id": client_id,
        "scope": scope if isinstance(scope, str) else " ".join(scope),
    }
    if cnf:
        claims["cnf"] = dict(cnf)
    if extra_claims:
        claims.update(extra_claims)
    return claims


def sign_access_token(keys: SigningKeys, claims: Mapping[str, Any], alg: str) -> str:
    """Sign ``claims`` with the current key for ``alg``; the header names its ``kid``."""
    key = keys.current(alg)
    headers = {"typ": ACCESS_TOKEN_TYP, "kid": key.kid}
    return jwt.encode(dict(claims), key.private_key, algorithm=alg, headers=headers)


def mint_access_token(
    keys: SigningKeys,
    *,
    client_id: str,
    sub: str,
    scope: str | Iterable[str],
    cnf: Mapping[str, str] | None = None,
    alg: str = DEFAULT_ALGORITHM,
    exp_in: int = DEFAULT_TOKEN_LIFETIME_S,
    extra_claims: Mapping[str, Any] | None = None,
    now: float | None = None,
    issuer: str = DEFAULT_ISSUER,
    audience: str | Iterable[str] = DEFAULT_AUDIENCE,
) -> str:
    """An RFC 9068 access token signed by ``keys`` (no HTTP, no AS state involved).

    ``now`` defaults to the key set's clock. ``cnf`` binds the token: ``{"x5t#S256": …}``
    (RFC 8705) or ``{"jkt": …}`` (RFC 9449). ``extra_claims`` are merged last, so a test
    can also override a standard claim to build a token the gateway must refuse.
    """
    claims = access_token_claims(
        issuer=issuer,
        audience=audience,
        client_id=client_id,
        sub=sub,
        scope=scope,
        now=keys.clock.now() if now is None else now,
        exp_in=exp_in,
        cnf=cnf,
        extra_claims=extra_claims,
    )
    return sign_access_token(keys, claims, alg)


def read_own_token(
    keys: SigningKeys, token: str, *, issuer: str, now: float
) -> dict[str, Any] | None:
    """The claims of a JWT access token this AS signed and that is valid at ``now``.

    None for anything else: too large, not a JWS, unknown or expired ``kid`` (rotated
    out after its grace period), wrong ``typ``/``alg``, bad signature, other issuer,
    expired or not yet valid. Used by introspection and revocation.
    """
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        return None
    try:
        header = jwt.get_unverified_header(token)
        kid = header.get("kid")
        key = keys.find(kid) if isinstance(kid, str) else None
        if key is None or header.get("alg") != key.alg or header.get("typ") != ACCESS_TOKEN_TYP:
            return None
        claims: dict[str, Any] = jwt.decode(
            token,
            key.private_key.public_key(),
            algorithms=[key.alg],
            # Time is checked below against the injected clock, not PyJWT's time.time().
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if claims.get("iss") != issuer or not isinstance(exp, int | float) or exp <= now:
        return None
    if not isinstance(nbf, int | float) or nbf > now:
        return None
    return claims
