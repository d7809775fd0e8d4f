"""DPoP proof verification at the resource server (RFC 9449 §4.3, §7, §9, §11).

Sans-IO: the caller passes the headers, the request method, the request URI it
computed from the configured public base URL (:func:`request_htu`, never from
``X-Forwarded-Host``), the access token, the time and the replay cache. Checks
run cheapest first: sizes before parsing, parsing before crypto, crypto before
anything is recorded in the replay cache.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.exceptions import PyJWTError

from finward.auth.htu import normalize_htu
from finward.auth.jwk import jwk_thumbprint
from finward.auth.replay import NonceService, ReplayCache, replay_key
from finward.errors import FinwardError
from finward.http import Headers

# A proof is one compact JWS with a public key: an RSA-4096 proof is ~2.5 KB. 8 KiB
# leaves room and stops oversized input before base64/JSON work (DESIGN: sizes first).
DPOP_MAX_PROOF_BYTES = 8192
# Acceptance window for `iat` (RFC 9449 §4.3 (11), §11.1: "relatively short"). A proof
# is made just before its request, so 60 s of age covers slow networks; the replay
# cache holds each jti this long. 10 s of future skew follows FAPI 2.0 (FAPI-13).
# Operators may widen the age up to DPOP_MAX_IAT_WINDOW_S for clients with poor clocks.
DPOP_IAT_MAX_AGE_S = 60.0
DPOP_IAT_MAX_FUTURE_S = 10.0
DPOP_MAX_IAT_WINDOW_S = 300.0
# jti is a client-chosen identifier (≥ 96 bits of randomness, §4.2); cap what we hash.
DPOP_MAX_JTI_CHARS = 256
# RSA keys below 2048 bits are too weak (FAPI 2.0 §5.4.1); above 4096 bits a proof
# only makes verification slower.
DPOP_MIN_RSA_BITS = 2048
DPOP_MAX_RSA_BITS = 4096

DPOP_TYP = "dpop+jwt"
# FAPI 2.0 allows PS256, ES256 and EdDSA; RFC 9449 §4.3 (5) forbids `none` and MACs.
DEFAULT_DPOP_ALGORITHMS: tuple[str, ...] = ("PS256", "ES256", "EdDSA")
# Every asymmetric alg this module can verify, with the JWK kty and curves it needs.
_ALG_KEYS: Mapping[str, tuple[str, frozenset[str]]] = {
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "PS256": ("RSA", frozenset()),
    "PS384": ("RSA", frozenset()),
    "PS512": ("RSA", frozenset()),
    "RS256": ("RSA", frozenset()),
    "RS384": ("RSA", frozenset()),
    "RS512": ("RSA", frozenset()),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
# JWK members that carry private key material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# Three non-empty base64url segments; linear (no nested quantifier), C speed.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# Proof headers seen recently -> (alg, verification key, RFC 7638 thumbprint). A client
# signs every proof with one key, so the header segment repeats; parsing it and building
# the key (≈45 µs) happens once per client key instead of once per request. Only
# headers that passed every header check are kept.
HEADER_CACHE_ENTRIES = 1024

# RFC 9449 §7.1 error codes for WWW-Authenticate, by reason code.
_CHALLENGE_ERRORS: Mapping[str, str] = {
    "dpop_nonce_required": "use_dpop_nonce",
    "dpop_binding_mismatch": "invalid_token",
    "token_binding_missing": "invalid_token",
}


class DPoPError(FinwardError):
    """A DPoP check failed. ``reason`` is a catalogued code; ``detail`` never echoes input.

    ``nonce`` is set with ``dpop_nonce_required``: send it as ``DPoP-Nonce`` (§9).
    """

    def __init__(self, reason: str, detail: str, nonce: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.nonce = nonce

    def challenge_headers(self, algorithms: Sequence[str]) -> tuple[tuple[str, str], ...]:
        """``WWW-Authenticate: DPoP`` with ``error`` and ``algs`` (§7.1) and ``DPoP-Nonce`` (§9)."""
        error = _CHALLENGE_ERRORS.get(self.reason, "invalid_dpop_proof")
        # detail is one of this module's fixed strings: no quotes or backslashes to escape.
        value = (
            f'DPoP error="{error}", error_description="{self.detail}", '
            f'algs="{" ".join(algorithms)}"'
        )
        headers: tuple[tuple[str, str], ...] = (("WWW-Authenticate", value),)
        if self.nonce is not None:
            headers += (("DPoP-Nonce", self.nonce),)
        return headers


@dataclass(frozen=True, slots=True)
class DPoPPolicy:
    """What the resource server accepts. Validated on construction (fails at config load)."""

    algorithms: tuple[str, ...] = DEFAULT_DPOP_ALGORITHMS
    max_age_s: float = DPOP_IAT_MAX_AGE_S
    max_future_s: float = DPOP_IAT_MAX_FUTURE_S
    max_proof_bytes: int = DPOP_MAX_PROOF_BYTES
    _verifiers: Mapping[str, Algorithm] = field(init=False, repr=False, compare=False)
    _headers: OrderedDict[str, tuple[str, object, str]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.algorithms:
            raise ValueError("DPoP needs at least one algorithm")
        unsupported = [a for a in self.algorithms if a not in _ALG_KEYS]
        if unsupported:
            raise ValueError(f"not an asymmetric JWS algorithm: {', '.join(unsupported)}")
        if not 0 < self.max_age_s <= DPOP_MAX_IAT_WINDOW_S:
            raise ValueError(f"max_age_s must be in (0, {DPOP_MAX_IAT_WINDOW_S:g}]")
        if not 0 <= self.max_future_s <= DPOP_MAX_IAT_WINDOW_S:
            raise ValueError(f"max_future_s must be in [0, {DPOP_MAX_IAT_WINDOW_S:g}]")
        if not 0 < self.max_proof_bytes <= 4 * DPOP_MAX_PROOF_BYTES:
            raise ValueError("max_proof_bytes out of range")
        known = get_default_algorithms()
        object.__setattr__(self, "_verifiers", {a: known[a] for a in self.algorithms})
        object.__setattr__(self, "_headers", OrderedDict())

    def proof_header(self, segment: str) -> tuple[str, object, str]:
        """(alg, key, jkt) of a proof's header segment; checked once per distinct header.

        Raises ``DPoPError`` for a header that fails any check (failures are not cached).
        """
        cache = self._headers
        found = cache.get(segment)
        if found is not None:
            cache.move_to_end(segment)
            return found
        found = _check_header(segment, self)
        cache[segment] = found
        if len(cache) > HEADER_CACHE_ENTRIES:
            cache.popitem(last=False)
        return found

    def verifier(self, alg: str) -> Algorithm:
        """PyJWT's implementation of an allowed ``alg`` (built once, not per request)."""
        return self._verifiers[alg]


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A verified proof: the key thumbprint (RFC 7638) the token must be bound to."""

    jkt: str
    jti: str
    iat: float
    alg: str


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url(SHA-256(ASCII access token)) (RFC 9449 §4.2)."""
    return _b64url(hashlib.sha256(access_token.encode("utf-8")).digest())


