"""JSON Web Key Sets (RFC 7517) parsed into an immutable set of verification keys.

Only what FAPI 2.0 §5.4 lets a resource server verify with survives parsing: RSA keys of
at least 2048 bits, EC keys on P-256/P-384/P-521 whose point is on the curve, and Ed25519
keys. Everything else is skipped and reported in ``KeySet.skipped`` so an operator can see
why a key the AS publishes is not used. Sans-IO: fetching the document is the caller's job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import Algorithm, ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from finward.errors import FinwardError

# A JWKS is fetched from the AS's jwks_uri and parsed on every rotation. A few dozen keys
# with x5c chains fit in well under 64 KiB; the cap bounds the JSON parse of a hostile or
# broken endpoint (DESIGN.md: parsers have size limits).
MAX_JWKS_BYTES = 256 * 1024
# Keys per set. A token without `kid` is tried against every compatible key, so this also
# bounds the signature checks one forged token can cost. ASes publish a handful of keys
# (current, next, previous); 32 leaves room for several algorithms per generation.
MAX_JWKS_KEYS = 32
# FAPI 2.0 §5.4.1 (FAPI-10): RSA keys shall have a minimum length of 2048 bits.
MIN_RSA_BITS = 2048
# Verification cost grows with the modulus; no AS needs more than 8192 bits and larger
# keys only make each forged token more expensive to refuse.
MAX_RSA_BITS = 8192

PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

# RFC 7518 §3.3-3.5 and RFC 8037 §3.1: which JWS algorithms each key type can verify.
# The curve pins the hash for ECDSA (RFC 7518 §3.4), so P-256 verifies ES256 only.
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_CURVES: Mapping[str, tuple[ec.EllipticCurve, int, str]] = MappingProxyType(
    {
        "P-256": (ec.SECP256R1(), 32, "ES256"),
        "P-384": (ec.SECP384R1(), 48, "ES384"),
        "P-521": (ec.SECP521R1(), 66, "ES512"),
    }
)
# "Ed25519" is the fully-specified name of RFC 9864; "EdDSA" the polymorphic one FAPI uses.
_ED25519_ALGS = frozenset({"EdDSA", "Ed25519"})

# One stateless verifier per algorithm, from PyJWT (which delegates to `cryptography`).
# No HMAC and no "none" here: a symmetric or unsigned token can never reach a verifier.
_VERIFIERS: Mapping[str, Algorithm] = MappingProxyType(
    {
        "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
        "RS384": RSAAlgorithm(RSAAlgorithm.SHA384),
        "RS512": RSAAlgorithm(RSAAlgorithm.SHA512),
        "PS256": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256),
        "PS384": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA384),
        "PS512": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA512),
        "ES256": ECAlgorithm(ECAlgorithm.SHA256),
        "ES384": ECAlgorithm(ECAlgorithm.SHA384),
        "ES512": ECAlgorithm(ECAlgorithm.SHA512),
        "EdDSA": OKPAlgorithm(),
        "Ed25519": OKPAlgorithm(),
    }
)
SUPPORTED_ALGORITHMS: frozenset[str] = frozenset(_VERIFIERS)

# Members that only a private or symmetric JWK carries (RFC 7518 §6.2.2, §6.3.2, §6.4).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# RFC 7638 §3.2: the required members hashed for each key type, in lexicographic order.
_THUMBPRINT_MEMBERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "RSA": ("e", "kty", "n"),
        "EC": ("crv", "kty", "x", "y"),
        "OKP": ("crv", "kty", "x"),
        "oct": ("k", "kty"),
    }
)
_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_UNUSED_BITS: Mapping[int, int] = MappingProxyType({2: 0b1111, 3: 0b11})


class JwksError(FinwardError, ValueError):
    """The JWKS document as a whole is unusable (too big, not JSON, no ``keys`` list)."""


def b64url_decode(segment: str) -> bytes:
    """Decode unpadded base64url (RFC 7515 §2), refusing every non-canonical spelling.

    ``base64.urlsafe_b64decode`` silently drops foreign characters and ignores the unused
    low bits of the last character, so several strings decode to the same bytes. Refusing
    them keeps tokens non-malleable: one byte string, one spelling, one cache key.
    """
    remainder = len(segment) % 4
    if remainder == 1 or not segment.isascii():
        raise ValueError("not base64url")
    data = segment.encode("ascii")
    if b"+" in data or b"/" in data or b"=" in data:  # standard alphabet or padding
        raise ValueError("not base64url")
    padded = data.translate(_URLSAFE_TO_STANDARD) + b"=" * (-remainder % 4)
    raw = binascii.a2b_base64(padded, strict_mode=True)  # binascii.Error is a ValueError
    # RFC 4648 §3.5: the final character's unused low bits must be zero.
    if remainder and _B64URL_ALPHABET.index(segment[-1]) & _UNUSED_BITS[remainder]:
        raise ValueError("non-canonical base64url")
    return raw


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, object]) -> str:
    """RFC 7638 JWK SHA-256 thumbprint, base64url: the value DPoP puts in ``cnf.jkt``.

    Only the required public members enter the hash, so a private JWK has the same
    thumbprint as its public half. Raises ``ValueError`` for an unknown ``kty`` or a
    missing or non-string member.
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError("unsupported kty for a thumbprint")
    canonical: dict[str, str] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise ValueError(f"JWK member {name!r} is missing or not a string")
        canonical[name] = value
    # RFC 7638 §3.3: no whitespace, members in lexicographic order, UTF-8.
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False)
    return b64url_encode(hashlib.sha256(text.encode("utf-8")).digest())


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key and the JWS algorithms it may verify (RFC 8725 §3.1: fixed per key)."""

    kid: str | None  # opaque: compared for equality only, never parsed or formatted
    kty: str
    crv: str | None
    alg: str | None  # the JWK's own "alg" pin, if it had one
    algorithms: frozenset[str]
    thumbprint: str
    public_key: PublicKey = field(repr=False, compare=False)

    def allows(self, alg: str) -> bool:
        return alg in self.algorithms

    def verify(self, alg: str, signing_input: bytes, signature: bytes) -> bool:
        """True only when ``alg`` is one this key may verify and the signature holds.

        Checking ``allows`` here, at the lowest level, makes key confusion impossible
        whatever the caller does: an RSA key never meets an ES256 or HS256 verifier.
        """
        verifier = _VERIFIERS.get(alg)
        if verifier is None or not self.allows(alg):
            return False
        try:
            return bool(verifier.verify(signing_input, self.public_key, signature))
        except (ValueError, TypeError):  # malformed signature bytes: not a valid signature
            return False


@dataclass(frozen=True, slots=True)
class SkippedKey:
    """A JWKS entry that will never verify anything, and why (for operators, not clients)."""

    index: int
    kid: str | None
    reason: str  # private_key | weak_key | not_for_signing | unsupported | malformed | duplicate
    detail: str


@dataclass(frozen=True, slots=True)
class KeySet:
    """Immutable set of verification keys, indexed by ``kid`` (FAPI 2.0 §5.4.3, FAPI-12)."""

    keys: tuple[VerificationKey, ...] = ()
    skipped: tuple[SkippedKey, ...] = ()
    _by_kid: Mapping[str, tuple[VerificationKey, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_kid: dict[str, tuple[VerificationKey, ...]] = {}
        for key in self.keys:
            if key.kid is not None:
                by_kid[key.kid] = (*by_kid.get(key.kid, ()), key)
        object.__setattr__(self, "_by_kid", MappingProxyType(by_kid))

    def __len__(self) -> int:
        return len(self.keys)

    def has_kid(self, kid: str) -> bool:
        return kid in self._by_kid

    def candidates(self, kid: str | None, alg: str) -> tuple[VerificationKey, ...]:
        """Keys that may verify a token with this ``kid`` and ``alg``.

        Duplicate ``kid``s are disambiguated by what each key can verify (kty/crv/alg,
        FAPI-12). A token without ``kid`` is tried against every compatible key; that is
        bounded by ``MAX_JWKS_KEYS``.
        """
        pool = self.keys if kid is None else self._by_kid.get(kid, ())
        return tuple(key for key in pool if key.allows(alg))

    def holds(self, kid: str | None, alg: str, thumbprint: str) -> bool:
        """Whether the set still has this key, still allowed to verify ``alg``.

        A cached verification is only as good as the key behind it: once the AS rotates
        a key out of its JWKS, tokens it signed must be verified again (and fail).
        """
        return any(key.thumbprint == thumbprint for key in self.candidates(kid, alg))


def parse_jwks_json(raw: bytes | str) -> KeySet:
    """Parse a JWKS response body: size first (``MAX_JWKS_BYTES``), then JSON, then keys."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > MAX_JWKS_BYTES:
        raise JwksError(f"JWKS document exceeds {MAX_JWKS_BYTES} bytes")
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise JwksError("JWKS document is not valid JSON") from exc
    if not isinstance(document, dict):
        raise JwksError("JWKS document is not a JSON object")
    return parse_jwks(document)


