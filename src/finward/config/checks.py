"""Checks JSON Schema cannot express: cross-references, files, addresses, URLs.

They run on the raw document even when the schema found problems, skipping any value
of the wrong shape (the schema already reported it), so one run reports everything.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from finward.config.model import IdentityHeadersConfig
from finward.config.problems import Location, Problem, shorten
from finward.config.rate_limit_checks import check_rate_limits
from finward.core.forwarding import FORWARDING_HEADERS, HOP_BY_HOP
from finward.storage.base import MemoryStoreConfig, parse_state_store_url

IsSecret = Callable[[Location], bool]

# base_path and upstream_path_prefix: "" or "/seg/seg" with RFC 3986 unreserved
# characters only. No "." or ".." segments, no "%" escapes: a mount point that differs
# from its canonical form would let a request match it in one spelling and not another.
_PATH_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


@dataclass(frozen=True, slots=True)
class CheckContext:
    base_dir: Path  # relative paths in the file resolve from here
    is_secret: IsSecret

    def resolve(self, value: str) -> Path:
        return self.base_dir / value

    def quote(self, location: Location, value: str) -> str:
        """The value as a problem may show it: quoted, or not at all if secret."""
        return "the value" if self.is_secret(location) else repr(shorten(value))


def check_semantics(document: Any, ctx: CheckContext) -> list[Problem]:
    """Every semantic problem, in document order."""
    if not isinstance(document, dict):
        return []
    problems: list[Problem] = list(_check_numbers(document, ()))
    listen = _section(document, "listen")
    admin = _section(document, "admin")
    upstreams = _section(document, "upstreams")
    problems += _check_listen(listen, ctx)
    problems += _check_admin(admin, listen, ctx)
    for name, upstream in upstreams.items():
        if isinstance(upstream, dict):
            problems += _check_upstream(("upstreams", name), upstream, ctx)
    apis = document.get("apis")
    if isinstance(apis, list):
        problems += _check_apis(apis, upstreams, ctx)
    listen_tls = listen.get("tls")
    problems += _check_proxy(
        _section(document, "proxy"), listen_tls if isinstance(listen_tls, dict) else {}, ctx
    )
    problems += _check_logging(_section(document, "logging"), ctx)
    server = _section(document, "server")
    if _is_text(server.get("pid_file")):
        problems += _check_parent_dir(("server", "pid_file"), server["pid_file"], ctx)
    problems += _check_auth(document, ctx)
    problems += check_rate_limits(document)
    return problems


def _section(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _is_text(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _check_numbers(node: Any, location: Location) -> Iterator[Problem]:
    # YAML has .inf and .nan; both pass every JSON Schema bound (nan compares false).
    if isinstance(node, float) and not math.isfinite(node):
        yield Problem(location, "must be a finite number")
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _check_numbers(value, (*location, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _check_numbers(value, (*location, index))


def _check_listen(listen: dict[str, Any], ctx: CheckContext) -> Iterator[Problem]:
    tls = listen.get("tls")
    if not isinstance(tls, dict):
        return
    base: Location = ("listen", "tls")
    for key in ("cert", "key", "client_ca"):
        if _is_text(tls.get(key)):
            yield from _check_file((*base, key), tls[key], ctx)
    mode = tls.get("client_cert", "none")
    if mode in ("optional", "required") and not tls.get("client_ca"):
        yield Problem(
            (*base, "client_ca"),
            f"required when client_cert is {mode!r}",
            "the PEM bundle of CAs that issue the client certificates",
        )
    if mode == "none" and tls.get("client_ca"):
        # Someone who sets a client CA expects mTLS; silently not asking for
        # certificates would leave every certificate-bound token unbound.
        yield Problem(
            (*base, "client_cert"),
            "is 'none', so client_ca is never used",
            "set client_cert to 'optional' or 'required', or remove client_ca",
        )


def _check_admin(
    admin: dict[str, Any], listen: dict[str, Any], ctx: CheckContext
) -> Iterator[Problem]:
    if admin.get("enabled", True) is False:
        return
    host = admin.get("host", "127.0.0.1")
    if isinstance(host, str) and not _is_loopback(host) and not admin.get("token"):
        shown = "" if ctx.is_secret(("admin", "host")) else f" ({shorten(host)})"
        yield Problem(
            ("admin", "token"),
            f"required when admin.host{shown} is not a loopback address",
            "anyone who can reach the port could use the admin API",
        )
    port, api_port = admin.get("port", 9901), listen.get("port", 8080)
    api_host = listen.get("host", "127.0.0.1")
    if isinstance(port, int) and port != 0 and port == api_port and _hosts_overlap(host, api_host):
        shown = "the port" if ctx.is_secret(("admin", "port")) else str(port)
        yield Problem(("admin", "port"), f"{shown} is also listen.port", "use another port")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hosts_overlap(a: Any, b: Any) -> bool:
    wildcards = {"0.0.0.0", "::", ""}
    return a == b or a in wildcards or b in wildcards


def _check_upstream(base: Location, upstream: dict[str, Any], ctx: CheckContext) -> list[Problem]:
    problems = []
    url = upstream.get("url")
    scheme = None
    if _is_text(url):
        scheme, problem = _check_url((*base, "url"), url, ctx)
        if problem is not None:
            problems.append(problem)
    timeouts = upstream.get("timeouts")
    if isinstance(timeouts, dict):
        problems += _check_timeouts((*base, "timeouts"), timeouts, ctx)
    tls = upstream.get("tls")
    if isinstance(tls, dict):
        if scheme == "http":
            problems.append(
                Problem((*base, "tls"), "is set but the url is http://", "use https://")
            )
        for key in ("ca", "client_cert", "client_key"):
            if _is_text(tls.get(key)):
                problems += _check_file((*base, "tls", key), tls[key], ctx)
        for key, other in (("client_cert", "client_key"), ("client_key", "client_cert")):
            if tls.get(key) and not tls.get(other):
                problems.append(Problem((*base, "tls", other), f"required when {key} is set"))
    return problems


def _check_url(
    location: Location, url: str, ctx: CheckContext
) -> tuple[str | None, Problem | None]:
    """Return (scheme, problem). The URL is quoted only if it is not secret."""
    example = "e.g. http://127.0.0.1:8081 or https://bank.internal/api"
    secret = ctx.is_secret(location) or "@" in url
    shown = "the url" if secret else repr(shorten(url))
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError:
        return None, Problem(location, f"{shown} is not a valid URL", example)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return None, Problem(location, f"{shown} is not an http(s) URL", example)
    if not parts.hostname:
        return scheme, Problem(location, f"{shown} has no host", example)
    if parts.username is not None or parts.password is not None:
        return scheme, Problem(
            location, "contains user:password", "not supported; it would leak into logs"
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return scheme, Problem(location, f"{shown} must not have a query or fragment", example)
    return scheme, None


def _check_timeouts(
    base: Location, timeouts: dict[str, Any], ctx: CheckContext
) -> Iterator[Problem]:
    total = timeouts.get("total_s", 30.0)
    for key, default in (("connect_s", 2.0), ("read_s", 15.0)):
        value = timeouts.get(key, default)
        if _is_positive_number(value) and _is_positive_number(total) and value > total:
            secret = ctx.is_secret((*base, "total_s")) or ctx.is_secret((*base, key))
            yield Problem(
                (*base, "total_s"),
                f"is less than {key}" if secret else f"{total} is less than {key} ({value})",
                f"the {key} limit could never be reached; raise total_s or lower {key}",
            )


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _check_apis(apis: list[Any], upstreams: dict[str, Any], ctx: CheckContext) -> Iterator[Problem]:
    names: dict[str, int] = {}
    mounts: dict[str, int] = {}
    known = ", ".join(sorted(upstreams)) or "none; define it under upstreams"
    for index, api in enumerate(apis):
        if not isinstance(api, dict):
            continue
        base: Location = ("apis", index)
        name = api.get("name")
        if isinstance(name, str):
            if name in names:
                shown = ctx.quote((*base, "name"), name)
                yield Problem((*base, "name"), f"{shown} is already used by apis[{names[name]}]")
            else:
                names[name] = index
        upstream = api.get("upstream")
        if _is_text(upstream) and upstream not in upstreams:
            shown = ctx.quote((*base, "upstream"), upstream)
            yield Problem((*base, "upstream"), f"unknown upstream {shown}", f"known: {known}")
        if _is_text(api.get("spec")):
            yield from _check_file((*base, "spec"), api["spec"], ctx)
        for key in ("base_path", "upstream_path_prefix"):
            value = api.get(key, "")
            if isinstance(value, str):
                yield from _check_mount_path((*base, key), value, ctx)
        base_path = api.get("base_path", "")
        if isinstance(base_path, str):
            # Compared in normalised form: "/psd2/" and "/psd2" are the same mount.
            mount = "/".join(s for s in base_path.split("/") if s)
            if mount in mounts:
                yield Problem(
                    (*base, "base_path"),
                    f"{ctx.quote((*base, 'base_path'), base_path)} is already the base_path "
                    f"of apis[{mounts[mount]}]",
                    "give each API its own base_path",
                )
            else:
                mounts[mount] = index


def _check_mount_path(location: Location, value: str, ctx: CheckContext) -> Iterator[Problem]:
    if value == "":
        return
    shown = ctx.quote(location, value)
    if value == "/":
        yield Problem(location, "'/' is not allowed", 'use "" for the root')
        return
    segments = value.split("/")
    if not value.startswith("/") or value.endswith("/"):
        fixed = "/" + "/".join(s for s in segments if s)
        hint = None if ctx.is_secret(location) else f"write {fixed!r}"
        yield Problem(location, f"{shown} must start with '/' and not end with '/'", hint)
        return
    for segment in segments[1:]:
        if segment in ("", ".", "..") or not _PATH_SEGMENT.fullmatch(segment):
            yield Problem(
                location,
                f"{shown} is not a plain path",
                "use segments of letters, digits, '-', '.', '_' and '~'; no '//', '.' or '..'",
            )
            return


def _check_proxy(
    proxy: dict[str, Any], listen_tls: dict[str, Any], ctx: CheckContext
) -> Iterator[Problem]:
    trusted = proxy.get("trusted_proxies")
    entries = trusted if isinstance(trusted, list) else []
    for index, entry in enumerate(entries):
        location: Location = ("proxy", "trusted_proxies", index)
        if not isinstance(entry, str):
            continue
        shown = ctx.quote(location, entry)
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            yield Problem(
                location, f"{shown} is not an IP address or CIDR network", "e.g. 10.0.0.0/8"
            )
            continue
        if network.prefixlen == 0:
            # Trusting every peer lets any client forge X-Forwarded-For and the
            # client-certificate header, i.e. impersonate any mTLS identity.
            yield Problem(location, f"{shown} trusts every address", "list your proxies' networks")
    ca = proxy.get("client_cert_ca")
    if isinstance(ca, str):
        yield from _check_file(("proxy", "client_cert_ca"), ca, ctx)
        if not proxy.get("client_cert_header"):
            yield Problem(
                ("proxy", "client_cert_ca"),
                "is set but proxy.client_cert_header is not",
                "name the header your TLS terminator puts the certificate in",
            )
    has_ca = isinstance(ca, str) or bool(listen_tls.get("client_ca"))
    if proxy.get("client_cert_header") and not has_ca:
        # Without trust anchors any self-made certificate would be accepted.
        yield Problem(
            ("proxy", "client_cert_ca"),
            "required when proxy.client_cert_header is set (or set listen.tls.client_ca)",
            "the CA bundle that issued your clients' certificates",
        )
    if proxy.get("client_cert_header") and not entries:
        yield Problem(
            ("proxy", "client_cert_header"),
            "is set but proxy.trusted_proxies is empty",
            "the header is only read from trusted proxies; list your TLS terminator's address",
        )


def _check_logging(logging: dict[str, Any], ctx: CheckContext) -> Iterator[Problem]:
    target = logging.get("access_log")
    if _is_text(target) and target not in ("stdout", "stderr", "off"):
        yield from _check_parent_dir(("logging", "access_log"), target, ctx)


def _check_file(location: Location, value: str, ctx: CheckContext) -> Iterator[Problem]:
    """The file must exist, be a regular file and be readable by this process."""
    path = ctx.resolve(value)
    if ctx.is_secret(location):
        shown = ""
        hint: str | None = f"value hidden; relative paths resolve from {ctx.base_dir}"
    else:
        shown, hint = f": {shorten(str(path), 200)}", None
    try:
        info = os.stat(path)
    except FileNotFoundError:
        yield Problem(location, f"file not found{shown}", hint)
        return
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        yield Problem(location, f"cannot access the file{shown} ({type(exc).__name__})", hint)
        return
    if not stat.S_ISREG(info.st_mode):
        yield Problem(location, f"not a regular file{shown}", hint)
    elif not os.access(path, os.R_OK):
        yield Problem(location, f"file is not readable{shown}", hint or "check its permissions")


def _check_parent_dir(location: Location, value: str, ctx: CheckContext) -> Iterator[Problem]:
    """A file finward will create: its folder must exist."""
    path = ctx.resolve(value)
    try:
        is_dir = path.parent.is_dir()
    except (OSError, ValueError):
        is_dir = False
    if not is_dir:
        shown = "" if ctx.is_secret(location) else f": {shorten(str(path.parent), 200)}"
        yield Problem(location, f"folder does not exist{shown}")


# -- auth (docs/configuration.md, "auth" and "apis[].auth") ----------------------------

_HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")
# apis[].auth.operations keys: an operationId (no whitespace), or "METHOD /path".
_NO_SPACE = re.compile(r"\S+")
# Headers an identity header must not replace: connection-specific, the credentials
# finward reads, and the forwarding headers finward itself writes.
_RESERVED_HEADERS = (
    HOP_BY_HOP
    | FORWARDING_HEADERS
    | {"authorization", "host", "dpop", "cookie", "content-length", "content-type"}
)
_IDENTITY_HEADER_DEFAULTS: dict[str, str | None] = {
    item.name: item.default
    for item in dataclasses.fields(IdentityHeadersConfig)
    if item.default is None or isinstance(item.default, str)
}
_AS_EXAMPLE = "e.g. https://as.bank.example"
_CLIENT_CERT_HINT = (
    "set listen.tls.client_cert to 'optional' or 'required', "
    "or read certificates from a TLS terminator with proxy.client_cert_header"
)


def _check_auth(document: dict[str, Any], ctx: CheckContext) -> Iterator[Problem]:
    auth = _section(document, "auth")
    issuers = auth.get("issuers")
    has_issuers = isinstance(issuers, list) and bool(issuers)
    if isinstance(issuers, list):
        yield from _check_issuers(issuers, ctx)
    audiences = auth.get("audiences", [])
    if has_issuers and isinstance(audiences, list) and not audiences:
        entries = issuers if isinstance(issuers, list) else []
        if not all(isinstance(i, dict) and _nonempty_list(i.get("audiences")) for i in entries):
            yield Problem(
                ("auth", "audiences"),
                "required when auth.issuers is set",
                "the values accepted in a token's aud claim, e.g. [https://api.bank.example]; "
                "or give every issuer its own audiences",
            )
    yield from _check_public_base_url(auth, has_issuers, document.get("apis"), ctx)
    yield from _check_dpop(_section(auth, "dpop"))
    yield from _check_state_store(auth, has_issuers, _section(document, "server"))
    yield from _check_identity_headers(
        _section(auth, "identity_headers"), _section(document, "proxy"), ctx
    )
    apis = document.get("apis")
    if isinstance(apis, list):
        listen_tls = _section(document, "listen").get("tls")
        client_cert = listen_tls.get("client_cert") if isinstance(listen_tls, dict) else None
        has_client_certs = client_cert in ("optional", "required") or bool(
            _section(document, "proxy").get("client_cert_header")
        )
        for index, api in enumerate(apis):
            if isinstance(api, dict) and isinstance(api.get("auth"), dict):
                yield from _check_api_auth(
                    ("apis", index, "auth"), api["auth"], has_issuers, has_client_certs, ctx
                )


def _nonempty_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value)


def _check_issuers(issuers: list[Any], ctx: CheckContext) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    introspecting: int | None = None
    for index, issuer in enumerate(issuers):
        if not isinstance(issuer, dict):
            continue
        base: Location = ("auth", "issuers", index)
        insecure = issuer.get("allow_insecure_loopback") is True
        value = issuer.get("issuer")
        if _is_text(value):
            yield from _check_auth_url((*base, "issuer"), value, ctx, loopback_http=insecure)
            if value in seen:
                shown = ctx.quote((*base, "issuer"), value)
                yield Problem(
                    (*base, "issuer"),
                    f"{shown} is already auth.issuers[{seen[value]}]",
                    "list each authorisation server once",
                )
            else:
                seen[value] = index
        if _is_text(issuer.get("jwks_uri")):
            yield from _check_auth_url(
                (*base, "jwks_uri"), issuer["jwks_uri"], ctx, loopback_http=insecure, query=True
            )
        if _is_text(issuer.get("ca")):
            yield from _check_file((*base, "ca"), issuer["ca"], ctx)
        max_age = issuer.get("jwks_max_age_s", 300.0)
        min_refetch = issuer.get("jwks_min_refetch_s", 10.0)
        if (
            _is_positive_number(max_age)
            and _is_positive_number(min_refetch)
            and min_refetch > max_age
        ):
            yield Problem(
                (*base, "jwks_min_refetch_s"),
                f"{min_refetch} is more than jwks_max_age_s ({max_age})",
                "keys could not be refreshed when they are due; lower it",
            )
        for key in ("algorithms",) + (() if issuer.get("accept_untyped") else ("token_types",)):
            if issuer.get(key) == []:
                yield Problem((*base, key), "must not be empty", "no token could be accepted")
        token_format = issuer.get("token_format", "jwt")
        introspection = issuer.get("introspection")
        if token_format in ("opaque", "any"):
            if introspecting is not None:
                yield Problem(
                    (*base, "token_format"),
                    f"auth.issuers[{introspecting}] already accepts opaque tokens",
                    "an opaque token does not name its issuer, so only one issuer may use "
                    "introspection; set token_format: jwt here",
                )
            else:
                introspecting = index
            if introspection is None:
                yield Problem(
                    (*base, "introspection"),
                    f"required when token_format is {token_format!r}",
                    "the RFC 7662 endpoint that says whether an opaque token is active",
                )
        elif introspection is not None:
            yield Problem(
                (*base, "introspection"),
                "is not used when token_format is 'jwt'",
                "JWT access tokens are verified locally; set token_format: opaque or any "
                "to introspect opaque tokens with this endpoint",
            )
        if isinstance(introspection, dict):
            yield from _check_introspection((*base, "introspection"), introspection, insecure, ctx)


def _check_introspection(
    base: Location, introspection: dict[str, Any], insecure: bool, ctx: CheckContext
) -> Iterator[Problem]:
    if _is_text(introspection.get("endpoint")):
        yield from _check_auth_url(
            (*base, "endpoint"), introspection["endpoint"], ctx, loopback_http=insecure, query=True
        )
    for key in ("private_key", "client_cert", "client_key"):
        if _is_text(introspection.get(key)):
            yield from _check_file((*base, key), introspection[key], ctx)
    method = introspection.get("auth_method", "client_secret_basic")
    needed = (
        {
            "client_secret_basic": ("client_secret",),
            "private_key_jwt": ("private_key",),
            "tls_client_auth": ("client_cert", "client_key"),
        }.get(method, ())
        if isinstance(method, str)
        else ()
    )
    for key in needed:
        if not introspection.get(key):
            hint = (
                "put it in the environment, e.g. ${FINWARD_INTROSPECTION_SECRET}"
                if key == "client_secret"
                else "a PEM file; relative paths resolve from the config file's folder"
            )
            yield Problem((*base, key), f"required when auth_method is {method!r}", hint)
    if introspection.get("client_secret") and method != "client_secret_basic":
        yield Problem(
            (*base, "client_secret"),
            f"is set but auth_method is {method!r}, so it is never used",
            "remove it, or set auth_method: client_secret_basic",
        )
    if method != "tls_client_auth":
        for key, other in (("client_cert", "client_key"), ("client_key", "client_cert")):
            if introspection.get(key) and not introspection.get(other):
                yield Problem((*base, other), f"required when {key} is set")


def _check_auth_url(
    location: Location,
    url: str,
    ctx: CheckContext,
    *,
    loopback_http: bool,
    any_http: bool = False,
    query: bool = False,
) -> Iterator[Problem]:
    """An authorisation server's URL: https, or http to loopback when allowed."""
    shown = "the url" if ctx.is_secret(location) or "@" in url else repr(shorten(url))
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a port that is not a number in range
    except ValueError:
        yield Problem(location, f"{shown} is not a valid URL", _AS_EXAMPLE)
        return
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        kind = "an http(s)" if any_http else "an https"
        yield Problem(location, f"{shown} is not {kind} URL", _AS_EXAMPLE)
        return
    if not parts.hostname:
        yield Problem(location, f"{shown} has no host", _AS_EXAMPLE)
        return
    if parts.username is not None or parts.password is not None:
        yield Problem(location, "contains user:password", "not supported; it would leak into logs")
        return
    if parts.fragment or url.endswith("#"):
        yield Problem(location, f"{shown} must not have a fragment", _AS_EXAMPLE)
    elif not query and (parts.query or url.endswith("?")):
        yield Problem(location, f"{shown} must not have a query or fragment", _AS_EXAMPLE)
    if scheme == "http" and not any_http:
        if not _is_loopback(parts.hostname):
            yield Problem(
                location,
                f"{shown} is not https",
                "tokens and keys must come over TLS; http:// is only allowed to a loopback "
                "host, with allow_insecure_loopback: true",
            )
        elif not loopback_http:
            yield Problem(
                location,
                f"{shown} is not https",
                "for a local test server set allow_insecure_loopback: true on the issuer",
            )


