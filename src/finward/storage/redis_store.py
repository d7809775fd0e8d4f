"""``redis://`` / ``rediss://``: the state store shared by every worker and replica.

Keys (``P`` is the ``prefix`` URL option, default ``finward``)::

    P:replay:<digest>   "1", with a TTL       replay cache (SET NX PX)
    P:revoked           hash jti -> JSON      revocations {until, actor, at}
    P:revoked:exp       zset jti -> until     index used to purge expired revocations
    P:suspended         hash client -> JSON   suspensions {actor, reason, since}
    P:version           random token          changed by every revocation/suspension write

Staleness bound. Each worker keeps revocations and suspensions in a local snapshot so
the per-request checks are dictionary reads. An asyncio task per process reads
``P:version`` every ``refresh_ms`` (250 ms) and reloads the snapshot (one MULTI) when it
changed, so a change committed at time t is visible in every healthy worker by
t + refresh_ms + one call (at most timeout_ms): ~250 ms, at most 350 ms by default. A
worker whose refreshes fail stops answering from its snapshot ``max_stale_ms`` (1 s)
after the start of its last successful refresh: the synchronous checks raise
StateStoreUnavailable and the caller fails closed or open. Either way no worker honours
a revoked token for more than about 1 s after the change. The marker is a random token,
not a counter, so that a restarted (emptied) Redis cannot make an old version current.

Durability is Redis's: a server without persistence forgets revocations and suspensions
when it restarts (the snapshot follows Redis), so run it with AOF, or re-apply them.

Failures. Every call answers or raises StateStoreUnavailable within ``timeout_ms``
(100 ms): one deadline covers the pool wait, connecting, one immediate reconnect on a
dropped connection (a restarted server leaves dead sockets in the pool), the write and
the reply. A call cut off mid-command closes its connection (redis-py disconnects on
cancellation), so a late reply can never be read as the answer to another command.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from finward.clock import Clock
from finward.storage.base import (
    RedisStoreConfig,
    Revocation,
    SnapshotReads,
    StateStoreError,
    StateStoreUnavailable,
    Suspension,
    check_identifier,
    check_instant,
    check_reason,
    check_replay_key,
)

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Keeps the later `until` when a token is revoked twice, purges a bounded batch of
# expired entries (so the hash cannot grow without bound and no write pays for a large
# backlog), and changes the version token: all in one atomic step.
_REVOKE_LUA = """
local current = redis.call('ZSCORE', KEYS[2], ARGV[1])
if (not current) or tonumber(current) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[4], 'LIMIT', 0, 100)
for _, jti in ipairs(expired) do
  redis.call('ZREM', KEYS[2], jti)
  redis.call('HDEL', KEYS[1], jti)
