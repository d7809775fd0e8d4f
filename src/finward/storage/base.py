"""The state store: shared replay cache, token revocations and client suspensions.

Policies stay sans-IO; the adapter owns one store per worker process and answers
their questions from it. The backend is picked by URL, as the ``limits`` library
does, so the same contract test suite runs against every backend:

``memory://[?max_replay_entries=N]``
    Per process. Not shared between ``--workers`` or replicas (``shared`` is False,
    so the gateway can refuse to start with several workers on it).
``redis://[[user]:password@]host[:port][/db][?timeout_ms=&prefix=&max_connections=&refresh_ms=&max_stale_ms=]``
``rediss://…[&ca_file=/path/ca.pem]``
    Shared by every worker and replica that uses the same server, db and prefix.

Writes (``seen_before``, ``revoke_token``, ``suspend_client``) are async I/O. The
checks made on every request (``is_token_revoked``, ``is_client_suspended``) are
synchronous dictionary reads of a local snapshot that the backend keeps fresh; see
:mod:`finward.storage.redis_store` for the staleness bound.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from finward.auth.replay import DEFAULT_MAX_REPLAY_ENTRIES
from finward.clock import Clock
from finward.errors import FinwardError

# Replay keys are digests made by the caller (``finward.auth.replay.replay_key`` gives 64
# hex chars); refusing anything else keeps raw attacker input (a jti, a nonce) out of
# Redis key names and bounds each entry's size. At least 16 chars = 64+ bits of digest.
_REPLAY_KEY_RE = re.compile(r"[A-Za-z0-9_-]{16,128}")
# jti and client_id come from validated tokens or the admin API, but each one occupies
# memory in every worker's snapshot: bound them. RFC 7519 sets no limit; 256 is ample
# for UUIDs, URNs and hash-based ids.
MAX_ID_CHARS = 256
MAX_ACTOR_CHARS = 256
MAX_REASON_CHARS = 1024
# A URL longer than this is a mistake, not a configuration.
MAX_URL_CHARS = 2048
# Key prefixes are used in Redis SCAN patterns by operators and tests: no glob characters.
_PREFIX_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_DIGITS_RE = re.compile(r"[0-9]{1,9}")

DEFAULT_PREFIX = "finward"
DEFAULT_REDIS_PORT = 6379
# Deadline of each call (pool wait + connect + command + reply). A Redis round trip
# on a LAN is ~0.1-1 ms; 100 ms means "the server is gone or stalled", and a request
# must not wait longer than that for a replay check.
DEFAULT_TIMEOUT_MS = 100
DEFAULT_MAX_CONNECTIONS = 32
# How often each worker checks the change marker. 250 ms keeps the advertised 1 s
# propagation bound with room for a slow round trip; it costs 4 GETs/s per worker.
DEFAULT_REFRESH_MS = 250
# After this long without a successful refresh the snapshot is no longer trusted:
# the synchronous checks raise StateStoreUnavailable instead of answering from stale
# data, so a worker cut off from Redis cannot keep accepting a revoked token.
DEFAULT_MAX_STALE_MS = 1000


class StateStoreError(FinwardError):
    """Base class of state store errors."""


class StateStoreUnavailable(StateStoreError):
    """The store could not answer in time (down, stalled, unreachable, stale snapshot).

    The caller decides: enforcing checks fail closed (503 ``internal_error``),
    observers fail open. Messages never contain the password.
    """


class StateStoreFullError(StateStoreError):
    """The per-process store is full of live replay entries. Always fail closed:
    forgetting entries would reopen the replay window (see ``ReplayCacheFullError``)."""


class StateStoreURLError(StateStoreError, ValueError):
    """The state store URL is malformed or names an unknown backend or option."""


# Stands in for the metadata of a stored record that cannot be decoded.
UNREADABLE_RECORD = "unreadable record"


@dataclass(frozen=True, slots=True)
class Revocation:
    """A revoked access token: refused until ``until`` (epoch seconds)."""

    until: float
    actor: str
    revoked_at: float

    def to_json(self) -> bytes:
        return orjson.dumps({"until": self.until, "actor": self.actor, "at": self.revoked_at})

    @classmethod
    def from_json(cls, raw: bytes) -> Revocation:
        """Decode a stored record. The record's presence is the revocation: unreadable
        metadata must not un-revoke the token, so it stays revoked with no expiry."""
        try:
            data = orjson.loads(raw)
            return cls(float(data["until"]), str(data["actor"]), float(data["at"]))
        except (ValueError, KeyError, TypeError):
            return cls(math.inf, UNREADABLE_RECORD, 0.0)


@dataclass(frozen=True, slots=True)
class Suspension:
    """A suspended client (TPP): refused until unsuspended."""

    actor: str
    reason: str
    since: float

    def to_json(self) -> bytes:
        return orjson.dumps({"actor": self.actor, "reason": self.reason, "since": self.since})

    @classmethod
    def from_json(cls, raw: bytes) -> Suspension:
        """Decode a stored record; an unreadable one still suspends (fails closed)."""
        try:
            data = orjson.loads(raw)
            return cls(str(data["actor"]), str(data["reason"]), float(data["since"]))
        except (ValueError, KeyError, TypeError):
            return cls(UNREADABLE_RECORD, UNREADABLE_RECORD, 0.0)


class StateStore(Protocol):
    """What policies and the admin API need from shared state. One instance per process."""

    @property
    def shared(self) -> bool:
        """True when every worker and replica pointing at the same URL sees the same state."""
        ...

    async def start(self) -> None:
        """Load the snapshot and begin keeping it fresh. Idempotent.

        Raises StateStoreUnavailable when the first load fails; the store keeps
        retrying in the background, so the caller may continue in degraded mode.
        """
        ...

    async def seen_before(self, key: str, expires_at: float) -> bool:
        """Atomic check-and-set: True when ``key`` is recorded and unexpired (a replay),
        False when it was absent and is now recorded until ``expires_at`` (epoch s)."""
        ...

    async def revoke_token(self, jti: str, until: float, *, actor: str) -> None:
        """Refuse the token ``jti`` until ``until`` — its ``exp`` plus the validator's
        clock-skew leeway, after which the token is refused as expired anyway.
        Revoking again keeps the later ``until``."""
        ...

    async def suspend_client(self, client_id: str, *, actor: str, reason: str) -> None:
        """Refuse every request of ``client_id`` until unsuspended."""
        ...

    async def unsuspend_client(self, client_id: str, *, actor: str) -> bool:
        """Lift a suspension; False when the client was not suspended.

        ``actor`` is required so that no change is anonymous; the caller's audit
        event records it."""
        ...

    def is_token_revoked(self, jti: str) -> bool:
        """Synchronous snapshot read for the hot path; may raise StateStoreUnavailable."""
        ...

    def is_client_suspended(self, client_id: str) -> bool:
        """Synchronous snapshot read for the hot path; may raise StateStoreUnavailable."""
        ...

    def get_suspension(self, client_id: str) -> Suspension | None:
        """Who suspended the client and why, from the snapshot; may raise StateStoreUnavailable."""
        ...

    def list_suspensions(self) -> dict[str, Suspension]:
        """Every suspension in the snapshot (a copy), for the admin API; may raise
        StateStoreUnavailable."""
        ...

    async def ping(self) -> bool:
        """True when the backend answers within its timeout. Never raises."""
        ...

    async def close(self) -> None:
        """Stop refreshing and release connections; later calls raise StateStoreUnavailable."""
        ...


@dataclass(frozen=True, slots=True)
class MemoryStoreConfig:
    max_replay_entries: int = DEFAULT_MAX_REPLAY_ENTRIES


@dataclass(frozen=True, slots=True)
class RedisStoreConfig:
    host: str
    port: int = DEFAULT_REDIS_PORT
    db: int = 0
    tls: bool = False
    username: str | None = None
    # Kept out of repr so that logging a config (or a traceback's locals) never shows it.
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    prefix: str = DEFAULT_PREFIX
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    refresh_ms: int = DEFAULT_REFRESH_MS
    max_stale_ms: int = DEFAULT_MAX_STALE_MS

    @property
    def redacted_url(self) -> str:
        """The URL with the password replaced by ``***``: safe for logs and errors."""
        scheme = "rediss" if self.tls else "redis"
        user = self.username or ""
        auth = f"{user}:***@" if self.password is not None else (f"{user}@" if user else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{auth}{host}:{self.port}/{self.db}?prefix={self.prefix}"


StoreConfig = MemoryStoreConfig | RedisStoreConfig

_MEMORY_PARAMS = ("max_replay_entries",)
_REDIS_PARAMS = ("timeout_ms", "prefix", "max_connections", "refresh_ms", "max_stale_ms")
_REDISS_PARAMS = (*_REDIS_PARAMS, "ca_file")


class SnapshotReads:
    """The synchronous per-request checks, answered from a local snapshot.

    Both backends keep revocations and suspensions in local dicts (the Redis one
    refreshes them); they differ only in when the snapshot may be trusted, which
    ``_check_readable`` decides.
    """

    _revoked: dict[str, Revocation]
    _suspended: dict[str, Suspension]
    _clock: Clock

    def _check_readable(self) -> None:
        raise NotImplementedError

    def is_token_revoked(self, jti: str) -> bool:
        self._check_readable()
        revocation = self._revoked.get(jti)
        return revocation is not None and revocation.until > self._clock.now()

    def is_client_suspended(self, client_id: str) -> bool:
        self._check_readable()
        return client_id in self._suspended

    def get_suspension(self, client_id: str) -> Suspension | None:
        self._check_readable()
        return self._suspended.get(client_id)

    def list_suspensions(self) -> dict[str, Suspension]:
        self._check_readable()
        return dict(self._suspended)


def parse_state_store_url(url: str) -> StoreConfig:
    """Parse a state store URL; raise StateStoreURLError naming the problem.

    Error messages name the offending part, never the URL itself, since it may hold
    a password; parser exceptions are not chained for the same reason.
    """
    if not isinstance(url, str) or not url.strip():
        raise StateStoreURLError("state store URL is empty")
    if len(url) > MAX_URL_CHARS:
        raise StateStoreURLError(f"state store URL is longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        hostname = parts.hostname
        port = parts.port
    except ValueError:
        raise StateStoreURLError(
            "state store URL is malformed (bad host or port); "
            "expected memory:// or redis://[:password@]host[:port][/db]"
        ) from None
    if parts.fragment:
        raise StateStoreURLError("state store URL must not have a #fragment")
    if scheme == "memory":
        if parts.netloc or parts.path not in ("", "/"):
            raise StateStoreURLError("memory:// takes no host or path")
        params = _parse_query(parts.query, _MEMORY_PARAMS, scheme)
        entries = _int_param(params, "max_replay_entries", DEFAULT_MAX_REPLAY_ENTRIES, 1, 10**8)
        return MemoryStoreConfig(max_replay_entries=entries)
    if scheme not in ("redis", "rediss"):
        # urlsplit only accepts [a-z0-9+.-] in a scheme, so echoing it is safe.
        raise StateStoreURLError(
            f"unknown state store scheme {scheme!r}; supported: memory://, redis://, rediss://"
        )
    if not hostname:
        raise StateStoreURLError(f"{scheme}:// URL needs a host")
    path = parts.path.removeprefix("/")
    if path and not _DIGITS_RE.fullmatch(path):
        raise StateStoreURLError(f"{scheme}:// database must be a number, as in /0 or /15")
    params = _parse_query(
        parts.query, _REDISS_PARAMS if scheme == "rediss" else _REDIS_PARAMS, scheme
    )
    prefix = params.get("prefix", DEFAULT_PREFIX)
    if not _PREFIX_RE.fullmatch(prefix):
        raise StateStoreURLError("prefix must be 1-64 characters from A-Z a-z 0-9 _ . : -")
    config = RedisStoreConfig(
        host=hostname,
        port=DEFAULT_REDIS_PORT if port is None else port,
        db=int(path) if path else 0,
        tls=scheme == "rediss",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        ca_file=params.get("ca_file"),
        prefix=prefix,
        timeout_ms=_int_param(params, "timeout_ms", DEFAULT_TIMEOUT_MS, 1, 60_000),
        max_connections=_int_param(params, "max_connections", DEFAULT_MAX_CONNECTIONS, 1, 10_000),
        refresh_ms=_int_param(params, "refresh_ms", DEFAULT_REFRESH_MS, 10, 60_000),
        max_stale_ms=_int_param(params, "max_stale_ms", DEFAULT_MAX_STALE_MS, 100, 3_600_000),
    )
    # A refresh cycle takes the poll interval plus one call (at most timeout_ms); with
    # less than one more call of margin, healthy workers would report the store
    # unavailable after a single slow refresh.
    if config.max_stale_ms < config.refresh_ms + 2 * config.timeout_ms:
        raise StateStoreURLError(
            "max_stale_ms must be at least refresh_ms + 2 * timeout_ms "
            f"({config.refresh_ms + 2 * config.timeout_ms} with these settings)"
        )
    return config


def open_state_store(url: str, *, clock: Clock) -> StateStore:
    """Make the store a URL names. Does no I/O: call ``await store.start()`` in the
    worker's event loop, after the fork (connections must not cross processes)."""
    config = parse_state_store_url(url)
    if isinstance(config, MemoryStoreConfig):
        from finward.storage.memory import MemoryStateStore

        return MemoryStateStore(clock=clock, max_replay_entries=config.max_replay_entries)
    try:
        # Imported here so that redis-py stays an optional dependency of memory:// users.
        from finward.storage.redis_store import RedisStateStore
    except ImportError:
        raise StateStoreURLError(
            "redis:// state stores need the 'redis' package (pip install 'finward[redis]')"
        ) from None
    return RedisStateStore(config, clock=clock)


