"""Checks JSON Schema cannot express: cross-references, files, addresses, URLs.

They run on the raw document even when the schema found problems, skipping any value
of the wrong shape (the schema already reported it), so one run reports everything.
"""

from __future__ import annotations

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

from finward.config.problems import Location, Problem, shorten

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