end
redis.call('SET', KEYS[3], ARGV[5])
return 1
"""
# Replay checks per pipeline: bounds one reply's size and one call's share of the
# deadline (Redis handles a SET in ~1-2 us; the client parses ~5-10 us per reply).
_MAX_PIPELINE = 1000


class RedisStateStore(SnapshotReads):
    """Shared :class:`~finward.storage.base.StateStore` over Redis 6.2+.

    Open one per worker process, after the fork, and ``await start()`` in its loop.
    """

    def __init__(self, config: RedisStoreConfig, *, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._timeout_s = config.timeout_ms / 1000
        self._refresh_s = config.refresh_ms / 1000
        self._max_stale_s = config.max_stale_ms / 1000
        prefix = config.prefix
        self._k_replay = f"{prefix}:replay:"
        self._k_revoked = f"{prefix}:revoked"
        self._k_revoked_exp = f"{prefix}:revoked:exp"
        self._k_suspended = f"{prefix}:suspended"
        self._k_version = f"{prefix}:version"
        self._redis = make_client(config)
        self._revoke_script = self._redis.register_script(_REVOKE_LUA)
        # Connections made in one process must never be used by a forked child: two
        # processes reading replies from one socket would get each other's answers.
        self._pid = os.getpid()
        self._revoked: dict[str, Revocation] = {}
        self._suspended: dict[str, Suspension] = {}
        self._version: bytes | None = None
        self._loaded = False
        # Set by local writes, which apply their effect at once without knowing the
        # version they produce: the next refresh reloads instead of trusting the
        # version (a Redis restart can make an old version look current again).
        self._dirty = False
        self._fresh_at = -math.inf  # clock.monotonic() at the last confirmed-current snapshot
        # Serialises snapshot reloads with this process's own writes, so a reload that
        # read Redis before a local write cannot overwrite that write's local effect.
        self._lock = asyncio.Lock()
        # One slot per pooled connection: a burst waits for a free connection instead
        # of opening thousands per worker against Redis's maxclients.
        self._slots = asyncio.Semaphore(config.max_connections)
        self._refresher: asyncio.Task[None] | None = None
        self._healthy = True
        self._closed = False
        self._replays: list[tuple[str, int, asyncio.Future[bool]]] = []
        self._replays_in_flight = 0
        self._flushes: set[asyncio.Task[None]] = set()  # strong refs until done

    def __repr__(self) -> str:
        return f"RedisStateStore({self._config.redacted_url})"

    @property
    def shared(self) -> bool:
        return True

    async def start(self) -> None:
        self._check_usable()
        if self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_forever(), name=f"finward-state-refresh-{self._config.prefix}"
            )
        await self._refresh()

    async def seen_before(self, key: str, expires_at: float) -> bool:
        check_replay_key(key)
        check_instant("expires_at", expires_at)
        # A relative TTL measured on the gateway's (injected) clock: the answer does not
        # depend on Redis's clock agreeing with ours, and matches the memory backend.
        ttl_ms = math.ceil((expires_at - self._clock.now()) * 1000)
        if ttl_ms <= 0:
            self._check_usable()
            return False
        name = self._k_replay + key
        if self._replays_in_flight:
            # Adaptive batching: while a check is on the wire, later ones queue and go
            # together in one pipeline next loop turn. Under load that is ~10x cheaper
            # than a pooled command each; a lone call still goes straight out.
            self._check_usable()
            answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._replays.append((name, ttl_ms, answer))
            if len(self._replays) == 1:
                asyncio.get_running_loop().call_soon(self._flush_replays)
            return await answer
        self._replays_in_flight += 1
        try:
            created = await self._run(lambda: self._redis.set(name, b"1", nx=True, px=ttl_ms))
        finally:
            self._replays_in_flight -= 1
        return not created

    async def revoke_token(self, jti: str, until: float, *, actor: str) -> None:
        check_identifier("jti", jti)
        check_instant("until", until)
        check_identifier("actor", actor)
        now = self._clock.now()
        if until <= now:
            self._check_usable()
            return
        until = float(until)
        revocation = Revocation(until=until, actor=actor, revoked_at=now)
        keys = [self._k_revoked, self._k_revoked_exp, self._k_version]
        args: list[str | bytes] = [
            jti,
            repr(until),
            revocation.to_json(),
            repr(now),
            _new_version(),
        ]

        async def write() -> None:
            await self._revoke_script(keys=keys, args=args, client=self._redis)
            current = self._revoked.get(jti)
            if current is None or current.until < until:
                self._revoked[jti] = revocation
            self._dirty = True

        await self._run(write, locked=True)

    async def suspend_client(self, client_id: str, *, actor: str, reason: str) -> None:
        check_identifier("client_id", client_id)
        check_identifier("actor", actor)
        check_reason(reason)
        suspension = Suspension(actor=actor, reason=reason, since=self._clock.now())

        async def write() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._k_suspended, client_id, suspension.to_json())
                pipe.set(self._k_version, _new_version())
                await pipe.execute()
            self._suspended[client_id] = suspension
            self._dirty = True

        await self._run(write, locked=True)

    async def unsuspend_client(self, client_id: str, *, actor: str) -> bool:
        check_identifier("client_id", client_id)
        check_identifier("actor", actor)

        async def write() -> bool:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(self._k_suspended, client_id)
                pipe.set(self._k_version, _new_version())
                removed, _ = await pipe.execute()
            self._suspended.pop(client_id, None)
            self._dirty = True
            return bool(removed)

        return await self._run(write, locked=True)

    def _check_readable(self) -> None:
        self._check_fresh()

    async def ping(self) -> bool:
        try:
            return bool(await self._run(self._redis.ping))
        except StateStoreError:
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        refresher, self._refresher = self._refresher, None
        if refresher is not None:
            refresher.cancel()
            # Bounded: the loop also exits on its own once it sees _closed.
            await asyncio.wait({refresher}, timeout=self._timeout_s + self._refresh_s)
        if self._flushes:  # let in-flight replay checks answer rather than vanish
            await asyncio.wait(self._flushes, timeout=self._timeout_s)
        await self._redis.aclose()

    def _flush_replays(self) -> None:
        batch, self._replays = self._replays, []
        for start in range(0, len(batch), _MAX_PIPELINE):
            task = asyncio.get_running_loop().create_task(
                self._send_replays(batch[start : start + _MAX_PIPELINE])
            )
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _send_replays(self, batch: list[tuple[str, int, asyncio.Future[bool]]]) -> None:
        async def send() -> list[Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name, ttl_ms, _ in batch:
                    pipe.set(name, b"1", nx=True, px=ttl_ms)
                return await pipe.execute()

        message, cause = "replay check interrupted", None
        self._replays_in_flight += 1
        try:
            created = await self._run(send)
            for (*_, answer), was_created in zip(batch, created, strict=True):
                if not answer.done():  # a caller that gave up has a cancelled future
                    answer.set_result(not was_created)
        except StateStoreError as exc:
            message, cause = str(exc), exc.__cause__
        finally:
            self._replays_in_flight -= 1
            # Whatever happened (even a bug or a cancellation), no caller waits forever.
            for *_, answer in batch:
                if not answer.done():
                    error = StateStoreUnavailable(message)  # one instance per waiting task
                    error.__cause__ = cause
                    answer.set_exception(error)

    async def _refresh(self) -> None:
        started = self._clock.monotonic()
        await self._run(self._sync_snapshot, locked=True)
        # The snapshot matches Redis as of some moment after `started`: measure age from
        # there, which can only overstate it.
        self._fresh_at = max(self._fresh_at, started)

    async def _sync_snapshot(self) -> None:
        version = await self._redis.get(self._k_version)
        if self._loaded and not self._dirty and version == self._version:
            return
        # Read the marker with the data, atomically, so the snapshot is tagged with
        # exactly the version it reflects.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._k_version)
            pipe.hgetall(self._k_revoked)
            pipe.hgetall(self._k_suspended)
            version, revoked, suspended = await pipe.execute()
        now = self._clock.now()
        self._revoked = {
            jti.decode("utf-8", "replace"): entry
            for jti, raw in revoked.items()
            if (entry := Revocation.from_json(raw)).until > now
        }
        self._suspended = {
            client.decode("utf-8", "replace"): Suspension.from_json(raw)
            for client, raw in suspended.items()
        }
        self._version = version
        self._loaded = True
        self._dirty = False

    async def _refresh_forever(self) -> None:
        # Sleep first: start() has just refreshed. A fixed pause after each attempt
        # (not a fixed rate) means a slow server never sees overlapping refreshes.
        while not self._closed:
            await asyncio.sleep(self._refresh_s)
            try:
                await self._refresh()
            except StateStoreUnavailable as exc:
                if self._healthy:
                    self._healthy = False
                    _log.warning("state store refresh failing, snapshot ageing: %s", exc)
                continue
            except Exception:
                # A bug here must not stop refreshing for good; if it persists the
                # snapshot goes stale and the checks raise, which fails safe.
                _log.exception("unexpected error refreshing the state snapshot")
                continue
            if not self._healthy:
                self._healthy = True
                _log.warning("state store refresh recovered")

    async def _run(self, operation: Callable[[], Awaitable[_T]], *, locked: bool = False) -> _T:
        self._check_usable()
        try:
            # One deadline for the whole call: pool wait, connect, a reconnect, the
            # command and (for writes) waiting for an in-flight reload.
            async with asyncio.timeout(self._timeout_s):
                if not locked:
                    async with self._slots:
                        return await operation()
                async with self._lock, self._slots:
                    return await operation()
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            raise StateStoreUnavailable(f"state store {unavailable(exc, self._config)}") from exc

    def _check_usable(self) -> None:
        if self._closed:
            raise StateStoreUnavailable("state store is closed")
        if os.getpid() != self._pid:
            raise StateStoreError(
                "state store used in a forked process; open one per worker after the fork"
            )

    def _check_fresh(self) -> None:
        if self._closed:
            raise StateStoreUnavailable("state store is closed")
        age = self._clock.monotonic() - self._fresh_at
        if age > self._max_stale_s:
            if not self._loaded:
                raise StateStoreUnavailable("state snapshot not loaded yet (call start())")
            raise StateStoreUnavailable(
                f"state snapshot is {age:.1f} s old (limit {self._max_stale_s:g} s): "
                f"{self._config.redacted_url} unreachable"
            )


def unavailable(exc: BaseException, config: RedisStoreConfig) -> str:
    """Why a call to the server at ``config`` failed, for the caller's error message:
    the redacted URL and the deadline, or the error's type and (bounded) text."""
    if isinstance(exc, TimeoutError) and not isinstance(exc, RedisError):
        detail = f"no answer within {config.timeout_ms} ms"
    else:
        detail = f"{type(exc).__name__}: {exc}"[:200]
    return f"{config.redacted_url} unavailable ({detail})"