def parse_jwks(document: Mapping[str, object]) -> KeySet:
    """Turn a JWKS (RFC 7517 §5) into a ``KeySet``; unusable keys land in ``skipped``."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise JwksError('JWKS document has no "keys" array')
    if len(entries) > MAX_JWKS_KEYS:
        raise JwksError(f"JWKS document has more than {MAX_JWKS_KEYS} keys")
    keys: list[VerificationKey] = []
    skipped: list[SkippedKey] = []
    seen: set[tuple[str | None, str, str | None]] = set()
    for index, entry in enumerate(entries):
        kid = entry.get("kid") if isinstance(entry, dict) else None
        kid = kid if isinstance(kid, str) else None
        try:
            key = _parse_key(entry)
        except _SkipKey as skip:
            skipped.append(SkippedKey(index, kid, skip.reason, skip.detail))
            continue
        identity = (key.kid, key.thumbprint, key.alg)
        if identity in seen:
            skipped.append(SkippedKey(index, kid, "duplicate", "same kid, key and alg as before"))
            continue
        seen.add(identity)
        keys.append(key)
    return KeySet(tuple(keys), tuple(skipped))


class _SkipKey(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _parse_key(entry: object) -> VerificationKey:
    if not isinstance(entry, dict):
        raise _SkipKey("malformed", "key is not a JSON object")
    # Never touch private material, not even to parse it (RFC 7517 §9.2 / DPOP-07 spirit).
    if _PRIVATE_MEMBERS.intersection(entry):
        raise _SkipKey("private_key", "key carries private or symmetric material")
    kid = entry.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _SkipKey("malformed", "kid is not a string")
    use = entry.get("use")
    if use is not None and use != "sig":
        raise _SkipKey("not_for_signing", 'use is not "sig"')
    key_ops = entry.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise _SkipKey("not_for_signing", 'key_ops does not include "verify"')
    alg = entry.get("alg")
    if alg is not None and not isinstance(alg, str):
        raise _SkipKey("malformed", "alg is not a string")
    kty = entry.get("kty")
    if kty == "RSA":
        public_key, crv, algorithms = _parse_rsa(entry)
    elif kty == "EC":
        public_key, crv, algorithms = _parse_ec(entry)
    elif kty == "OKP":
        public_key, crv, algorithms = _parse_okp(entry)
    else:
        raise _SkipKey("unsupported", "kty is not RSA, EC or OKP")
    if alg is not None:
        if alg not in algorithms:
            raise _SkipKey("unsupported", "alg is not a signature algorithm for this key")
        algorithms = frozenset({alg})
    return VerificationKey(
        kid=kid,
        kty=kty,
        crv=crv,
        alg=alg,
        algorithms=algorithms,
        thumbprint=jwk_thumbprint(entry),
        public_key=public_key,
    )


def _member_bytes(entry: Mapping[str, Any], name: str) -> bytes:
    value = entry.get(name)
    if not isinstance(value, str) or not value:
        raise _SkipKey("malformed", f"member {name!r} is missing or not a string")
    try:
        return b64url_decode(value)
    except ValueError:
        raise _SkipKey("malformed", f"member {name!r} is not base64url") from None


def _parse_rsa(entry: Mapping[str, Any]) -> tuple[PublicKey, None, frozenset[str]]:
    n = int.from_bytes(_member_bytes(entry, "n"), "big")
    e = int.from_bytes(_member_bytes(entry, "e"), "big")
    bits = n.bit_length()
    if bits < MIN_RSA_BITS:  # FAPI 2.0 §5.4.1 (FAPI-10)
        raise _SkipKey("weak_key", f"RSA key has {bits} bits, fewer than {MIN_RSA_BITS}")
    if bits > MAX_RSA_BITS:
        raise _SkipKey("unsupported", f"RSA key has more than {MAX_RSA_BITS} bits")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key(), None, _RSA_ALGS
    except ValueError:  # even modulus, e < 3, e >= n ...
        raise _SkipKey("malformed", "invalid RSA public key") from None


def _parse_ec(entry: Mapping[str, Any]) -> tuple[PublicKey, str, frozenset[str]]:
    crv = entry.get("crv")
    spec = _EC_CURVES.get(crv) if isinstance(crv, str) else None
    if crv is None or spec is None:
        raise _SkipKey("unsupported", "EC curve is not P-256, P-384 or P-521")
    curve, size, alg = spec
    x, y = _member_bytes(entry, "x"), _member_bytes(entry, "y")
    if len(x) != size or len(y) != size:  # RFC 7518 §6.2.1.2: full-length coordinates
        raise _SkipKey("malformed", "EC coordinates have the wrong length")
    try:
        # RFC 8725 §3.4 (JWTBCP-04): cryptography refuses a point that is not on the curve,
        # which stops invalid-curve attacks.
        point = ec.EllipticCurvePublicKey.from_encoded_point(curve, b"\x04" + x + y)
    except ValueError:
        raise _SkipKey("malformed", "EC point is not on the curve") from None
    return point, crv, frozenset({alg})


def _parse_okp(entry: Mapping[str, Any]) -> tuple[PublicKey, str, frozenset[str]]:
    if entry.get("crv") != "Ed25519":  # FAPI 2.0 §5.4.1: EdDSA with Ed25519 only
        raise _SkipKey("unsupported", "OKP curve is not Ed25519")
    x = _member_bytes(entry, "x")
    if len(x) != 32:
        raise _SkipKey("malformed", "Ed25519 key is not 32 bytes")
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(x), "Ed25519", _ED25519_ALGS
    except ValueError:
        raise _SkipKey("malformed", "invalid Ed25519 public key") from None
