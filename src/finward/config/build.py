"""Build the typed GatewayConfig from a document that passed every check.

Absent keys are left to the dataclass defaults in model.py (schema.json declares the
same defaults for editors; a test keeps the two equal). Relative paths are resolved
here, once, against the config file's folder, so nothing downstream depends on the
process's working directory.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from finward.config.model import (
    AccessRule,
    AdminConfig,
    ApiAuthConfig,
    ApiConfig,
    AuthConfig,
    DPoPConfig,
    GatewayConfig,
    IdentityHeadersConfig,
    IntrospectionConfig,
    IssuerConfig,
    LimitsConfig,
    ListenConfig,
    LoggingConfig,
    ProxyConfig,
    RateLimitApplyTo,
    RateLimitConfig,
    RateLimitsConfig,
    ServerConfig,
    TimeoutsConfig,
    TlsListenConfig,
    TppConfig,
    UpstreamConfig,
    UpstreamTlsConfig,
)

# Integer settings: JSON Schema accepts 8080.0 as an integer, the model wants an int.
_INTEGER_KEYS = frozenset(
    {
        "port",
        "max_connections",
        "max_connections_per_ip",
        "min_body_rate_bytes_s",  # a rate in bytes per second, not a duration
        "max_body_bytes",
        "max_header_bytes",
        "max_headers",
        "max_uri_bytes",
        "workers",
        "token_cache_entries",
        "nonce_rotation_s",
    }
)
# Keys holding file paths, per section: `client_cert` is a path for an upstream but
# a mode ("none", "optional", "required") on the listener.
_LISTEN_TLS_PATHS = frozenset({"cert", "key", "client_ca"})
_UPSTREAM_TLS_PATHS = frozenset({"ca", "client_cert", "client_key"})
_SERVER_PATHS = frozenset({"pid_file"})
_PROXY_PATHS = frozenset({"client_cert_ca"})
_ISSUER_PATHS = frozenset({"ca"})
_INTROSPECTION_PATHS = frozenset({"private_key", "client_cert", "client_key"})
_LOG_STREAMS = frozenset({"stdout", "stderr", "off"})
# Sections inside a section, built explicitly by the caller.
_NESTED_KEYS = frozenset(
    {
        "tls",
        "timeouts",
        "trusted_proxies",
        "auth",
        "issuers",
        "introspection",
        "dpop",
        "tpp",
        "identity_headers",
        "clients",
        "tags",
        "operations",
    }
)


def build_config(
    document: dict[str, Any], base_dir: Path, source: Path, secret_locations: frozenset[str]
) -> GatewayConfig:
    listen_doc = _dict(document.get("listen"))
    tls_doc = listen_doc.get("tls")
    listen = ListenConfig(
        **_settings(listen_doc, base_dir),
        tls=TlsListenConfig(**_settings(tls_doc, base_dir, _LISTEN_TLS_PATHS))
        if isinstance(tls_doc, dict)
        else None,
    )
    upstreams = {
        name: _build_upstream(name, _dict(raw), base_dir)
        for name, raw in _dict(document.get("upstreams")).items()
    }
    apis = tuple(
        ApiConfig(
            **{**_settings(raw, base_dir), "spec": base_dir / raw["spec"]},
            auth=_build_api_auth(raw["auth"]) if isinstance(raw.get("auth"), dict) else None,
        )
        for raw in document.get("apis") or []
    )
    proxy_doc = _dict(document.get("proxy"))
    proxy = ProxyConfig(
        **_settings(proxy_doc, base_dir, _PROXY_PATHS),
        trusted_proxies=tuple(
            ipaddress.ip_network(entry.strip(), strict=False)
            for entry in proxy_doc.get("trusted_proxies") or []
        ),
    )
    logging_settings = _settings(document.get("logging"), base_dir)
    access_log = logging_settings.get("access_log")
    if isinstance(access_log, str) and access_log not in _LOG_STREAMS:
        logging_settings["access_log"] = str(base_dir / access_log)

    return GatewayConfig(
        listen=listen,
        admin=AdminConfig(**_settings(document.get("admin"), base_dir)),
        upstreams=upstreams,
        apis=apis,
        limits=LimitsConfig(**_settings(document.get("limits"), base_dir)),
        proxy=proxy,
        logging=LoggingConfig(**logging_settings),
        server=ServerConfig(**_settings(document.get("server"), base_dir, _SERVER_PATHS)),
        auth=_build_auth(_dict(document.get("auth")), base_dir),
        rate_limits=_build_rate_limits(_dict(document.get("rate_limits"))),
        source=source,
        secret_locations=secret_locations,
    )


def _build_upstream(name: str, raw: dict[str, Any], base_dir: Path) -> UpstreamConfig:
    tls_doc = raw.get("tls")
    return UpstreamConfig(
        name=name,
        **_settings(raw, base_dir),
        timeouts=TimeoutsConfig(**_settings(raw.get("timeouts"), base_dir)),
        tls=UpstreamTlsConfig(**_settings(tls_doc, base_dir, _UPSTREAM_TLS_PATHS))
        if isinstance(tls_doc, dict)
        else None,
    )


def _build_auth(raw: dict[str, Any], base_dir: Path) -> AuthConfig:
    tpp_doc = _dict(raw.get("tpp"))
    return AuthConfig(
        **_settings(raw, base_dir),
        issuers=tuple(_build_issuer(_dict(item), base_dir) for item in raw.get("issuers") or []),
        dpop=DPoPConfig(**_settings(raw.get("dpop"), base_dir)),
        tpp=TppConfig(**_settings(tpp_doc, base_dir), clients=dict(_dict(tpp_doc.get("clients")))),
        identity_headers=IdentityHeadersConfig(**_settings(raw.get("identity_headers"), base_dir)),
    )


def _build_issuer(raw: dict[str, Any], base_dir: Path) -> IssuerConfig:
    introspection = raw.get("introspection")
    return IssuerConfig(
        **_settings(raw, base_dir, _ISSUER_PATHS),
        introspection=IntrospectionConfig(
            **_settings(introspection, base_dir, _INTROSPECTION_PATHS)
        )
        if isinstance(introspection, dict)
        else None,
    )


def _build_api_auth(raw: dict[str, Any]) -> ApiAuthConfig:
    return ApiAuthConfig(
        **_settings(raw, Path()),
        tags=_access_rules(raw.get("tags")),
        operations=_access_rules(raw.get("operations")),
    )


def _access_rules(section: Any) -> dict[str, AccessRule]:
    return {key: AccessRule(**_settings(rule, Path())) for key, rule in _dict(section).items()}


# Integer settings of one rate limit (JSON Schema accepts 20.0 as an integer).
_RATE_LIMIT_INTEGERS = frozenset({"limit", "burst", "cost"})


def _build_rate_limits(raw: dict[str, Any]) -> RateLimitsConfig:
    limits = tuple(_build_rate_limit(_dict(item)) for item in raw.get("limits") or [])
    return RateLimitsConfig(**{k: v for k, v in raw.items() if k != "limits"}, limits=limits)


def _build_rate_limit(raw: dict[str, Any]) -> RateLimitConfig:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "apply_to":
            value = RateLimitApplyTo(**{k: tuple(v) for k, v in _dict(value).items()})
        elif key == "costs":
            value = {name: int(cost) for name, cost in _dict(value).items()}
        elif key in _RATE_LIMIT_INTEGERS and isinstance(value, float):
            value = int(value)
        elif key.endswith("_s") and isinstance(value, int):
            value = float(value)
        elif isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return RateLimitConfig(**out)


def _settings(section: Any, base_dir: Path, paths: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The plain values of one section, with numbers and paths normalised."""
    out: dict[str, Any] = {}
    for key, value in _dict(section).items():
        if key in _NESTED_KEYS:
            continue  # built explicitly by the caller
        if key in _INTEGER_KEYS:
            value = int(value) if isinstance(value, float) else value
        elif key.endswith("_s") and isinstance(value, int):
            value = float(value)
        elif key in paths and isinstance(value, str):
            value = base_dir / value
        elif isinstance(value, list):
            value = tuple(value)  # lists of plain values: audiences, algorithms, scopes
        out[key] = value
    return out


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