def request_htu(public_base_url: str, path: str) -> str:
    """The request URI a proof must name: the configured public base URL plus the path.

    The authority comes from configuration, never from Host or X-Forwarded-* headers,
    which the client controls (DPOP-09). ``path`` is the raw path without the query.
    """
    if normalize_htu(public_base_url) is None or "?" in public_base_url or "#" in public_base_url:
        raise ValueError("public_base_url must be an absolute http(s) URL without query")
    if not path.startswith("/"):
        raise ValueError("path must start with '/'")
    return public_base_url.rstrip("/") + path


def check_token_scheme(
    scheme: str, cnf: Mapping[str, object] | None, *, binding_required: bool
) -> None:
    """Refuse binding downgrades before any proof is looked at.

    - a DPoP-bound token (``cnf.jkt``) sent as ``Bearer`` (RFC 9449 §7.2, DPOP-14);
    - a token sent with the ``DPoP`` scheme that is not DPoP-bound;
    - an unbound token where sender-constrained tokens are required (FAPI 2.0 §5.3.2.1).
    """
    jkt = cnf.get("jkt") if cnf is not None else None
    if scheme.lower() == "dpop":
        if not isinstance(jkt, str):
            raise DPoPError("token_binding_missing", "the access token is not DPoP-bound")
        return
    if jkt is not None:
        raise DPoPError("token_binding_missing", "a DPoP-bound token must use the DPoP scheme")
    if binding_required and (cnf is None or cnf.get("x5t#S256") is None):
        raise DPoPError("token_binding_missing", "a sender-constrained access token is required")


