"""The authentication policy: who is calling, with what proof, and may they call this.

Order per request (cheapest and most decisive first; every step runs on every request,
cache hit or not, see WSO2 #11521):

1. the operation's rule (``auth.rules``); ``token: off`` ends here;
2. tokens anywhere but ``Authorization`` are refused (query, cookie; the adapter checks
   form bodies): FAPI-05;
3. ``Authorization: Bearer|DPoP`` is parsed; no token is fine only for ``optional``;
4. the token is verified (``TokenVerifier``: JWT with the cached signature check, or
   introspection), then revocation (``jti``) and suspension (``client_id``);
5. sender constraint: a DPoP-bound token needs a valid, unreplayed proof; a
   certificate-bound token the matching client certificate; ``required`` refuses an
   unbound token (FAPI-08, DPOP-14, MTLS-01);
6. scopes (FAPI-07), then the eIDAS TPP checks: roles, suspension, and agreement of the
   certificate's organisation with the token's client (RTS-15..17, BG-11).

Sans-IO: the verifier and the state store are protocols the adapter implements.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

from finward.auth.bearer import PresentedToken, extract_bearer, is_token_in_query
from finward.auth.dpop import (
    DPoPError,
    DPoPPolicy,
    check_token_scheme,
    request_htu,
    verify_dpop_proof,
)
from finward.auth.eidas import (
    TppCertificateError,
    TppIdentity,
    parse_tpp_certificate,
)
from finward.auth.mtls import (
    X5T_S256,
    MtlsError,
    certificate_thumbprint,
    check_mtls_binding,
    tls_thumbprint,
)
from finward.auth.replay import NonceService, replay_key
from finward.auth.rules import OperationAuth
from finward.auth.token_policy import TokenError
from finward.auth.tokens import VerifiedToken, peek_unverified
from finward.clock import Clock
from finward.core.pipeline import Context
from finward.decision import Decision, DenialError
from finward.http import RequestView, TlsInfo

log = logging.getLogger("finward.auth")

# Parsed eIDAS identities (or the refusal), by certificate thumbprint. A TPP presents the
# same certificate on every connection, so parsing once per certificate is enough.
TPP_CACHE_ENTRIES = 1024
# Identity headers carry claim values to the upstream: bounded, no control characters.
MAX_IDENTITY_VALUE_CHARS = 1024
_ACCESS_TOKEN_COOKIE = "access_token"
# A state-store outage refuses every request; one log line per this many seconds.
STORE_LOG_INTERVAL_S = 10.0


class TokenVerifier(Protocol):
    """Turns a presented token into a verified one, or raises TokenError/DenialError."""

    async def verify(self, token: str) -> VerifiedToken: ...

    def stamp(self, token: VerifiedToken) -> object | None:
        """An opaque note of what ``token`` was verified against; None: no shortcut."""
        ...

    def revalidate(self, token: VerifiedToken, stamp: object) -> bool:
        """True when ``token`` still stands at ``stamp`` (time checks re-run, raising
        TokenError on expiry); False when it must be verified again."""
        ...


class AuthState(Protocol):
    """The part of the state store (``finward.storage``) this policy reads and writes."""

    async def seen_before(self, key: str, expires_at: float) -> bool: ...

    def is_token_revoked(self, jti: str) -> bool: ...

    def is_client_suspended(self, client_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class IdentityHeaders:
    client_id: str | None
    tpp_organisation: str | None
    subject: str | None
    consent_id: str | None
    scopes: str | None

    def names(self) -> frozenset[str]:
        values = (self.client_id, self.tpp_organisation, self.subject, self.consent_id)
        return frozenset(n.lower() for n in (*values, self.scopes) if n)


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Gateway-wide authentication settings, compiled from ``auth`` in the configuration."""

    dpop: DPoPPolicy
    identity_headers: IdentityHeaders
    public_base_url: str | None = None
    nonces: NonceService | None = None
    forward_token: bool = False
    consent_claim: str = "consent_id"
    tpp_clients: Mapping[str, str] = field(default_factory=dict)
    require_qc_compliance: bool = True
    issuers: frozenset[str] = frozenset()  # trusted `iss` values (for the cookie check)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request (``ctx.principal``)."""

    token: VerifiedToken = field(repr=False)
    scheme: str  # "Bearer" or "DPoP"
    binding: str | None  # "dpop", "mtls" or None
    tpp: TppIdentity | None
    consent_id: str | None

    @property
    def client_id(self) -> str | None:
        return self.token.client_id

    @property
    def organisation_id(self) -> str | None:
        return self.tpp.organization_id if self.tpp is not None else None


