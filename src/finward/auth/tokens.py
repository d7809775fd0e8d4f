"""JWT access-token validation at the resource server: RFC 9068, RFC 8725, FAPI 2.0 §5.3.4/§5.4.

Sans-IO and clock-free: keys come in as a ``KeySet`` the caller fetched, time as ``now``.
Order of checks (DESIGN.md): size, then parsing, then header policy (``alg``, ``typ``),
then key lookup and the signature, then the claims. Every failure is a ``TokenError``
carrying a catalogued reason code; nothing else escapes for any input string.

The header parameters ``jku``, ``x5u``, ``jwk`` and ``x5c`` are never read: keys come only
from the issuer's configured JWKS (FAPI 2.0 §5.4.2, RFC 8725 §3.10 - no SSRF, no
attacker-chosen keys).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import cast

from finward.auth.bearer import (
    PresentedToken,
    extract_bearer,
    is_token_in_form,
    is_token_in_query,
)
from finward.auth.jwk import KeySet, VerificationKey, b64url_decode
from finward.auth.token_policy import (
    ALWAYS_REQUIRED_CLAIMS,
    DEFAULT_ALGORITHMS,
    DEFAULT_MAX_FUTURE_S,
    DEFAULT_TOKEN_TYPES,
    MAX_TOKEN_BYTES,
    RFC9068_REQUIRED_CLAIMS,
    TYP_ABSENT,
    IssuerPolicy,
    TokenError,
)

__all__ = [
    "ALWAYS_REQUIRED_CLAIMS",
    "DEFAULT_ALGORITHMS",
    "DEFAULT_MAX_FUTURE_S",
    "DEFAULT_TOKEN_TYPES",
    "MAX_CLAIMS_DEPTH",
    "MAX_TOKEN_BYTES",
    "RFC9068_REQUIRED_CLAIMS",
    "TYP_ABSENT",
    "IssuerPolicy",
    "PresentedToken",
    "TokenError",
    "VerifiedToken",
    "check_claims",
    "check_times",
    "check_verified_token",
    "extract_bearer",
    "is_token_in_form",
    "is_token_in_query",
    "peek_unverified",
    "token_sha256",
    "verified_from_introspection",
    "verify_access_token",
]

# Nesting depth of JSON values inside the claims. RFC 9396 authorization_details nests a
# few levels; anything deeper is an attack on whatever walks the claims later.
MAX_CLAIMS_DEPTH = 16
# NumericDate (RFC 7519 §2): integers beyond 2**53 lose precision as floats, and larger
# ones (10**400) cannot be compared with a float at all.
_MAX_NUMERIC_DATE = 2**53
# Header parameters that turn a JWS into something this verifier does not do:
# "crit" names extensions we do not understand (RFC 7515 §4.1.11: must reject);
# "enc"/"zip" belong to JWE (RFC 7516); we accept signed tokens only.
_REFUSED_HEADER_PARAMETERS = ("crit", "enc", "zip")
# RFC 8725 §3.3 (JWTBCP-03): a nested JWT would need every layer verified; refuse it.
_NESTED_CONTENT_TYPES = frozenset({"jwt", "application/jwt"})


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature, header and claims passed. Immutable, safe to cache.

    ``claims`` is a read-only mapping (nested objects and arrays frozen too). ``sub``,
    ``client_id`` and ``jti`` are ``None`` only when the policy's ``required_claims`` drops
    them (legacy ASes). ``token_hash`` is the SHA-256 hex of the token, for logs and cache
    keys: the token itself is not kept. ``repr`` leaves out claims and ``sub`` (personal
    data).
    """

    claims: Mapping[str, object] = field(repr=False)
    issuer: str
    sub: str | None = field(repr=False)
    client_id: str | None
    jti: str | None
    scopes: frozenset[str]
    exp: float
    iat: float | None
    cnf: Mapping[str, object] | None
    token_hash: str
    kid: str | None
    alg: str
    token_type: str
    key_thumbprint: str  # RFC 7638 thumbprint of the AS key that verified the signature