def verify_dpop_proof(
    headers: Headers,
    method: str,
    url: str,
    access_token: str | None,
    now: float,
    policy: DPoPPolicy,
    nonces: NonceService | None = None,
    *,
    replay: ReplayCache | None,
    token_jkt: str | None = None,
) -> DPoPProof:
    """Verify the request's DPoP proof (RFC 9449 §4.3 steps 1-12) or raise :class:`DPoPError`.

    ``url`` comes from :func:`request_htu`. With ``access_token``, the proof must carry
    its ``ath`` and ``token_jkt`` (the token's ``cnf.jkt``) must be the proof key's
    thumbprint. With ``nonces``, the proof must carry a current server nonce. With
    ``replay``, each (key, jti) is accepted once within the window (§11.1).
    """
    token = _single_proof(headers, policy)
    parts = token.split(".")
    if len(parts) != 3 or _COMPACT_JWS.fullmatch(token) is None:
        # Also rejects JWE (5 parts), unsecured JWS (empty signature) and junk.
        raise DPoPError("dpop_proof_invalid", "the DPoP proof is not a compact JWS")
    try:
        payload = _json_object(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except (ValueError, RecursionError):
        raise DPoPError("dpop_proof_invalid", "the DPoP proof is not a compact JWS") from None
    alg, key, jkt = policy.proof_header(parts[0])
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    try:
        valid = policy.verifier(alg).verify(signing_input, key, signature)
    except (PyJWTError, ValueError, TypeError):
        valid = False
    if not valid:
        raise DPoPError("dpop_proof_invalid", "DPoP proof signature does not verify")

    jti = _claim_str(payload, "jti")
    if len(jti) > DPOP_MAX_JTI_CHARS:
        raise DPoPError("dpop_proof_invalid", "DPoP proof jti is too long")
    htm = _claim_str(payload, "htm")
    htu = _claim_str(payload, "htu")
    iat = _claim_time(payload, "iat")
    if htm != method:
        raise DPoPError("dpop_proof_invalid", "DPoP proof htm does not match the request method")
    expected_htu = normalize_htu(url)
    if expected_htu is None or normalize_htu(htu) != expected_htu:
        raise DPoPError("dpop_proof_invalid", "DPoP proof htu does not match the request URI")
    if nonces is not None:
        nonce = payload.get("nonce")
        if not isinstance(nonce, str) or not nonces.is_valid(nonce, now):
            detail = "a DPoP nonce is required" if nonce is None else "the DPoP nonce is stale"
            raise DPoPError("dpop_nonce_required", detail, nonce=nonces.issue(now))
    if now - iat > policy.max_age_s:
        raise DPoPError("dpop_proof_invalid", "DPoP proof iat is too old")
    if iat - now > policy.max_future_s:
        raise DPoPError("dpop_proof_invalid", "DPoP proof iat is in the future")

    if access_token is not None:
        ath = payload.get("ath")
        if not isinstance(ath, str):
            raise DPoPError("dpop_proof_invalid", "DPoP proof lacks the ath claim")
        if not _equal(ath, access_token_hash(access_token)):
            raise DPoPError("dpop_proof_invalid", "DPoP proof ath does not match the access token")
        if token_jkt is None:
            raise DPoPError("token_binding_missing", "the access token is not DPoP-bound")
    if token_jkt is not None and not _equal(jkt, token_jkt):
        raise DPoPError(
            "dpop_binding_mismatch", "the DPoP key is not the one the token is bound to"
        )
    # Last, so that only fully valid proofs occupy the cache. The entry lives as long as
    # the proof could still be accepted: until iat + max_age.
    if replay is not None and replay.seen_before(replay_key(jkt, jti), iat + policy.max_age_s):
        raise DPoPError("dpop_proof_replayed", "this DPoP proof was already used")
    return DPoPProof(jkt=jkt, jti=jti, iat=iat, alg=alg)


def _single_proof(headers: Headers, policy: DPoPPolicy) -> str:
    values = headers.get_all("dpop")
    if not values:
        raise DPoPError("dpop_proof_missing", "the request has no DPoP proof")
    if len(values) > 1:
        raise DPoPError("dpop_proof_invalid", "the request has more than one DPoP header")
    value = values[0].strip(" \t")
    if len(value) > policy.max_proof_bytes:
        raise DPoPError("dpop_proof_invalid", "the DPoP proof is too large")
    if "," in value:
        # RFC 9449 §4.3 (1): a folded "a, b" value is two proofs in one header.
        raise DPoPError("dpop_proof_invalid", "the DPoP header holds more than one value")
    if not value:
        raise DPoPError("dpop_proof_missing", "the DPoP header is empty")
    return value


def _check_header(segment: str, policy: DPoPPolicy) -> tuple[str, object, str]:
    """RFC 9449 §4.3 (2)-(6) on the proof's JOSE header: (alg, public key, jkt)."""
    try:
        header = _json_object(_b64decode(segment))
    except (ValueError, RecursionError):
        raise DPoPError("dpop_proof_invalid", "the DPoP proof is not a compact JWS") from None
    if header.get("typ") != DPOP_TYP:
        raise DPoPError("dpop_proof_invalid", "DPoP proof typ is not dpop+jwt")
    if "crit" in header:
        # RFC 7515 §4.1.11: an extension we do not understand must not be ignored.
        raise DPoPError("dpop_proof_invalid", "DPoP proof has critical header extensions")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in policy.algorithms:
        raise DPoPError("dpop_proof_invalid", "DPoP proof alg is not accepted")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise DPoPError("dpop_proof_invalid", "DPoP proof has no jwk header")
    if _PRIVATE_JWK_MEMBERS.intersection(jwk):
        raise DPoPError("dpop_proof_invalid", "DPoP proof jwk contains private key material")
    key, jkt = _public_key(jwk, alg, policy)
    return alg, key, jkt


def _public_key(jwk: Mapping[str, object], alg: str, policy: DPoPPolicy) -> tuple[object, str]:
    """The verification key and its RFC 7638 thumbprint; the key must fit ``alg``."""
    kty, curves = _ALG_KEYS[alg]
    if jwk.get("kty") != kty or (curves and jwk.get("crv") not in curves):
        raise DPoPError("dpop_proof_invalid", "DPoP proof jwk does not fit its alg")
    try:
        key: object = policy.verifier(alg).from_jwk(dict(jwk))
        if kty == "RSA":
            size = getattr(key, "key_size", 0)
            exponent = key.public_numbers().e  # type: ignore[attr-defined]
            if not DPOP_MIN_RSA_BITS <= size <= DPOP_MAX_RSA_BITS or exponent >= 2**32:
                raise ValueError("RSA key size or exponent out of range")
        jkt = jwk_thumbprint(jwk)
    except (PyJWTError, ValueError, TypeError, KeyError, AttributeError, OverflowError):
        raise DPoPError("dpop_proof_invalid", "DPoP proof jwk is not a valid public key") from None
    return key, jkt


def _claim_str(payload: Mapping[str, object], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise DPoPError("dpop_proof_invalid", f"DPoP proof lacks the {name} claim")
    return value


def _claim_time(payload: Mapping[str, object], name: str) -> float:
    """A NumericDate (RFC 7519 §2): a finite JSON number, not a boolean."""
    value = payload.get(name)
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)  # OverflowError for integers beyond float range
            if math.isfinite(seconds):
                return seconds
    except OverflowError:
        pass
    raise DPoPError("dpop_proof_invalid", f"DPoP proof lacks a numeric {name} claim")


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # RFC 7515 §4 / RFC 8725 §3.x: duplicate member names make a JOSE object ambiguous.
    result: dict[str, object] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError("duplicate member name")
        result[name] = value
    return result


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _json_object(raw: bytes) -> dict[str, object]:
    value = json.loads(
        raw.decode("utf-8"), object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
    )
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _b64decode(segment: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error as exc:
        raise ValueError("bad base64url") from exc
    # Canonical form only (RFC 4648 §3.5): otherwise one proof has several spellings.
    if _b64url(raw) != segment:
        raise ValueError("non-canonical base64url")
    return raw


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _equal(a: str, b: str) -> bool:
    # surrogatepass: JSON may carry lone surrogates, which must not raise here.
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )
