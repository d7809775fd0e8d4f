"""Semantic checks of ``rate_limits`` that JSON Schema cannot express.

Whether ``costs`` and ``apply_to.operations`` / ``apply_to.tags`` name real operations is
checked when the specs are compiled (``finward.limits.rules``), as for ``auth``.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from finward.config.problems import Location, Problem, shorten
from finward.limits import LimitStoreURLError, parse_limit_store_url
from finward.limits.keys import KeyPartError, parse_key_part

_STORE_SCHEMES = ("memory", "redis", "rediss")
_STORE_EXAMPLE = "e.g. memory:// or redis://redis.internal:6379/0"
_TZ_NAME = re.compile(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+){0,2}")
# Settings that only one algorithm reads: naming them elsewhere is a misunderstanding.
_ONLY_FOR = {"burst": "gcra", "calendar": "fixed_window", "lease_s": "concurrency"}


def check_rate_limits(document: dict[str, Any]) -> Iterator[Problem]:
    section = document.get("rate_limits")
    if not isinstance(section, dict):
        return
    limits = section.get("limits")
    limits = limits if isinstance(limits, list) else []
    yield from _check_store(section, document, bool(limits))
    apis = document.get("apis")
    api_names = {
        api["name"]
        for api in (apis if isinstance(apis, list) else [])
        if isinstance(api, dict) and isinstance(api.get("name"), str)
    }
    names: dict[str, int] = {}
    for index, item in enumerate(limits):
        if not isinstance(item, dict):
            continue
        base: Location = ("rate_limits", "limits", index)
        name = item.get("name")
        if isinstance(name, str):
            if name in names:
                yield Problem(
                    (*base, "name"),
                    f"{shorten(name)!r} is already the name of rate_limits.limits[{names[name]}]",
                    "give each limit its own name",
                )
            else:
                names[name] = index
        yield from _check_limit(base, item, api_names)


def _check_store(
    section: dict[str, Any], document: dict[str, Any], has_limits: bool
) -> Iterator[Problem]:
    location: Location = ("rate_limits", "store")
    url = section.get("store", "memory://")
    if not isinstance(url, str):
        return
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme not in _STORE_SCHEMES:
        # The URL itself is not quoted: it may hold a password.
        yield Problem(location, "is not a memory://, redis:// or rediss:// URL", _STORE_EXAMPLE)
        return
    try:
        parse_limit_store_url(url)
    except LimitStoreURLError as exc:  # its text never quotes the URL
        yield Problem(location, str(exc), _STORE_EXAMPLE)
        return
    server = document.get("server")
    workers = server.get("workers", 1) if isinstance(server, dict) else 1
    if scheme == "memory" and has_limits and isinstance(workers, int) and workers > 1:
        yield Problem(
            location,
            f"a memory:// store is per process: with {workers} workers each would count on "
            f"its own, allowing up to {workers} times every limit",
            "use redis://, or one worker",
        )


# Key parts read from the request itself, available before authentication.
_REQUEST_PARTS = frozenset({"ip", "net", "header"})


def _check_limit(base: Location, item: dict[str, Any], api_names: set[str]) -> Iterator[Problem]:
    algorithm = item.get("algorithm")
    if isinstance(algorithm, str):
        for key, wanted in _ONLY_FOR.items():
            if item.get(key) is not None and algorithm != wanted:
                yield Problem(
                    (*base, key),
                    f"is only used by the {wanted} algorithm, not {algorithm}",
                    f"remove it, or set algorithm: {wanted}",
                )
        if algorithm == "concurrency" and "period_s" in item:
            yield Problem(
                (*base, "period_s"),
                "is not used by the concurrency algorithm",
                "a concurrency limit counts requests in progress; remove period_s",
            )
        if algorithm == "fixed_window" and item.get("calendar") and "period_s" in item:
            yield Problem(
                (*base, "period_s"),
                "is not used when calendar is set",
                "the window is the calendar day or month; remove period_s",
            )
    timezone = item.get("timezone")
    if isinstance(timezone, str):
        if not item.get("calendar"):
            yield Problem(
                (*base, "timezone"),
                "is only used with calendar",
                "set calendar: day or month, or remove timezone",
            )
        elif not _is_timezone(timezone):
            yield Problem(
                (*base, "timezone"),
                f"{shorten(timezone)!r} is not an IANA time zone",
                "e.g. Europe/Berlin or UTC",
            )
    parts = item.get("key", ["client_id"])
    if isinstance(parts, list):
        seen: set[str] = set()
        for position, part in enumerate(parts):
            if not isinstance(part, str):
                continue
            try:
                parsed = parse_key_part(part)
            except KeyPartError as exc:
                yield Problem((*base, "key", position), str(exc), exc.hint)
                continue
            if part in seen:
                yield Problem((*base, "key", position), f"{part!r} is listed twice")
            seen.add(part)
            if item.get("phase") == "before_auth" and parsed.kind not in _REQUEST_PARTS:
                location = (*base, "key", position) if "key" in item else (*base, "phase")
                yield Problem(
                    location,
                    f"{part!r} is known only after authentication",
                    "a before_auth limit may use only ip, net: and header: parts",
                )
    apply_to = item.get("apply_to")
    if isinstance(apply_to, dict):
        apis = apply_to.get("apis")
        known = ", ".join(sorted(api_names)) or "none"
        for position, api in enumerate(apis if isinstance(apis, list) else []):
            if isinstance(api, str) and api not in api_names:
                yield Problem(
                    (*base, "apply_to", "apis", position),
                    f"unknown API {shorten(api)!r}",
                    f"known: {known}",
                )
        operations = apply_to.get("operations")
        for position, op in enumerate(operations if isinstance(operations, list) else []):
            if isinstance(op, str):
                yield from _check_operation_name((*base, "apply_to", "operations", position), op)
    costs = item.get("costs")
    if isinstance(costs, dict):
        for op in costs:
            yield from _check_operation_name((*base, "costs", op), op)


def _check_operation_name(location: Location, key: str) -> Iterator[Problem]:
    from finward.config.checks import _check_operation_key  # one rule for auth and limits

    yield from _check_operation_key(location, key)


def _is_timezone(name: str) -> bool:
    # The shape check first: ZoneInfo would read a file named by the value.
    if not _TZ_NAME.fullmatch(name) or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