def token_sha256(token: str) -> str:
    """SHA-256 hex of a token: how it appears in logs, events and cache keys."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def verify_access_token(
    token: str, keys: KeySet, policy: IssuerPolicy, now: float
) -> VerifiedToken:
    """Verify a JWS-compact access token against the issuer's keys and policy at ``now``.

    Raises ``TokenError``. ``token_key_unknown`` means no key in ``keys`` has the token's
    ``kid`` for its ``alg``: the caller may refetch the JWKS once (rate-limited) and retry.
    """
    # 1. Size, before anything else looks at the bytes.
    if not isinstance(token, str):
        raise TokenError("token_malformed", "the token is not a string")
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("token_too_large", f"the token exceeds {MAX_TOKEN_BYTES} bytes")
    if not token.isascii():
        raise TokenError("token_malformed", "the token is not ASCII")
    # 2. Parse: three canonical base64url segments, two JSON objects.
    parts = token.split(".")
    if len(parts) != 3:
        what = "encrypted (JWE) tokens are not accepted" if len(parts) == 5 else "not a JWS"
        raise TokenError("token_malformed", what)
    try:
        header_raw, payload_raw, signature = (b64url_decode(part) for part in parts)
    except ValueError:
        raise TokenError("token_malformed", "a segment is not base64url") from None
    header = _json_object(header_raw, "header")
    alg, kid, typ = _header_fields(header)
    claims = cast(Mapping[str, object], _freeze(_json_object(payload_raw, "payload")))
    # 3. Header policy, still before any crypto.
    _check_header(alg, typ, policy)
    # 4. Key lookup and signature (RFC 8725 §3.1: the key fixes the algorithm).
    candidates = keys.candidates(kid, alg)
    if not candidates:
        raise TokenError("token_key_unknown", "no published key for this kid and alg")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    key = _first_verifying(candidates, alg, signing_input, signature)
    # 5. Claims, only for a token the AS really signed.
    check_claims(claims, policy, now)
    return _verified(claims, key, alg, kid, typ, token_sha256(token))


def peek_unverified(token: str) -> tuple[str | None, str | None]:
    """``(iss, kid)`` read from an *unverified* JWS, to pick the issuer and refetch keys.

    Only for routing: nothing read here is trusted; ``verify_access_token`` checks both
    again. Returns ``(None, None)`` for anything that does not parse.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or not token.isascii():
        return None, None
    parts = token.split(".")
    if len(parts) != 3:
        return None, None
    try:
        header = _json_object(b64url_decode(parts[0]), "header")
        payload = _json_object(b64url_decode(parts[1]), "payload")
    except (TokenError, ValueError):
        return None, None
    iss, kid = payload.get("iss"), header.get("kid")
    return (iss if isinstance(iss, str) else None), (kid if isinstance(kid, str) else None)


def verified_from_introspection(
    claims: Mapping[str, object], issuer: str, token_hash: str
) -> VerifiedToken:
    """A ``VerifiedToken`` for an opaque token the AS vouched for (RFC 7662 §2.2).

    The introspection client already checked ``active`` and whichever of iss, aud, exp,
    nbf and iat the AS returned. ``exp`` may be absent (RFC 7662 makes it optional).
    """
    frozen = cast(Mapping[str, object], _freeze(dict(claims)))
    for name in ("sub", "client_id", "jti", "scope"):
        if name in frozen and not isinstance(frozen[name], str):
            # Like the JWT path: a non-string would silently skip suspension and mapping.
            raise TokenError("token_malformed", f"claim {name} is not a string")
    cnf = frozen.get("cnf")
    if cnf is not None and not isinstance(cnf, Mapping):
        raise TokenError("token_malformed", "claim cnf is not an object")
    exp = _numeric_date(frozen, "exp")
    return VerifiedToken(
        claims=frozen,
        issuer=issuer,
        sub=_optional_str(frozen, "sub"),
        client_id=_optional_str(frozen, "client_id"),
        jti=_optional_str(frozen, "jti"),
        scopes=_scopes(frozen),
        exp=exp if exp is not None else math.inf,
        iat=_numeric_date(frozen, "iat"),
        cnf=cnf,
        token_hash=token_hash,
        kid=None,
        alg="",
        token_type="opaque",
        key_thumbprint="",
    )


def check_verified_token(
    verified: VerifiedToken, keys: KeySet, policy: IssuerPolicy, now: float
) -> None:
    """Re-check a previously verified token (a cache hit) against today's keys, policy, time.

    The signature is not recomputed; everything else is: ``alg`` and ``typ`` against the
    policy, that the verifying key is still published for that ``alg``, and every claim
    (issuer, audience, required claims, ``exp``/``nbf``/``iat`` at ``now``).
    """
    _check_header(verified.alg, verified.token_type, policy)
    if not keys.holds(verified.kid, verified.alg, verified.key_thumbprint):
        raise TokenError("token_key_unknown", "the key that signed the token is not published")
    check_claims(verified.claims, policy, now)


def check_claims(claims: Mapping[str, object], policy: IssuerPolicy, now: float) -> None:
    """RFC 9068 §4 claim checks with an injected clock. Also fits introspection results.

    Raises ``TokenError``: ``token_claims_missing``, ``token_malformed`` (wrong JSON type),
    ``token_issuer_invalid``, ``token_audience_invalid``, ``token_expired``,
    ``token_not_yet_valid``, ``token_issued_in_future``.
    """
    missing = sorted(name for name in policy.required_claims if claims.get(name) in (None, ""))
    if missing:  # RFC 9068 §2.2 (ATJWT-02); names are ours, not the client's
        raise TokenError("token_claims_missing", f"missing claims: {', '.join(missing)}")
    for name in ("iss", "sub", "client_id", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise TokenError("token_malformed", f"claim {name} is not a string")
    # RFC 9068 §4, RFC 8725 §3.8 (ATJWT-03): exact string match, no normalisation.
    if claims["iss"] != policy.issuer:
        raise TokenError("token_issuer_invalid", "iss is not the configured issuer")
    # RFC 7519 §4.1.3, RFC 8725 §3.9 (ATJWT-04): one of the audiences must be ours.
    aud = claims["aud"]
    audiences = (aud,) if isinstance(aud, str) else aud
    if not isinstance(audiences, tuple | list) or not all(isinstance(a, str) for a in audiences):
        raise TokenError("token_malformed", "claim aud is not a string or array of strings")
    if policy.audiences.isdisjoint(audiences):
        raise TokenError("token_audience_invalid", "aud does not name this resource server")
    check_times(claims, policy, now)


def check_times(claims: Mapping[str, object], policy: IssuerPolicy, now: float) -> None:
    """The time-dependent part of ``check_claims``: ``exp``, ``nbf`` and ``iat`` at ``now``."""
    # RFC 7519 §4.1.4 (ATJWT-06): now must be before exp.
    exp = _numeric_date(claims, "exp")
    if exp is None or now >= exp + policy.leeway_s:
        raise TokenError("token_expired", "the token has expired")
    # FAPI 2.0 §5.3.2.1 (FAPI-13): at most max_future_s ahead of our clock.
    nbf = _numeric_date(claims, "nbf")
    if nbf is not None and nbf > now + policy.max_future_s:
        raise TokenError("token_not_yet_valid", "nbf is in the future")
    iat = _numeric_date(claims, "iat")
    if iat is not None and iat > now + policy.max_future_s:
        raise TokenError("token_issued_in_future", "iat is in the future")


def _first_verifying(
    candidates: tuple[VerificationKey, ...], alg: str, signing_input: bytes, signature: bytes
) -> VerificationKey:
    for key in candidates:
        if key.verify(alg, signing_input, signature):
            return key
    raise TokenError("token_signature_invalid", "the signature does not verify")


def _check_header(alg: str, typ: str, policy: IssuerPolicy) -> None:
    # FAPI 2.0 §5.4.1 (FAPI-09), RFC 8725 §3.1-3.2: "none", HS* and anything not on the
    # issuer's list stop here; IssuerPolicy cannot even be configured with them.
    if alg not in policy.algorithms:
        raise TokenError("token_algorithm_not_allowed", "alg is not allowed for this issuer")
    # RFC 9068 §4 (ATJWT-01), RFC 8725 §3.11 (JWTBCP-10); RFC 7515 §4.1.9 case-insensitive.
    if typ.lower() not in policy.token_types:
        raise TokenError("token_type_invalid", "typ is not an access-token type")


def _header_fields(header: Mapping[str, object]) -> tuple[str, str | None, str]:
    alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ", TYP_ABSENT)
    if not isinstance(alg, str) or not alg:
        raise TokenError("token_malformed", "header has no alg")
    # JWTBCP-09: kid is untrusted, so it is only ever compared for equality.
    if kid is not None and not isinstance(kid, str):
        raise TokenError("token_malformed", "header kid is not a string")
    if not isinstance(typ, str):
        raise TokenError("token_malformed", "header typ is not a string")
    for name in _REFUSED_HEADER_PARAMETERS:
        if name in header:
            raise TokenError("token_malformed", f"header parameter {name} is not supported")
    cty = header.get("cty")
    if isinstance(cty, str) and cty.lower() in _NESTED_CONTENT_TYPES:
        raise TokenError("token_malformed", "nested JWTs are not accepted")
    return alg, kid, typ


def _json_object(raw: bytes, what: str) -> dict[str, object]:
    """Strict JSON: UTF-8 only (RFC 8725 §3.7), no duplicate names, no NaN, real Unicode."""
    try:
        # Decoding first matters: json.loads(bytes) would also accept UTF-16 and UTF-32.
        text = raw.decode("utf-8")
        value = _DECODER.decode(text)
        if "\\u" in text:  # only \\uD800-style escapes can smuggle in a lone surrogate
            json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeError and JSONDecodeError included
        raise TokenError("token_malformed", f"the {what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise TokenError("token_malformed", f"the {what} is not a JSON object")
    return value


def _unique_members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # RFC 7515 §5.2 / RFC 7519 §4: duplicate member names are refused, not "last wins",
    # so the AS and every verifier read the same claims.
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member name")
    return members


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


# Stateless once built; reused so each token does not construct a decoder.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_refuse_constant)
_ATOMS = frozenset({str, int, float, bool, type(None)})


def _freeze(value: object, depth: int = 0) -> object:
    """Deep read-only copy of parsed JSON: cached claims are shared by later requests."""
    if depth > MAX_CLAIMS_DEPTH:
        raise TokenError("token_malformed", "claims are nested too deeply")
    if isinstance(value, dict):
        return MappingProxyType(
            {k: v if type(v) in _ATOMS else _freeze(v, depth + 1) for k, v in value.items()}
        )
    if isinstance(value, list):
        return tuple(v if type(v) in _ATOMS else _freeze(v, depth + 1) for v in value)
    return value


def _numeric_date(claims: Mapping[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError("token_malformed", f"claim {name} is not a NumericDate")
    if isinstance(value, int) and abs(value) >= _MAX_NUMERIC_DATE:
        raise TokenError("token_malformed", f"claim {name} is out of range")
    if not math.isfinite(value):  # 1e999 parses as inf: a token that never expires
        raise TokenError("token_malformed", f"claim {name} is out of range")
    return float(value)


def _verified(
    claims: Mapping[str, object],
    key: VerificationKey,
    alg: str,
    kid: str | None,
    typ: str,
    token_hash: str,
) -> VerifiedToken:
    cnf = claims.get("cnf")
    if cnf is not None and not isinstance(cnf, Mapping):
        raise TokenError("token_malformed", "claim cnf is not an object")
    exp, iat = _numeric_date(claims, "exp"), _numeric_date(claims, "iat")
    if exp is None:  # unreachable after check_claims; kept explicit, never an assert
        raise TokenError("token_claims_missing", "missing claims: exp")
    return VerifiedToken(
        claims=claims,
        issuer=str(claims["iss"]),
        sub=_optional_str(claims, "sub"),
        client_id=_optional_str(claims, "client_id"),
        jti=_optional_str(claims, "jti"),
        scopes=_scopes(claims),
        exp=exp,
        iat=iat,
        cnf=cnf,
        token_hash=token_hash,
        kid=kid,
        alg=alg,
        token_type=typ,
        key_thumbprint=key.thumbprint,
    )


def _optional_str(claims: Mapping[str, object], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def _scopes(claims: Mapping[str, object]) -> frozenset[str]:
    # RFC 9068 §2.2.3 / RFC 6749 §3.3: space-delimited "scope"; some ASes send a "scp" array.
    scope = claims.get("scope")
    if scope is not None:
        if not isinstance(scope, str):
            raise TokenError("token_malformed", "claim scope is not a string")
        return frozenset(s for s in scope.split(" ") if s)
    scp = claims.get("scp")
    if scp is None:
        return frozenset()
    if isinstance(scp, str):
        return frozenset(s for s in scp.split(" ") if s)
    if not isinstance(scp, tuple | list) or not all(isinstance(s, str) for s in scp):
        raise TokenError("token_malformed", "claim scp is not an array of strings")
    return frozenset(s for s in scp if s)