class _Refusal(Exception):
    def __init__(self, decision: Decision) -> None:
        self.decision = decision


class AuthPolicy:
    name = "auth"
    is_async = True

    def __init__(
        self,
        rules: Mapping[tuple[str, str, str], OperationAuth],
        settings: AuthSettings,
        verifier: TokenVerifier,
        state: AuthState,
        clock: Clock,
    ) -> None:
        self.rules = rules
        self.settings = settings
        self.verifier = verifier
        self.state = state
        self.clock = clock
        self._tpp_cache: OrderedDict[str, TppIdentity | TppCertificateError] = OrderedDict()
        self._store_logged_at = -STORE_LOG_INTERVAL_S

    async def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        route = ctx.route
        if route is None:
            return None
        op = route.operation
        rule = self.rules.get((route.mount.api, op.method, op.path_template))
        if rule is None:  # every routed operation has a rule; never let a gap pass
            return Decision.deny("internal_error", "no authentication rule for this operation")
        if rule.token == "off":
            return None
        ctx.check_form_token = True
        try:
            principal = await self._authenticate(request, rule, ctx)
        except _Refusal as refusal:
            return _styled(refusal.decision, rule)
        if principal is None:
            return None
        ctx.principal = principal
        if not self.settings.forward_token:
            ctx.upstream_drop = ctx.upstream_drop | {"authorization"}
        ctx.upstream_headers.extend(self._identity_headers(principal))
        if principal.binding == "dpop" and self.settings.nonces is not None:
            ctx.response_headers.append(
                ("DPoP-Nonce", self.settings.nonces.issue(self.clock.now()))
            )
        return None

    # -- steps ------------------------------------------------------------------------

    async def _authenticate(
        self, request: RequestView, rule: OperationAuth, ctx: Context
    ) -> Principal | None:
        headers = request.headers
        if request.query and is_token_in_query(request.query):
            self._token_refusal(TokenError("token_in_query", "tokens go in Authorization"), rule)
        if "cookie" in headers and _token_in_cookie(
            headers.get_all("cookie"), self.settings.issuers
        ):
            self._token_refusal(
                TokenError("token_in_cookie", "tokens go in Authorization"), rule, error=False
            )
        remembered = self._remembered(request)
        if remembered is not None:
            presented, token = remembered
        else:
            try:
                presented = extract_bearer(headers, "")
            except TokenError as exc:
                anonymous = exc.reason == "token_missing" and "authorization" not in headers
                if anonymous and rule.token == "optional":
                    return None  # no credentials at all, on an operation that allows that
                self._token_refusal(exc, rule)
            try:
                token = await self.verifier.verify(presented.token)
            except TokenError as exc:
                self._token_refusal(exc, rule, scheme=presented.scheme)
            except DenialError as exc:  # JWKS or introspection unavailable: 503, fail closed
                raise _Refusal(exc.to_decision()) from None
            self._remember(request, presented, token)
        # Provisional, so a refusal below is still logged with the verified client.
        ctx.principal = Principal(token, presented.scheme, None, None, None)
        self._check_state(token, rule, presented.scheme)
        binding = await self._check_binding(request, presented.scheme, presented.token, token, rule)
        missing = rule.scopes_missing(token.scopes)
        if missing is not None:
            scope = " ".join(sorted(missing))
            raise _Refusal(
                Decision.deny(
                    "insufficient_scope",
                    "the access token lacks a scope this operation needs",
                    headers=(
                        (
                            "WWW-Authenticate",
                            f'{presented.scheme} error="insufficient_scope", scope="{scope}"',
                        ),
                    ),
                )
            )
        tpp = self._check_tpp(request.tls, token, binding, rule, presented.scheme)
        consent = token.claims.get(self.settings.consent_claim)
        return Principal(
            token=token,
            scheme=presented.scheme,
            binding=binding,
            tpp=tpp,
            consent_id=consent if isinstance(consent, str) and consent else None,
        )

    def _remembered(self, request: RequestView) -> tuple[PresentedToken, VerifiedToken] | None:
        """The token verified on an earlier request of this connection, when the client
        sends the very same Authorization header and the verifier vouches that nothing it
        was verified against changed. Everything after verification (revocation,
        suspension, binding, scopes, TPP) still runs for this request."""
        memo = request.connection_memo
        if memo is None:
            return None
        entry = memo.get(self)
        if entry is None:
            return None
        value, presented, token, stamp = entry
        values = request.headers.get_all("authorization")
        if len(values) != 1 or values[0] != value:
            return None
        try:
            if not self.verifier.revalidate(token, stamp):
                return None
        except TokenError:
            del memo[self]
            return None  # the full path refuses it with the right reason
        return presented, token

    def _remember(
        self, request: RequestView, presented: PresentedToken, token: VerifiedToken
    ) -> None:
        memo = request.connection_memo
        if memo is None:
            return
        stamp = self.verifier.stamp(token)
        if stamp is None:
            memo.pop(self, None)
            return
        values = request.headers.get_all("authorization")
        if len(values) == 1:
            memo[self] = (values[0], presented, token, stamp)

    def _check_state(self, token: VerifiedToken, rule: OperationAuth, scheme: str) -> None:
        try:
            revoked = token.jti is not None and self.state.is_token_revoked(token.jti)
            suspended = token.client_id is not None and self.state.is_client_suspended(
                token.client_id
            )
        except Exception as exc:
            self._store_failed(exc)
            raise _Refusal(Decision.deny("state_store_unavailable")) from None
        if revoked:
            self._token_refusal(TokenError("token_revoked", "the token was revoked"), rule, scheme)
        if suspended:
            raise _Refusal(
                Decision.deny(
                    "client_suspended",
                    "the client is suspended",
                    headers=(("WWW-Authenticate", f'{scheme} error="invalid_token"'),),
                )
            )

    async def _check_binding(
        self,
        request: RequestView,
        scheme: str,
        raw_token: str,
        token: VerifiedToken,
        rule: OperationAuth,
    ) -> str | None:
        cnf = token.cnf
        jkt = cnf.get("jkt") if cnf is not None else None
        x5t = cnf.get(X5T_S256) if cnf is not None else None
        binding: str | None = None
        if cnf is not None and jkt is None and x5t is None:
            # Bound by a method this gateway cannot check (cnf.jwk, cnf.kid, a misspelt
            # member, explicit nulls): using it as a bearer token would drop the binding.
            self._token_refusal(
                TokenError("token_binding_missing", "the token's cnf names no supported binding"),
                rule,
                scheme,
            )
        try:
            check_token_scheme(scheme, cnf, binding_required=False)
            if jkt is not None:
                await self._check_dpop(request, raw_token, str(jkt))
                binding = "dpop"
            if x5t is not None:
                check_mtls_binding(cnf, request.tls)
                binding = binding or "mtls"
        except DPoPError as exc:
            headers = exc.challenge_headers(sorted(self.settings.dpop.algorithms))
            raise _Refusal(Decision.deny(exc.reason, exc.detail, headers=headers)) from None
        except MtlsError as exc:
            challenge = f'{scheme} error="invalid_token"'
            raise _Refusal(
                Decision.deny(exc.reason, exc.detail, headers=(("WWW-Authenticate", challenge),))
            ) from None
        if rule.sender_constraint == "required":
            wanted = rule.sender_method
            if (
                binding is None
                or (wanted == "mtls" and x5t is None)
                or (wanted == "dpop" and jkt is None)
            ):
                what = {
                    "mtls": "a certificate-bound (mTLS) access token",
                    "dpop": "a DPoP-bound access token",
                }.get(wanted, "a sender-constrained (mTLS or DPoP) access token")
                self._token_refusal(
                    TokenError("token_binding_missing", f"this operation needs {what}"),
                    rule,
                    scheme,
                )
        return binding

    async def _check_dpop(self, request: RequestView, raw_token: str, jkt: str) -> None:
        settings = self.settings
        if settings.public_base_url is None:  # the config check requires it; never guess
            raise DPoPError("dpop_proof_invalid", "the gateway has no public_base_url for htu")
        now = self.clock.now()
        proof = verify_dpop_proof(
            request.headers,
            request.method,
            request_htu(settings.public_base_url, request.path),
            raw_token,
            now,
            settings.dpop,
            settings.nonces,
            replay=None,  # recorded below, in the shared store, once everything else passed
            token_jkt=jkt,
        )
        expires = proof.iat + settings.dpop.max_age_s
        try:
            replayed = await self.state.seen_before(replay_key(proof.jkt, proof.jti), expires)
        except Exception as exc:
            self._store_failed(exc)
            raise _Refusal(Decision.deny("state_store_unavailable")) from None
        if replayed:
            raise DPoPError("dpop_proof_replayed", "this DPoP proof was already used")

    def _check_tpp(
        self,
        tls: TlsInfo | None,
        token: VerifiedToken,
        binding: str | None,
        rule: OperationAuth,
        scheme: str,
    ) -> TppIdentity | None:
        der = tls.client_cert_der if tls is not None else None
        if not rule.tpp_roles:
            # Not required here. A QWAC that parses, belongs to the token's client and is
            # not suspended still names the TPP to the upstream; one that does not is
            # not named (and a suspended organisation is refused).
            if der is None:
                return None
            found = self._tpp_identity(der, tls)
            if not isinstance(found, TppIdentity):
                return None
            if self._is_suspended(found.organization_id):
                self._refuse_tpp("client_suspended", "the TPP is suspended", scheme)
            return found if self._agrees(found, token, binding) else None
        if der is None:
            self._refuse_tpp("client_cert_required", "this operation needs a QWAC", scheme)
        identity = self._tpp_identity(der, tls)
        if isinstance(identity, TppCertificateError):
            self._refuse_tpp(identity.reason, identity.detail, scheme)
        if identity.roles.isdisjoint(rule.tpp_roles):  # RTS-17: any one listed role will do
            needed = " or ".join(sorted(rule.tpp_roles))
            self._refuse_tpp(
                "tpp_role_invalid", f"the TPP certificate lacks the role {needed}", scheme
            )
        try:
            suspended = self.state.is_client_suspended(identity.organization_id)
        except Exception as exc:
            self._store_failed(exc)
            raise _Refusal(Decision.deny("state_store_unavailable")) from None
        if suspended:
            self._refuse_tpp("client_suspended", "the TPP is suspended", scheme)
        mapped = self.settings.tpp_clients.get(token.client_id or "")
        if mapped is not None:
            agrees = mapped == identity.organization_id
        else:
            # A certificate-bound token whose certificate is this QWAC ties them together.
            agrees = (
                binding is not None
                and token.cnf is not None
                and (token.cnf.get(X5T_S256) == identity.cert_thumbprint)
            )
        if not agrees:
            self._refuse_tpp(
                "tpp_client_mismatch",
                "the certificate's organisation is not the token's client",
                scheme,
            )
        return identity

    def _agrees(self, identity: TppIdentity, token: VerifiedToken, binding: str | None) -> bool:
        """BG-11: the certificate's organisation is the token's client's organisation."""
        mapped = self.settings.tpp_clients.get(token.client_id or "")
        if mapped is not None:
            return mapped == identity.organization_id
        # A certificate-bound token whose certificate is this QWAC ties them together.
        return (
            binding is not None
            and token.cnf is not None
            and token.cnf.get(X5T_S256) == identity.cert_thumbprint
        )

    def _is_suspended(self, organisation_id: str) -> bool:
        try:
            return self.state.is_client_suspended(organisation_id)
        except Exception as exc:
            self._store_failed(exc)
            raise _Refusal(Decision.deny("state_store_unavailable")) from None

    def _tpp_identity(self, der: bytes, tls: TlsInfo | None) -> TppIdentity | TppCertificateError:
        key = (tls_thumbprint(tls) if tls is not None else None) or certificate_thumbprint(der)
        cache = self._tpp_cache
        cached = cache.get(key)
        if cached is not None:
            return cached
        result: TppIdentity | TppCertificateError
        try:
            result = parse_tpp_certificate(
                der, require_qc_compliance=self.settings.require_qc_compliance
            )
        except TppCertificateError as exc:
            result = exc
        cache[key] = result
        if len(cache) > TPP_CACHE_ENTRIES:
            cache.popitem(last=False)
        return result

    def _store_failed(self, exc: Exception) -> None:
        """Log a store outage once per STORE_LOG_INTERVAL_S, not once per request."""
        now = self.clock.monotonic()
        if now - self._store_logged_at >= STORE_LOG_INTERVAL_S:
            self._store_logged_at = now
            log.warning("state store unavailable, refusing requests (fail closed): %r", exc)

    # -- refusals ---------------------------------------------------------------------

    def _token_refusal(
        self,
        exc: TokenError,
        rule: OperationAuth,
        scheme: str | None = None,
        *,
        error: bool = True,
    ) -> NoReturn:
        algs = self.settings.dpop.algorithms
        challenges: list[tuple[str, str]] = []
        if scheme == "DPoP":
            challenges.append(("WWW-Authenticate", exc.challenge("DPoP", algs)))
        else:
            bearer_ok = not (rule.sender_constraint == "required" and rule.sender_method == "dpop")
            if bearer_ok or scheme == "Bearer":
                value = exc.challenge("Bearer") if error else "Bearer"
                challenges.append(("WWW-Authenticate", value))
            if rule.accepts_dpop:
                challenges.append(("WWW-Authenticate", f'DPoP algs="{" ".join(sorted(algs))}"'))
        raise _Refusal(Decision.deny(exc.reason, exc.detail, headers=tuple(challenges)))

    @staticmethod
    def _refuse_tpp(reason: str, detail: str, scheme: str) -> NoReturn:
        challenge = f'{scheme} error="invalid_request"'
        raise _Refusal(Decision.deny(reason, detail, headers=(("WWW-Authenticate", challenge),)))

    def _identity_headers(self, principal: Principal) -> list[tuple[str, str]]:
        names = self.settings.identity_headers
        token = principal.token
        organisation = principal.organisation_id
        if organisation is None and token.client_id is not None:
            organisation = self.settings.tpp_clients.get(token.client_id)
        pairs = (
            (names.client_id, token.client_id),
            (names.tpp_organisation, organisation),
            (names.subject, token.sub),
            (names.consent_id, principal.consent_id),
            (names.scopes, " ".join(sorted(token.scopes)) if token.scopes else None),
        )
        return [(n, v) for n, v in pairs if n and v is not None and _header_safe(v)]


