"""Signing keys of the sandbox AS, one current key per algorithm, with rotation.

Rotation follows the usual AS practice (and what a resource server's JWKS cache has to
cope with): a new key becomes current for its algorithm at once, the key it replaces is
no longer used to sign but stays published in the JWKS for a grace period, so tokens it
signed keep verifying until they expire. Expiry is lazy (no timers): retired keys are
dropped when the set is read. Keys are random per process; tests reach them in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import get_default_algorithms

from finward.auth.jwk import jwk_thumbprint
from finward.clock import Clock, SystemClock

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# FAPI 2.0 §5.4.1 (FAPI-09): the three signature algorithms a FAPI AS may use.
SIGNING_ALGORITHMS: tuple[str, ...] = ("ES256", "PS256", "EdDSA")
DEFAULT_ALGORITHM = "ES256"
# FAPI 2.0 §5.4.1 (FAPI-10): RSA keys of at least 2048 bits.
RSA_KEY_BITS = 2048
# A retired key stays published this long. It must outlive the longest token it signed
# (the default lifetime is 300 s), plus a resource server's JWKS cache period.
DEFAULT_GRACE_S = 900.0
# finward.auth.jwk.MAX_JWKS_KEYS refuses a JWKS of more than 32 keys; retiring keys faster
# than they expire must not make the whole set unusable, so the oldest go first.
MAX_RETIRED_KEYS = 24


def generate_private_key(alg: str) -> PrivateKey:
    """A fresh private key for ``alg`` (one of ``SIGNING_ALGORITHMS``)."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "PS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm {alg!r}")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One AS key: ``kid``, the algorithm it signs with, and the private key (never printed)."""

    kid: str
    alg: str
    private_key: PrivateKey = field(repr=False, compare=False)
    created_at: float

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK (RFC 7517) with ``kid``, ``alg`` and ``use``: what ``/jwks`` serves."""
        jwk: dict[str, Any] = dict(
            get_default_algorithms()[self.alg].to_jwk(self.private_key.public_key(), as_dict=True)
        )
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        return jwk


def make_signing_key(alg: str, private_key: PrivateKey, created_at: float) -> SigningKey:
    """Wrap a private key; the ``kid`` is derived from its RFC 7638 thumbprint (stable, unique)."""
    probe = SigningKey("", alg, private_key, created_at)
    thumbprint = jwk_thumbprint(probe.public_jwk())
    return SigningKey(f"{alg.lower()}-{thumbprint[:22]}", alg, private_key, created_at)


@dataclass(slots=True)
class _Retired:
    key: SigningKey
    published_until: float


class SigningKeys:
    """The AS's key set: a current key per algorithm plus retired keys still in their grace.

    Not thread-safe; it lives on one event loop like the rest of the sandbox.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        algorithms: Iterable[str] = SIGNING_ALGORITHMS,
        grace_s: float = DEFAULT_GRACE_S,
        key_factory: Callable[[str], PrivateKey] = generate_private_key,
    ) -> None:
        algs = tuple(dict.fromkeys(algorithms))
        if not algs:
            raise ValueError("at least one signing algorithm is needed")
        unsupported = [a for a in algs if a not in SIGNING_ALGORITHMS]
        if unsupported:
            raise ValueError(f"unsupported signing algorithms: {', '.join(unsupported)}")
        if grace_s < 0:
            raise ValueError("grace_s must not be negative")
        self._clock = clock if clock is not None else SystemClock()
        self._grace_s = grace_s
        self._factory = key_factory
        now = self._clock.now()
        self._current: dict[str, SigningKey] = {
            alg: make_signing_key(alg, key_factory(alg), now) for alg in algs
        }
        self._retired: list[_Retired] = []

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self._current)

    @property
    def grace_s(self) -> float:
        return self._grace_s

    @property
    def clock(self) -> Clock:
        return self._clock

    def current(self, alg: str = DEFAULT_ALGORITHM) -> SigningKey:
        """The key that signs new tokens with ``alg``; ``KeyError`` if the AS has none."""
        return self._current[alg]

    def current_keys(self) -> Mapping[str, SigningKey]:
        return MappingProxyType(dict(self._current))

    def rotate(self, alg: str | None = None) -> list[SigningKey]:
        """Make a new current key for ``alg`` (or every algorithm); returns the new keys.

        The replaced keys stay published for ``grace_s`` seconds from now.
        """
        if alg is not None and alg not in self._current:
            raise KeyError(alg)
        now = self._clock.now()
        created: list[SigningKey] = []
        for name in (alg,) if alg is not None else tuple(self._current):
            old = self._current[name]
            self._retired.append(_Retired(old, now + self._grace_s))
            self._current[name] = make_signing_key(name, self._factory(name), now)
            created.append(self._current[name])
        del self._retired[:-MAX_RETIRED_KEYS]
        return created

    def published(self) -> list[SigningKey]:
        """Current keys first, then retired keys still within their grace period."""
        now = self._clock.now()
        self._retired = [r for r in self._retired if r.published_until > now]
        return [*self._current.values(), *(r.key for r in reversed(self._retired))]

    def find(self, kid: str) -> SigningKey | None:
        """A published key by ``kid`` (current or in grace), for verifying our own tokens."""
        for key in self.published():
            if key.kid == kid:
                return key
        return None

    def jwks(self) -> dict[str, Any]:
        """The JWKS document (RFC 7517 §5): public members only."""
        return {"keys": [key.public_jwk() for key in self.published()]}