def _check_public_base_url(
    auth: dict[str, Any], has_issuers: bool, apis: Any, ctx: CheckContext
) -> Iterator[Problem]:
    location: Location = ("auth", "public_base_url")
    url = auth.get("public_base_url")
    if _is_text(url):
        yield from _check_auth_url(location, url, ctx, loopback_http=True, any_http=True)
        return
    if url is not None or not has_issuers or not isinstance(apis, list):
        return
    dpop_apis = [
        index
        for index, api in enumerate(apis)
        if isinstance(api, dict) and _may_accept_dpop(api.get("auth"))
    ]
    if dpop_apis:
        yield Problem(
            location,
            f"required because apis[{dpop_apis[0]}] accepts DPoP-bound tokens",
            "the URL clients use to reach finward, e.g. https://api.bank.example; "
            "or set sender_method: mtls on every API",
        )


def _may_accept_dpop(auth: Any) -> bool:
    """Whether an API's auth could let a DPoP-bound token through, on any operation.

    Deliberately simple (and on the safe side): every level counts, whatever it
    inherits. No auth means the defaults, which accept DPoP.
    """
    if auth is None:
        return True
    if not isinstance(auth, dict):
        return False
    levels = [rule for _, rule in _auth_levels((), auth)]
    methods = _level_values(levels, "sender_method", "any")
    return _uses_tokens(levels) and bool(methods & {"dpop", "any"})


