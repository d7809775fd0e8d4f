"""Typed configuration: what the loader produces from finward.yaml.

Every key here is documented in docs/configuration.md and described by the JSON
Schema that `finward config schema` prints (finward/config/schema.json).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ClientCertMode = Literal["none", "optional", "required"]


@dataclass(frozen=True, slots=True)
class TlsListenConfig:
    cert: Path
    key: Path
    client_ca: Path | None = None
    client_cert: ClientCertMode = "none"
    min_version: Literal["1.2", "1.3"] = "1.2"


@dataclass(frozen=True, slots=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    tls: TlsListenConfig | None = None


@dataclass(frozen=True, slots=True)
class AdminConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9901
    # Bearer token for everything beyond /healthz, /readyz and /metrics.
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class TimeoutsConfig:
    connect_s: float = 2.0
    read_s: float = 15.0
    total_s: float = 30.0


@dataclass(frozen=True, slots=True)
class UpstreamTlsConfig:
    verify: bool = True
    ca: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    name: str
    url: str  # scheme://host:port[/prefix]
    timeouts: TimeoutsConfig = TimeoutsConfig()
    max_connections: int = 100
    keepalive_s: float = 30.0
    tls: UpstreamTlsConfig | None = None


# -- authentication (docs/configuration.md, "auth") --------------------------------------

# required: a valid token on every call; optional: validated when present; spec: required
# when the operation's OpenAPI `security` demands something, else optional; off: not read.
TokenMode = Literal["required", "optional", "spec", "off"]
SenderConstraint = Literal["required", "optional"]
SenderMethod = Literal["mtls", "dpop", "any"]
ErrorFormat = Literal["problem", "berlin-group"]
IntrospectionAuthMethod = Literal["client_secret_basic", "private_key_jwt", "tls_client_auth"]
TokenFormat = Literal["jwt", "opaque", "any"]

FAPI_ALGORITHMS: tuple[str, ...] = ("PS256", "ES256", "EdDSA")
AT_JWT_TYPES: tuple[str, ...] = ("at+jwt", "application/at+jwt")
RFC9068_CLAIMS: tuple[str, ...] = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")


@dataclass(frozen=True, slots=True)
class IntrospectionConfig:
    """RFC 7662 endpoint used for opaque tokens, and how finward authenticates to it."""

    endpoint: str
    client_id: str
    auth_method: IntrospectionAuthMethod = "client_secret_basic"
    client_secret: str | None = field(default=None, repr=False)  # client_secret_basic
    private_key: Path | None = None  # PEM; private_key_jwt
    private_key_alg: str = "PS256"
    key_id: str | None = None
    client_cert: Path | None = None  # PEM; tls_client_auth
    client_key: Path | None = None
    max_ttl_s: float = 60.0  # cache answers at most this long (and never past `exp`)
    timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class IssuerConfig:
    """One trusted authorisation server."""

    issuer: str  # exact `iss` value; also the discovery base when jwks_uri is absent
    jwks_uri: str | None = None
    audiences: tuple[str, ...] = ()  # overrides auth.audiences for this issuer
    algorithms: tuple[str, ...] = FAPI_ALGORITHMS
    token_types: tuple[str, ...] = AT_JWT_TYPES
    accept_untyped: bool = False  # legacy ASes that send no `typ`
    required_claims: tuple[str, ...] = RFC9068_CLAIMS
    leeway_s: float = 0.0
    max_future_s: float = 10.0
    token_format: TokenFormat = "jwt"
    introspection: IntrospectionConfig | None = None
    ca: Path | None = None  # CA bundle for the AS's TLS certificate (default: system)
    # http:// to a loopback AS (the sandbox, tests). Never for a remote host.
    allow_insecure_loopback: bool = False
    jwks_max_age_s: float = 300.0
    jwks_min_refetch_s: float = 10.0
    timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class DPoPConfig:
    algorithms: tuple[str, ...] = FAPI_ALGORITHMS
    max_age_s: float = 60.0
    max_future_s: float = 10.0
    nonce: bool = False  # demand server nonces (RFC 9449 §9)
    nonce_secrets: tuple[str, ...] = field(default=(), repr=False)  # first signs
    nonce_rotation_s: int = 60


@dataclass(frozen=True, slots=True)
class TppConfig:
    """eIDAS TPP identification from QWAC client certificates (ETSI TS 119 495)."""

    require_qc_compliance: bool = True
    # token client_id -> organizationIdentifier its certificate must carry
    clients: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IdentityHeadersConfig:
    """Headers that tell the upstream who called; null disables one. Inbound copies
    are always stripped."""

    client_id: str | None = "X-Finward-Client-ID"
    tpp_organisation: str | None = "X-Finward-TPP-ID"
    subject: str | None = "X-Finward-PSU-ID"
    consent_id: str | None = "X-Finward-Consent-ID"
    scopes: str | None = "X-Finward-Scopes"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    issuers: tuple[IssuerConfig, ...] = ()
    audiences: tuple[str, ...] = ()  # this resource server's identifiers (`aud`)
    # The URL clients use to reach finward (DPoP `htu`); never taken from request headers.
    public_base_url: str | None = None
    state_store: str = field(default="memory://", repr=False)  # may hold a password
    dpop: DPoPConfig = DPoPConfig()
    tpp: TppConfig = TppConfig()
    identity_headers: IdentityHeadersConfig = IdentityHeadersConfig()
    forward_token: bool = False
    consent_claim: str = "consent_id"
    token_cache_entries: int = 10_000
    revocation_ttl_s: float = 86_400.0  # how long a revocation without exp is kept


@dataclass(frozen=True, slots=True)
class AccessRule:
    """Per tag or operation overrides; None inherits from the level above."""

    token: TokenMode | None = None
    sender_constraint: SenderConstraint | None = None
    sender_method: SenderMethod | None = None
    scopes: tuple[str, ...] | None = None  # all required; None: from the OpenAPI security
    tpp_roles: tuple[str, ...] | None = None  # any one of them; () means none needed


@dataclass(frozen=True, slots=True)
class ApiAuthConfig:
    token: TokenMode = "required"
    sender_constraint: SenderConstraint = "required"
    sender_method: SenderMethod = "any"
    scopes: tuple[str, ...] | None = None
    tpp_roles: tuple[str, ...] = ()
    error_format: ErrorFormat = "problem"
    tags: Mapping[str, AccessRule] = field(default_factory=dict)
    # keyed by operationId or "METHOD /path/template"
    operations: Mapping[str, AccessRule] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    name: str
    spec: Path  # OpenAPI 3.0 / 3.1 document; relative $refs resolve from its folder
    upstream: str  # name of an entry in `upstreams`
    base_path: str = ""  # where the spec's paths are mounted on the gateway, e.g. /psd2
    # Path prefix put in front of the spec path when forwarding (base_path is stripped).
    upstream_path_prefix: str = ""
    # None: ApiAuthConfig() defaults when auth.issuers is set, else no authentication.
    auth: ApiAuthConfig | None = None


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_body_bytes: int = 1_048_576
    max_header_bytes: int = 16_384
    max_headers: int = 100
    max_uri_bytes: int = 8_192
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 75.0
    # Slow readers: writing the response may make no progress (the client reads
    # nothing) for at most this long; then the connection is aborted.
    send_timeout_s: float = 30.0
    max_connections: int = 10_000
    # Slow POST (R.U.D.Y.): after the grace period, a body arriving at a lower average
    # rate is refused with 408. 0 turns the check off (body_timeout_s still applies).
    min_body_rate_bytes_s: int = 1_024
    min_body_rate_grace_s: float = 5.0
    # Connections one socket-peer IP may hold, per worker process; 0 turns it off.
    max_connections_per_ip: int = 256


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    # Peers whose X-Forwarded-For / Forwarded / client-cert header are trusted.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Header in which a trusted TLS terminator passes the client certificate
    # (URL-encoded PEM, as nginx $ssl_client_escaped_cert and Envoy XFCC Cert send).
    client_cert_header: str | None = None
    # CA bundle that verifies certificates arriving in client_cert_header; defaults to
    # listen.tls.client_ca. Needed when finward itself listens without TLS.
    client_cert_ca: Path | None = None
    add_forwarded_headers: bool = True


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    access_log: str = "stdout"  # "stdout", "stderr", "off" or a file path
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    workers: int = 1
    shutdown_grace_s: float = 30.0
    pid_file: Path | None = None


# -- rate limits, quotas and concurrency caps (docs/configuration.md, "rate_limits") ------

RateLimitAlgorithm = Literal["gcra", "sliding_window", "fixed_window", "concurrency"]
RateLimitCalendar = Literal["day", "month"]
StoreErrorMode = Literal["open", "closed"]


@dataclass(frozen=True, slots=True)
class RateLimitApplyTo:
    """Which operations a limit counts; every list empty means every operation."""

    apis: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()  # operationId or "METHOD /path/template"


RateLimitPhase = Literal["before_auth", "after_auth"]


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    name: str  # [a-z0-9_-]; in RateLimit headers, metrics and store keys
    algorithm: RateLimitAlgorithm
    limit: int  # cost units per period_s (or per calendar window; concurrency: in flight)
    period_s: float = 1.0
    burst: int | None = None  # gcra only; null: = limit
    calendar: RateLimitCalendar | None = None  # fixed_window only
    timezone: str = "UTC"  # of the calendar windows
    lease_s: float = 60.0  # concurrency only: a lost release frees the slot after this
    # Parts of the counting key: client_id, tpp, psu, consent, token, ip,
    # net:<v4 bits>:<v6 bits>, header:<Name>, claim:<name>.
    key: tuple[str, ...] = ("client_id",)
    cost: int = 1
    costs: Mapping[str, int] = field(default_factory=dict)  # by operationId or METHOD /path
    apply_to: RateLimitApplyTo = RateLimitApplyTo()
    on_store_error: StoreErrorMode | None = None  # null: rate_limits.on_store_error
    # before_auth: counted before authentication, so refused logins and bad tokens count
    # too (keys of ip, net: and header: parts only); after_auth: identity keys allowed.
    phase: RateLimitPhase = "after_auth"


@dataclass(frozen=True, slots=True)
class RateLimitsConfig:
    store: str = field(default="memory://", repr=False)  # may hold a password
    headers: bool = True  # RateLimit-Policy and RateLimit on every response
    on_store_error: StoreErrorMode = "closed"
    limits: tuple[RateLimitConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    listen: ListenConfig = ListenConfig()
    admin: AdminConfig = AdminConfig()
    upstreams: dict[str, UpstreamConfig] = field(default_factory=dict)
    apis: tuple[ApiConfig, ...] = ()
    limits: LimitsConfig = LimitsConfig()
    proxy: ProxyConfig = ProxyConfig()
    logging: LoggingConfig = LoggingConfig()
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    rate_limits: RateLimitsConfig = RateLimitsConfig()
    source: Path | None = None  # the file this was loaded from
    # Locations, written as `finward config check` prints them ("admin.token",
    # "upstreams.bank.url"), whose values are secrets: named like one, or filled in from
    # ${ENV}. Every output path (config show, admin API, logs) masks these values.
    secret_locations: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
