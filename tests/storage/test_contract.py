"""One contract, every backend: memory:// and redis:// must behave the same.

Where the backends differ by design (memory:// is per process), the test asserts
the documented difference, keyed on ``store.shared``.
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from finward.auth.replay import replay_key
from finward.clock import SystemClock
from finward.storage import (
    MemoryStateStore,
    StateStore,
    StateStoreUnavailable,
    StateStoreURLError,
    open_state_store,
    parse_state_store_url,
)
from finward.storage.base import MemoryStoreConfig, RedisStoreConfig
from tests.storage import wait_until
from tests.storage.conftest import StoreHarness

# The bound promised to operators: a revocation or suspension made through any
# worker or replica takes effect everywhere within this many seconds.
PROPAGATION_BOUND_S = 1.0


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


# --- replay cache -------------------------------------------------------------------


async def test_first_use_is_recorded_and_second_is_a_replay(
    harness: StoreHarness, store: StateStore
) -> None:
    key = replay_key("thumbprint", "jti-1")
    expires = harness.clock.now() + 60
    assert await store.seen_before(key, expires) is False
    assert await store.seen_before(key, expires) is True
    assert await store.seen_before(digest("other"), expires) is False


async def test_exactly_one_of_200_concurrent_uses_wins(
    harness: StoreHarness, store: StateStore
) -> None:
    # Shared backends race across two stores (two workers); memory:// races in one.
    stores = [store, await harness.open()] if store.shared else [store]
    key = digest("raced")
    expires = harness.clock.now() + 60
    results = await asyncio.gather(
        *(stores[i % len(stores)].seen_before(key, expires) for i in range(200))
    )
    assert results.count(False) == 1
    assert results.count(True) == 199


async def test_replay_entry_expires(harness: StoreHarness, store: StateStore) -> None:
    key = digest("short-lived")
    assert await store.seen_before(key, harness.clock.now() + 0.3) is False
    assert await store.seen_before(key, harness.clock.now() + 0.3) is True
    await harness.advance(0.5)
    # Forgotten after expiry, so the key is recorded afresh.
    assert await store.seen_before(key, harness.clock.now() + 0.3) is False


async def test_already_expired_entry_is_never_a_replay(
    harness: StoreHarness, store: StateStore
) -> None:
    key = digest("stale")
    assert await store.seen_before(key, harness.clock.now() - 1) is False
    assert await store.seen_before(key, harness.clock.now() - 1) is False


@pytest.mark.parametrize(
    "key",
    [
        "urn:example:jti:0123456789",  # raw token input, not a digest
        "a" * 15,
        "a" * 129,
        "a" * 63 + ":",
        "a" * 63 + "*",
        "a" * 63 + "\n",
        "a" * 63 + "é",
        "",
    ],
)
async def test_replay_keys_must_be_digests(store: StateStore, key: str) -> None:
    with pytest.raises(ValueError, match="digest"):
        await store.seen_before(key, 1e12)


@pytest.mark.parametrize("expires_at", [float("nan"), float("inf")])
async def test_replay_expiry_must_be_finite(store: StateStore, expires_at: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        await store.seen_before(digest("x"), expires_at)


# --- revocations --------------------------------------------------------------------


async def test_revocation_is_visible_at_once_to_the_revoking_store(
    harness: StoreHarness, store: StateStore
) -> None:
    assert store.is_token_revoked("jti-a") is False
    await store.revoke_token("jti-a", harness.clock.now() + 60, actor="admin:alice")
    assert store.is_token_revoked("jti-a") is True
    assert store.is_token_revoked("jti-b") is False


async def test_revocation_ends_after_until(harness: StoreHarness, store: StateStore) -> None:
    await store.revoke_token("jti-exp", harness.clock.now() + 0.3, actor="admin")
    assert store.is_token_revoked("jti-exp") is True
    await harness.advance(0.5)
    assert store.is_token_revoked("jti-exp") is False


async def test_revoking_again_keeps_the_later_until(
    harness: StoreHarness, store: StateStore
) -> None:
    now = harness.clock.now()
    await store.revoke_token("jti-twice", now + 0.6, actor="admin")
    await store.revoke_token("jti-twice", now + 0.1, actor="playbook")
    await harness.advance(0.3)
    assert store.is_token_revoked("jti-twice") is True
    await harness.advance(0.5)
    assert store.is_token_revoked("jti-twice") is False


async def test_revocation_already_past_is_a_no_op(harness: StoreHarness, store: StateStore) -> None:
    await store.revoke_token("jti-old", harness.clock.now() - 1, actor="admin")
    assert store.is_token_revoked("jti-old") is False


async def test_revocation_by_another_worker(harness: StoreHarness, store: StateStore) -> None:
    other = await harness.open()
    await other.revoke_token("jti-remote", harness.clock.now() + 60, actor="admin")
    if not store.shared:
        # Documented: memory:// is per process, so --workers > 1 must not use it.
        assert store.is_token_revoked("jti-remote") is False
        return
    took = await wait_until(
        lambda: store.is_token_revoked("jti-remote"), within=PROPAGATION_BOUND_S
    )
    assert took <= PROPAGATION_BOUND_S


async def test_local_writes_survive_a_reload_caused_by_another_worker(
    harness: StoreHarness, store: StateStore
) -> None:
    await store.revoke_token("jti-local", harness.clock.now() + 60, actor="admin")
    other = await harness.open()
    await other.suspend_client("tpp-remote", actor="admin", reason="fraud")
    if store.shared:
        await wait_until(
            lambda: store.is_client_suspended("tpp-remote"), within=PROPAGATION_BOUND_S
        )
    assert store.is_token_revoked("jti-local") is True


# --- suspensions --------------------------------------------------------------------


async def test_suspend_and_unsuspend(harness: StoreHarness, store: StateStore) -> None:
    assert store.is_client_suspended("tpp-1") is False
    assert store.get_suspension("tpp-1") is None
    await store.suspend_client("tpp-1", actor="admin:bob", reason="BOLA enumeration")
    assert store.is_client_suspended("tpp-1") is True
    assert store.is_client_suspended("tpp-2") is False
    suspension = store.get_suspension("tpp-1")
    assert suspension is not None
    assert (suspension.actor, suspension.reason) == ("admin:bob", "BOLA enumeration")
    assert abs(suspension.since - harness.clock.now()) < 5

    assert await store.unsuspend_client("tpp-1", actor="admin:bob") is True
    assert store.is_client_suspended("tpp-1") is False
    assert await store.unsuspend_client("tpp-1", actor="admin:bob") is False


async def test_suspension_and_unsuspension_by_another_worker(
    harness: StoreHarness, store: StateStore
) -> None:
    other = await harness.open()
    await other.suspend_client("tpp-r", actor="playbook:stuffing", reason="credential stuffing")
    if not store.shared:
        assert store.is_client_suspended("tpp-r") is False
        return
    await wait_until(lambda: store.is_client_suspended("tpp-r"), within=PROPAGATION_BOUND_S)
    suspension = store.get_suspension("tpp-r")
    assert suspension is not None and suspension.actor == "playbook:stuffing"

    assert await other.unsuspend_client("tpp-r", actor="admin") is True
    await wait_until(lambda: not store.is_client_suspended("tpp-r"), within=PROPAGATION_BOUND_S)


# --- argument validation, lifecycle -------------------------------------------------


@pytest.mark.parametrize("jti", ["", "x" * 257, "a\nb", "a\x00b"])
async def test_bad_jti_is_rejected(store: StateStore, jti: str) -> None:
    with pytest.raises(ValueError, match="jti"):
        await store.revoke_token(jti, 1e12, actor="admin")


@pytest.mark.parametrize(
    ("client_id", "actor", "reason", "match"),
    [
        ("", "admin", "r", "client_id"),
        ("tpp", "", "r", "actor"),
        ("tpp", "admin", "line\ninjection", "reason"),
        ("tpp", "admin", "r" * 1025, "reason"),
    ],
)
async def test_bad_suspension_arguments_are_rejected(
    store: StateStore, client_id: str, actor: str, reason: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        await store.suspend_client(client_id, actor=actor, reason=reason)
    assert store.is_client_suspended("tpp") is False


async def test_ping(store: StateStore) -> None:
    assert await store.ping() is True


async def test_closed_store_refuses_every_call(store: StateStore) -> None:
    await store.close()
    assert await store.ping() is False
    with pytest.raises(StateStoreUnavailable):
        await store.seen_before(digest("after-close"), 1e12)
    with pytest.raises(StateStoreUnavailable):
        await store.revoke_token("jti", 1e12, actor="admin")
    with pytest.raises(StateStoreUnavailable):
        store.is_token_revoked("jti")
    with pytest.raises(StateStoreUnavailable):
        store.is_client_suspended("tpp")
    await store.close()  # idempotent


# --- URLs ---------------------------------------------------------------------------


def test_memory_url() -> None:
    assert parse_state_store_url("memory://") == MemoryStoreConfig()
    assert parse_state_store_url("memory://?max_replay_entries=5") == MemoryStoreConfig(5)
    store = open_state_store("memory://", clock=SystemClock())
    assert isinstance(store, MemoryStateStore) and store.shared is False


def test_redis_url_with_every_option() -> None:
    config = parse_state_store_url(
        "rediss://app:s%40cret@Redis.Example:6380/3?timeout_ms=50&prefix=fw:eu-1"
        "&max_connections=8&refresh_ms=100&max_stale_ms=2000&ca_file=/etc/ca.pem"
    )
    assert config == RedisStoreConfig(
        host="redis.example",
        port=6380,
        db=3,
        tls=True,
        username="app",
        password="s@cret",
        ca_file="/etc/ca.pem",
        prefix="fw:eu-1",
        timeout_ms=50,
        max_connections=8,
        refresh_ms=100,
        max_stale_ms=2000,
    )
    assert "s@cret" not in repr(config) and "cret" not in config.redacted_url
    assert config.redacted_url == "rediss://app:***@redis.example:6380/3?prefix=fw:eu-1"


def test_redis_url_defaults() -> None:
    config = parse_state_store_url("redis://localhost")
    assert config == RedisStoreConfig(host="localhost")
    assert (config.port, config.db, config.prefix, config.timeout_ms) == (6379, 0, "finward", 100)
    assert parse_state_store_url("redis://:pw@[::1]:7000/") == RedisStoreConfig(
        host="::1", port=7000, password="pw"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("postgres://db/x", "unknown state store scheme 'postgres'"),
        ("localhost:6379", "unknown state store scheme"),
        ("memory://host", "no host or path"),
        ("memory://?max_replay_entries=0", "max_replay_entries"),
        ("memory://?size=1", "unknown memory:// option 'size'"),
        ("redis://", "needs a host"),
        ("redis://:pw@/0", "needs a host"),
        ("redis://h:99999", "malformed"),
        ("redis://h:port", "malformed"),
        ("redis://h/db1", "database must be a number"),
        ("redis://h/0/extra", "database must be a number"),
        ("redis://h?timeout_ms=0", "timeout_ms"),
        ("redis://h?timeout_ms=abc", "timeout_ms"),
        ("redis://h?timout_ms=100", "unknown redis:// option 'timout_ms'"),
        ("redis://h?prefix=a*b", "prefix"),
        ("redis://h?prefix=", "prefix"),
        ("redis://h?prefix=a&prefix=b", "given twice"),
        ("redis://h?ca_file=/x", "unknown redis:// option 'ca_file'"),
        ("redis://h?refresh_ms=900", "max_stale_ms must be at least"),
        ("redis://h#frag", "fragment"),
        ("redis://h?" + "a" * 3000, "longer than"),
    ],
)
def test_bad_urls_are_refused_with_a_clear_message(url: str, message: str) -> None:
    with pytest.raises(StateStoreURLError, match=message):
        open_state_store(url, clock=SystemClock())


@pytest.mark.parametrize(
    "url",
    [
        "redis://user:TOPSECRET@h:99999/0",
        "redis://:TOPSECRET@h/db",
        "redis://:TOPSECRET@h?password=TOPSECRET",
        "redis://:TOPSECRET@h?timeout_ms=TOPSECRET",
        "redis://:TOPSECRET@[::1/0",
    ],
)
def test_url_errors_never_show_the_password(url: str) -> None:
    with pytest.raises(StateStoreURLError) as caught:
        parse_state_store_url(url)
    assert "TOPSECRET" not in str(caught.value)
    # Not chained to urllib's exception either: its message may quote the netloc.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_redis_store_repr_hides_the_password() -> None:
    store = open_state_store("redis://admin:TOPSECRET@127.0.0.1:1/0", clock=SystemClock())
    assert "TOPSECRET" not in repr(store)
    assert "***" in repr(store)
    assert store.shared is True