def _auth_levels(base: Location, auth: dict[str, Any]) -> list[tuple[Location, dict[str, Any]]]:
    """An API's auth, then each of its `tags` and `operations` entries, with locations."""
    levels: list[tuple[Location, dict[str, Any]]] = [(base, auth)]
    for group in ("tags", "operations"):
        section = auth.get(group)
        if isinstance(section, dict):
            rules = [(key, rule) for key, rule in section.items() if isinstance(rule, dict)]
            levels += [((*base, group, key), rule) for key, rule in rules]
    return levels


def _level_values(levels: list[dict[str, Any]], key: str, default: str) -> set[str]:
    """The values of ``key`` at the API level (absent: ``default``) and in every rule."""
    values = [levels[0].get(key, default), *(rule.get(key) for rule in levels[1:])]
    return {value for value in values if isinstance(value, str)}


def _uses_tokens(levels: list[dict[str, Any]]) -> bool:
    """Whether any level of an API's auth reads tokens (`token` other than off)."""
    return bool(_level_values(levels, "token", "required") - {"off"})


def _check_dpop(dpop: dict[str, Any]) -> Iterator[Problem]:
    base: Location = ("auth", "dpop")
    secrets = dpop.get("nonce_secrets", [])
    if dpop.get("nonce") is True and isinstance(secrets, list) and not secrets:
        yield Problem(
            (*base, "nonce_secrets"),
            "required when nonce is true",
            "at least one secret of 32 or more characters, from the environment, e.g. "
            "[${FINWARD_DPOP_NONCE_SECRET}]",
        )
    if dpop.get("algorithms") == []:
        yield Problem((*base, "algorithms"), "must not be empty", "no proof could be accepted")