def make_client(config: RedisStoreConfig) -> Redis:
    # Certificate and host name verification stay on (redis-py's defaults for TLS).
    tls: dict[str, Any] = {"ssl_ca_certs": config.ca_file} if config.tls else {}
    pool = ConnectionPool(
        # A backstop only: RedisStateStore._slots makes callers wait (within their
        # deadline) for a connection, more cheaply than BlockingConnectionPool.
        max_connections=config.max_connections,
        host=config.host,
        port=config.port,
        db=config.db,
        username=config.username,
        password=config.password,
        # No socket read/write timeout: _run puts one deadline around each call. With
        # one, redis-py wraps every write in asyncio.wait_for: a task per command, and
        # on Python 3.11 a cancellation racing completion is lost (CPython gh-86296).
        socket_timeout=None,
        socket_connect_timeout=config.timeout_ms / 1000,
        socket_keepalive=True,
        client_name="finward",
        driver_info=None,  # skip CLIENT SETINFO: two fewer round trips per new connection
        # redis-py's default is 10 retries with backoff (seconds). One immediate retry on
        # a dropped connection replaces a dead pooled socket; timeouts are not retried.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        connection_class=SSLConnection if config.tls else Connection,
        **tls,
    )
    return Redis.from_pool(pool)


def _new_version() -> str:
    return os.urandom(16).hex()
