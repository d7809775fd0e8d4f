"""Rate limits, quotas and concurrency caps behind a URL (see :mod:`finward.limits.base`).

``memory://[?max_keys=N]``
    Exact within one process; not shared between workers or replicas.
``redis://[[user]:password@]host[:port][/db][?timeout_ms=&prefix=&max_connections=&clock=]``
``rediss://…[&ca_file=/path/ca.pem]``
    Exact across every worker and replica using the same server, db and prefix; one
    round trip per request. ``clock=server`` (default) counts time on Redis's clock;
    ``clock=client`` uses the caller's ``now`` (deterministic tests, benchmarks).

The grammar, defaults and validation of the Redis part are the state store's
(:func:`finward.storage.parse_state_store_url`). This package is sans-IO; the Redis
store is imported from the adapters only when a ``redis://`` URL is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from finward.clock import Clock
from finward.errors import FinwardError
from finward.limits.base import (
    REASONS,
    Algorithm,
    Calendar,
    Check,
    LimitRule,
    LimitStore,
    LimitStoreUnavailable,
    Outcome,
    StoreErrorMode,
)
from finward.limits.memory import DEFAULT_MAX_KEYS, MemoryLimitStore
from finward.storage.base import (
    MAX_URL_CHARS,
    RedisStoreConfig,
    StateStoreURLError,
    parse_state_store_url,
)

__all__ = [
    "REASONS",
    "Algorithm",
    "Calendar",
    "Check",
    "LimitRule",
    "LimitStore",
    "LimitStoreURLError",
    "LimitStoreUnavailable",
    "MemoryLimitConfig",
    "MemoryLimitStore",
    "Outcome",
    "RedisLimitConfig",
    "StoreErrorMode",
    "open_limit_store",
    "parse_limit_store_url",
]

MAX_KEYS_CEILING = 100_000_000
# The state store's refresh_ms / max_stale_ms mean nothing here: refused as unknown
# rather than ignored, so a copied URL does not carry settings without effect.
_REDIS_PARAMS = ("timeout_ms", "prefix", "max_connections", "clock")
# parse_state_store_url checks max_stale_ms >= refresh_ms + 2 * timeout_ms, which is about
# the state snapshot; pinning it to its maximum keeps every timeout_ms valid here.
_NEUTRAL_MAX_STALE = ("max_stale_ms", "3600000")


class LimitStoreURLError(FinwardError, ValueError):
    """The limit store URL is malformed or names an unknown backend or option."""


@dataclass(frozen=True, slots=True)
class MemoryLimitConfig:
    max_keys: int = DEFAULT_MAX_KEYS


@dataclass(frozen=True, slots=True)
class RedisLimitConfig:
    redis: RedisStoreConfig
    server_time: bool = True


LimitStoreConfig = MemoryLimitConfig | RedisLimitConfig


def parse_limit_store_url(url: str) -> LimitStoreConfig:
    """Parse a limit store URL; raise ``LimitStoreURLError`` naming the problem (never
    echoing the URL, which may hold a password)."""
    if not isinstance(url, str) or not url.strip():
        raise LimitStoreURLError("limit store URL is empty")
    if len(url) > MAX_URL_CHARS:
        raise LimitStoreURLError(f"limit store URL is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url.strip())
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise LimitStoreURLError("limit store URL is malformed") from None
    scheme = parts.scheme.lower()
    names = [name for name, _ in pairs]
    for name in set(names):
        if names.count(name) > 1:
            raise LimitStoreURLError(f"{scheme}:// option {_shown(name)!r} is given twice")
    params = dict(pairs)
    if scheme == "memory":
        if parts.netloc or parts.path not in ("", "/") or parts.fragment:
            raise LimitStoreURLError("memory:// takes no host or path")
        unknown = set(params) - {"max_keys"}
        if unknown:
            raise LimitStoreURLError(
                f"unknown memory:// option {_shown(min(unknown))!r}; known: max_keys"
            )
        raw = params.get("max_keys", str(DEFAULT_MAX_KEYS))
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_KEYS_CEILING):
            raise LimitStoreURLError(f"max_keys must be an integer from 1 to {MAX_KEYS_CEILING}")
        return MemoryLimitConfig(max_keys=int(raw))
    known = (*_REDIS_PARAMS, "ca_file") if scheme == "rediss" else _REDIS_PARAMS
    unknown = set(params) - set(known)
    if unknown and scheme in ("redis", "rediss"):
        raise LimitStoreURLError(
            f"unknown {scheme}:// option {_shown(min(unknown))!r}; known: {', '.join(known)}"
        )
    clock = params.pop("clock", "server")
    if clock not in ("server", "client"):
        raise LimitStoreURLError("clock must be 'server' (Redis's clock) or 'client'")
    query = urlencode([*params.items(), _NEUTRAL_MAX_STALE]) if scheme.startswith("redis") else ""
    try:
        config = parse_state_store_url(urlunsplit(parts._replace(query=query)))
    except StateStoreURLError as exc:
        raise LimitStoreURLError(str(exc).replace("state store", "limit store")) from None
    if not isinstance(config, RedisStoreConfig):  # memory:// was handled above
        raise LimitStoreURLError("unknown limit store scheme")
    return RedisLimitConfig(redis=config, server_time=clock == "server")


def open_limit_store(url: str, *, clock: Clock) -> LimitStore:
    """Make the store a URL names. Does no I/O: ``await store.start()`` in the worker's
    event loop, after the fork (connections must not cross processes)."""
    config = parse_limit_store_url(url)
    if isinstance(config, MemoryLimitConfig):
        return MemoryLimitStore(max_keys=config.max_keys)
    try:
        # Imported here: this package stays sans-IO and redis-py optional for memory://.
        from finward.adapters.redis_limits import RedisLimitStore
    except ImportError:
        raise LimitStoreURLError(
            "redis:// limit stores need the 'redis' package (pip install 'finward[redis]')"
        ) from None
    return RedisLimitStore(config.redis, clock=clock, server_time=config.server_time)


def _shown(name: str) -> str:
    # Only option names are echoed, and only harmless ones: a misplaced value may be secret.
    return name if name.replace("_", "").isalnum() and len(name) <= 64 else "?"