def _check_state_store(
    auth: dict[str, Any], has_issuers: bool, server: dict[str, Any]
) -> Iterator[Problem]:
    location: Location = ("auth", "state_store")
    url = auth.get("state_store", "memory://")
    if not isinstance(url, str):
        return
    try:
        store = parse_state_store_url(url)
    except ValueError as exc:  # StateStoreURLError; its text never quotes the URL
        yield Problem(location, str(exc), "e.g. memory:// or redis://redis.internal:6379/0")
        return
    workers = server.get("workers", 1)
    if (
        has_issuers
        and isinstance(store, MemoryStoreConfig)
        and isinstance(workers, int)
        and workers > 1
    ):
        yield Problem(
            location,
            f"a memory:// store is per process: with {workers} workers DPoP replays, "
            "revocations and suspensions would not be shared",
            "use redis://",
        )


def _check_identity_headers(
    headers: dict[str, Any], proxy: dict[str, Any], ctx: CheckContext
) -> Iterator[Problem]:
    seen: dict[str, str] = {}
    cert_header = proxy.get("client_cert_header")
    for key, default in _IDENTITY_HEADER_DEFAULTS.items():
        location: Location = ("auth", "identity_headers", key)
        name = headers.get(key, default)
        if not isinstance(name, str) or not name:
            continue
        explicit = key in headers
        lower = name.lower()
        if explicit and lower in _RESERVED_HEADERS:
            yield Problem(
                location,
                f"{ctx.quote(location, name)} is a header finward reads, writes or removes",
                "choose another name, e.g. X-Finward-Client-ID",
            )
            continue
        if isinstance(cert_header, str) and lower == cert_header.lower():
            yield Problem(
                location,
                f"{ctx.quote(location, name)} is also proxy.client_cert_header",
                "choose another name",
            )
        if lower not in seen:
            seen[lower] = key
            continue
        # Point at the one the user wrote, not at a default it collides with.
        at, other = (location, seen[lower])
        if not explicit and other in headers:
            at, other = ("auth", "identity_headers", other), key
        yield Problem(
            at,
            f"{ctx.quote(at, name)} is also identity_headers.{other}",
            "give each its own header, or null to leave one out",
        )


