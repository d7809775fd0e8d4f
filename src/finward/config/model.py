"""Typed configuration: what the loader produces from finward.yaml.

Every key here is documented in docs/configuration.md and described by the JSON
Schema that `finward config schema` prints (finward/config/schema.json).
"""

from __future__ import annotations

import ipaddress
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


@dataclass(frozen=True, slots=True)
class ApiConfig:
    name: str
    spec: Path  # OpenAPI 3.0 / 3.1 document; relative $refs resolve from its folder
    upstream: str  # name of an entry in `upstreams`
    base_path: str = ""  # where the spec's paths are mounted on the gateway, e.g. /psd2
    # Path prefix put in front of the spec path when forwarding (base_path is stripped).
    upstream_path_prefix: str = ""


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_body_bytes: int = 1_048_576
    max_header_bytes: int = 16_384
    max_headers: int = 100
    max_uri_bytes: int = 8_192
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 75.0
    max_connections: int = 10_000


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
    source: Path | None = None  # the file this was loaded from
    # Locations, written as `finward config check` prints them ("admin.token",
    # "upstreams.bank.url"), whose values are secrets: named like one, or filled in from
    # ${ENV}. Every output path (config show, admin API, logs) masks these values.
    secret_locations: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