def check_replay_key(key: str) -> None:
    if not isinstance(key, str) or not _REPLAY_KEY_RE.fullmatch(key):
        raise ValueError("replay key must be a digest: 16-128 characters of [A-Za-z0-9_-]")


def check_identifier(kind: str, value: str, max_chars: int = MAX_ID_CHARS) -> None:
    """Bound identifiers and reject control characters (they would end up in logs)."""
    if not isinstance(value, str) or not 0 < len(value) <= max_chars or not value.isprintable():
        raise ValueError(f"{kind} must be 1-{max_chars} printable characters")


def check_reason(reason: str) -> None:
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS or not reason.isprintable():
        raise ValueError(f"reason must be at most {MAX_REASON_CHARS} printable characters")


def check_instant(kind: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{kind} must be a finite number of epoch seconds")


def _parse_query(query: str, known: tuple[str, ...], scheme: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise StateStoreURLError(f"{scheme}:// query string is malformed") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in known:
            # Only the name is echoed: a misplaced value could be a secret.
            shown = name if _PREFIX_RE.fullmatch(name) else "?"
            raise StateStoreURLError(
                f"unknown {scheme}:// option {shown!r}; known: {', '.join(known)}"
            )
        if name in params:
            raise StateStoreURLError(f"{scheme}:// option {name!r} is given twice")
        params[name] = value
    return params


def _int_param(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not _DIGITS_RE.fullmatch(raw) or not low <= int(raw) <= high:
        raise StateStoreURLError(f"{name} must be an integer from {low} to {high}")
    return int(raw)