def _check_api_auth(
    base: Location,
    auth: dict[str, Any],
    has_issuers: bool,
    has_client_certs: bool,
    ctx: CheckContext,
) -> Iterator[Problem]:
    levels = _auth_levels(base, auth)
    uses_tokens = _uses_tokens([rule for _, rule in levels])
    if uses_tokens and not has_issuers:
        yield Problem(
            base,
            "no issuers configured",
            "list the authorisation servers under auth.issuers, or remove this API's auth",
        )
    operations = auth.get("operations")
    if isinstance(operations, dict):
        for key in operations:
            yield from _check_operation_key((*base, "operations", key), key)
    if not has_issuers or has_client_certs or not uses_tokens:
        return
    for location, rule in levels:
        if rule.get("sender_method") == "mtls":
            yield Problem(
                (*location, "sender_method"),
                "'mtls' needs client certificates, but finward asks for none",
                _CLIENT_CERT_HINT,
            )
        if _nonempty_list(rule.get("tpp_roles")):
            yield Problem(
                (*location, "tpp_roles"),
                "TPP roles come from eIDAS client certificates, but finward asks for none",
                _CLIENT_CERT_HINT,
            )


def _check_operation_key(location: Location, key: str) -> Iterator[Problem]:
    """Shape only: whether the operation exists is checked against the spec later."""
    if _NO_SPACE.fullmatch(key):
        return  # an operationId
    method, _, path = key.partition(" ")
    is_path = path.startswith("/") and _NO_SPACE.fullmatch(path) is not None
    if is_path and method.upper() in _HTTP_METHODS:
        return
    if is_path and _NO_SPACE.fullmatch(method):
        hint = f"the method is one of {', '.join(_HTTP_METHODS)}"
    else:
        hint = "an operationId has no spaces; 'METHOD /path' has one, e.g. 'GET /v1/accounts'"
    yield Problem(location, f"{shorten(key)!r} is neither an operationId nor 'METHOD /path'", hint)