def _header_safe(value: str) -> bool:
    return len(value) <= MAX_IDENTITY_VALUE_CHARS and value.isprintable() and value.isascii()


def _token_in_cookie(values: list[str], issuers: frozenset[str]) -> bool:
    """A cookie named access_token, or one holding a JWT from a trusted issuer.

    Other JWT-shaped cookies (an application's own session JWT) are left alone: they are
    not access tokens for this API.
    """
    for header in values:
        for pair in header.split(";"):
            name, _, value = pair.strip().partition("=")
            if name.strip().lower() == _ACCESS_TOKEN_COOKIE:
                return True
            value = value.strip().strip('"')
            if value.startswith("eyJ") and value.count(".") == 2:
                iss, _ = peek_unverified(value)
                if iss is not None and iss in issuers:
                    return True
    return False


# Berlin Group NextGenPSD2 message codes (BG 1.3.x, MessageCode401_*): on routes with
# ``error_format: berlin-group`` a refusal carries the code and the BG status.
_BG_CODES: Mapping[str, tuple[str, int]] = {
    "token_expired": ("TOKEN_EXPIRED", 401),
    "token_inactive": ("TOKEN_UNKNOWN", 401),
    "token_key_unknown": ("TOKEN_UNKNOWN", 401),
    "insufficient_scope": ("TOKEN_INVALID", 401),
    "client_cert_required": ("CERTIFICATE_MISSING", 401),
    "tpp_certificate_invalid": ("CERTIFICATE_INVALID", 401),
    "tpp_client_mismatch": ("CERTIFICATE_INVALID", 401),
    "tpp_role_invalid": ("ROLE_INVALID", 401),
    "client_suspended": ("CERTIFICATE_BLOCKED", 401),
}


def berlin_group_code(reason: str, status: int) -> tuple[str, int] | None:
    """The BG message code and status for a refusal, or None (e.g. a 503)."""
    found = _BG_CODES.get(reason)
    if found is not None:
        return found
    if status == 401:
        return "TOKEN_INVALID", 401
    return None


def _styled(decision: Decision, rule: OperationAuth) -> Decision:
    if rule.error_format != "berlin-group" or decision.reason is None:
        return decision
    found = berlin_group_code(decision.reason, decision.status)
    if found is None:
        return decision
    code, status = found
    return Decision(
        allowed=False,
        status=status,
        reason=decision.reason,
        detail=decision.detail,
        headers=decision.headers,
        members=(("code", code),),
    )
