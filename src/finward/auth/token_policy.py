"""What an access token must satisfy (``IssuerPolicy``) and how a refusal looks (``TokenError``).

Re-exported by ``finward.auth.tokens``; split out so that the bearer extraction and the
verifier can share it without an import cycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from finward.auth.jwk import SUPPORTED_ALGORITHMS
from finward.decision import Decision
from finward.errors import FinwardError, get_reason

# A token travels in one header line. nginx's default `large_client_header_buffers` holds
# 8 KiB per line and Apache's `LimitRequestFieldSize` is 8190 bytes, so no deployed client
# can rely on a larger token; joserfc caps a JWS payload at 8000 bytes for the same reason.
# Checked before any parsing (DESIGN.md: sizes before parsing, parsing before crypto).
MAX_TOKEN_BYTES = 8192

# FAPI 2.0 §5.3.2.1 (FAPI-13): accept iat/nbf up to 10 s in the future, refuse beyond 60 s.
DEFAULT_MAX_FUTURE_S = 10.0
FAPI_MAX_FUTURE_S = 60.0
# Tolerance after `exp`. 0 by default: a late AS clock only shortens a token's life, an
# early one would lengthen it. Bounded like the future skew.
MAX_LEEWAY_S = 60.0

# FAPI 2.0 §5.4.1 (FAPI-09): PS256, ES256 and EdDSA (Ed25519) only.
DEFAULT_ALGORITHMS = frozenset({"PS256", "ES256", "EdDSA"})
# RFC 9068 §2.1/§4 (ATJWT-01): explicit typing stops an ID token or a DPoP proof signed by
# the same AS from being replayed as an access token (RFC 8725 §3.11, JWTBCP-10).
DEFAULT_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# Put this in `token_types` to accept tokens without a `typ` header (legacy ASes only).
TYP_ABSENT = ""
# RFC 9068 §2.2 (ATJWT-02).
RFC9068_REQUIRED_CLAIMS = frozenset({"iss", "exp", "aud", "sub", "client_id", "iat", "jti"})
# RFC 8725 §3.8-3.9 and RFC 9068 §4: issuer, audience and expiry are never optional here,
# whatever a legacy configuration says.
ALWAYS_REQUIRED_CLAIMS = frozenset({"iss", "aud", "exp"})

# RFC 6750 §3.1 error codes for the WWW-Authenticate challenge.
_OAUTH_ERRORS = frozenset({"invalid_request", "invalid_token"})


class TokenError(FinwardError):
    """An access token was refused; ``reason`` is a catalogued reason code (401).

    ``detail`` is a fixed, safe sentence: it never echoes the token, a claim value or a
    header parameter (kid, iss ...) back, because those are attacker input.
    ``oauth_error`` is the RFC 6750 §3.1 code for the challenge: ``None`` when no token
    was offered at all (§3.1: then the challenge carries no error).
    """

    def __init__(self, reason: str, detail: str, *, oauth_error: str | None = None) -> None:
        get_reason(reason)  # an uncatalogued reason code is a bug: fail loudly here
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        if oauth_error is None and reason != "token_missing":
            oauth_error = "invalid_request" if reason == "token_in_query" else "invalid_token"
        if oauth_error is not None and oauth_error not in _OAUTH_ERRORS:
            raise ValueError(f"unknown RFC 6750 error code {oauth_error!r}")
        self.oauth_error = oauth_error

    @property
    def status(self) -> int:
        return get_reason(self.reason).status

    def challenge(self, scheme: str = "Bearer", algs: Iterable[str] = ()) -> str:
        """The ``WWW-Authenticate`` value (RFC 6750 §3; RFC 9449 §7.1 adds ``algs``)."""
        params: list[str] = []
        if scheme == "DPoP" and algs:
            params.append(f'algs="{" ".join(sorted(algs))}"')
        if self.oauth_error is not None:
            params.append(f'error="{self.oauth_error}"')
        return f"{scheme} {', '.join(params)}" if params else scheme

    def to_decision(self, scheme: str = "Bearer", algs: Iterable[str] = ()) -> Decision:
        return Decision.deny(
            self.reason,
            self.detail,
            headers=(("WWW-Authenticate", self.challenge(scheme, algs)),),
        )


@dataclass(frozen=True, slots=True)
class IssuerPolicy:
    """What a token from one authorization server must satisfy at this resource server.

    Compiled once from configuration; validation errors raise ``ValueError`` at load time,
    never per request. ``token_types`` are compared case-insensitively (RFC 7515 §4.1.9);
    include ``TYP_ABSENT`` to accept a token without ``typ``.
    """

    issuer: str
    audiences: frozenset[str]
    algorithms: frozenset[str] = DEFAULT_ALGORITHMS
    token_types: frozenset[str] = DEFAULT_TOKEN_TYPES
    max_future_s: float = DEFAULT_MAX_FUTURE_S
    leeway_s: float = 0.0
    required_claims: frozenset[str] = RFC9068_REQUIRED_CLAIMS

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise ValueError("issuer must be a non-empty string")
        audiences = frozenset(self.audiences)
        if not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise ValueError("audiences must be a non-empty set of non-empty strings")
        algorithms = frozenset(self.algorithms)
        if not algorithms:
            raise ValueError("algorithms must not be empty")
        unsupported = algorithms - SUPPORTED_ALGORITHMS
        if unsupported:
            # "none" and HS* can never be configured: RFC 8725 §3.1-3.2, FAPI-09.
            raise ValueError(f"unsupported signature algorithms: {sorted(unsupported)}")
        token_types = frozenset(t.lower() for t in self.token_types)
        if not token_types:
            raise ValueError("token_types must not be empty")
        if not 0 <= self.max_future_s <= FAPI_MAX_FUTURE_S:
            raise ValueError(f"max_future_s must be within 0..{FAPI_MAX_FUTURE_S:g} (FAPI-13)")
        if not 0 <= self.leeway_s <= MAX_LEEWAY_S:
            raise ValueError(f"leeway_s must be within 0..{MAX_LEEWAY_S:g}")
        required = frozenset(self.required_claims)
        if not required >= ALWAYS_REQUIRED_CLAIMS:
            raise ValueError(f"required_claims must include {sorted(ALWAYS_REQUIRED_CLAIMS)}")
        object.__setattr__(self, "audiences", audiences)
        object.__setattr__(self, "algorithms", algorithms)
        object.__setattr__(self, "token_types", token_types)
        object.__setattr__(self, "required_claims", required)
