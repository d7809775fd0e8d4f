"""The Redis backend when Redis misbehaves, on throwaway servers we stop, freeze, restart.

Each server is a real ``redis-server`` on a free loopback port with persistence off;
every process is killed at teardown whatever the test did to it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import trustme

import finward.storage.redis_store as redis_store
from finward.clock import SystemClock
from finward.storage import StateStore, StateStoreError, StateStoreUnavailable, open_state_store
from tests.services import free_port
from tests.storage import wait_until

pytestmark = pytest.mark.redis

# What "fail fast" means for a caller: the default deadline is 100 ms; the rest is
# slack for a loaded 2-core CI machine.
FAIL_FAST_S = 0.5


@pytest.fixture
async def open_store() -> Any:
    stores: list[StateStore] = []

    async def open_(url: str, *, start: bool = True) -> StateStore:
        store = open_state_store(url, clock=SystemClock())
        stores.append(store)
        if start:
            await store.start()
        return store

    yield open_
    for store in stores:
        await store.close()


def digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


async def fails_fast(call: Callable[[], Awaitable[object]]) -> StateStoreUnavailable:
    started = time.monotonic()
    with pytest.raises(StateStoreUnavailable) as caught:
        await call()
    elapsed = time.monotonic() - started
    assert elapsed < FAIL_FAST_S, f"took {elapsed:.3f} s to fail"
    return caught.value


def raises_unavailable(check: Callable[[], object]) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            check()
        except StateStoreUnavailable:
            return True
        return False

    return probe


# --- server down, restarted -----------------------------------------------------------


async def test_calls_fail_fast_while_the_server_is_down(make_server: Any, open_store: Any) -> None:
    server = make_server()
    store = await open_store(f"redis://127.0.0.1:{server.port}/0")
    assert await store.seen_before(digest("before"), time.time() + 60) is False
    server.stop()

    await fails_fast(lambda: store.seen_before(digest("during"), time.time() + 60))
    await fails_fast(lambda: store.revoke_token("jti", time.time() + 60, actor="admin"))
    await fails_fast(lambda: store.suspend_client("tpp", actor="admin", reason="r"))
    await fails_fast(lambda: store.unsuspend_client("tpp", actor="admin"))
    # A burst of concurrent checks (batched into pipelines) fails fast as well.
    started = time.monotonic()
    results = await asyncio.gather(
        *(store.seen_before(digest(f"burst{i}"), time.time() + 60) for i in range(50)),
        return_exceptions=True,
    )
    assert all(isinstance(r, StateStoreUnavailable) for r in results)
    assert time.monotonic() - started < FAIL_FAST_S
    started = time.monotonic()
    assert await store.ping() is False
    assert time.monotonic() - started < FAIL_FAST_S


async def test_store_reconnects_by_itself_after_a_restart(
    make_server: Any, open_store: Any
) -> None:
    server = make_server()
    url = f"redis://127.0.0.1:{server.port}/0"
    store = await open_store(url)
    assert await store.seen_before(digest("a"), time.time() + 60) is False
    server.stop()
    await fails_fast(lambda: store.seen_before(digest("b"), time.time() + 60))

    server.start()  # same port; the pool still holds sockets to the dead server
    assert await store.seen_before(digest("c"), time.time() + 60) is False
    assert await store.seen_before(digest("c"), time.time() + 60) is True
    assert await store.ping() is True
    await store.revoke_token("jti-after", time.time() + 60, actor="admin")
    other = await open_store(url)
    assert other.is_token_revoked("jti-after") is True

    # A quick restart with no call in between: every pooled socket is now dead.
    await asyncio.gather(
        *(store.seen_before(digest(f"pool{i}"), time.time() + 60) for i in range(20))
    )
    server.stop()
    server.start()
    assert await store.seen_before(digest("d"), time.time() + 60) is False
    assert await store.unsuspend_client("tpp", actor="admin") is False


async def test_snapshot_checks_raise_once_the_snapshot_is_too_old(
    make_server: Any, open_store: Any
) -> None:
    server = make_server()
    store = await open_store(f"redis://127.0.0.1:{server.port}/0")  # max_stale_ms=1000
    await store.revoke_token("jti", time.time() + 60, actor="admin")
    server.stop()
    stopped = time.monotonic()
    # Still answering from a snapshot that was current moments ago...
    assert store.is_token_revoked("jti") is True
    # ...but not for long: a cut-off worker must not trust it past max_stale_ms.
    await wait_until(raises_unavailable(lambda: store.is_token_revoked("jti")), within=2.0)
    assert time.monotonic() - stopped <= 1.0 + 0.5
    with pytest.raises(StateStoreUnavailable, match="old"):
        store.is_client_suspended("tpp")

    server.start()
    # The background refresh recovers on its own. The server kept nothing (no
    # persistence), and the snapshot follows it.
    await wait_until(
        lambda: not raises_unavailable(lambda: store.is_token_revoked("x"))(), within=1.0
    )
    assert store.is_token_revoked("jti") is False


async def test_start_fails_fast_then_recovers_in_the_background(
    make_server: Any, open_store: Any
) -> None:
    server = make_server(start=False)
    store = await open_store(f"redis://127.0.0.1:{server.port}/0", start=False)
    await fails_fast(store.start)
    with pytest.raises(StateStoreUnavailable, match="not loaded"):
        store.is_token_revoked("jti")
    server.start()
    await wait_until(
        lambda: not raises_unavailable(lambda: store.is_token_revoked("x"))(), within=1.0
    )


# --- stalled server ---------------------------------------------------------------------


async def test_stalled_server_times_out_and_late_replies_are_never_misread(
    make_server: Any, open_store: Any
) -> None:
    server = make_server()
    store = await open_store(f"redis://127.0.0.1:{server.port}/0")
    server.freeze()
    try:
        # Several connections end up with a command sent and no reply.
        stalled = [store.seen_before(digest(f"stalled{i}"), time.time() + 60) for i in range(3)]
        started = time.monotonic()
        results = await asyncio.gather(*stalled, return_exceptions=True)
        assert all(isinstance(r, StateStoreUnavailable) for r in results), results
        assert time.monotonic() - started < FAIL_FAST_S
        error = await fails_fast(lambda: store.revoke_token("jti", time.time() + 60, actor="a"))
        assert "100 ms" in str(error)
    finally:
        server.thaw()
    # The stalled commands may still run now; their replies must not answer new calls.
    for i in range(5):
        key = digest(f"fresh{i}")
        assert await store.seen_before(key, time.time() + 60) is False
        assert await store.seen_before(key, time.time() + 60) is True
    assert await store.ping() is True


# --- credentials and TLS ------------------------------------------------------------------


async def test_wrong_password_is_unavailable_and_never_shown(
    make_server: Any, open_store: Any
) -> None:
    server = make_server("--requirepass", "right-Secret-1")
    store = await open_store(f"redis://:wrong-Secret-2@127.0.0.1:{server.port}/0", start=False)
    error = await fails_fast(store.start)
    for secret in ("wrong-Secret-2", "right-Secret-1"):
        assert secret not in str(error)
        assert secret not in repr(store)
    good = await open_store(f"redis://:right-Secret-1@127.0.0.1:{server.port}/0")
    assert await good.seen_before(digest("auth"), time.time() + 60) is False


async def test_rediss_verifies_the_server_certificate(
    make_server: Any, open_store: Any, tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key", "other-ca")}
    ca.cert_pem.write_to_path(paths["ca"])
    cert.cert_chain_pems[0].write_to_path(paths["cert"])
    cert.private_key_pem.write_to_path(paths["key"])
    trustme.CA().cert_pem.write_to_path(paths["other-ca"])
    port = free_port()
    make_server(
        *("--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"),
        *("--tls-cert-file", str(paths["cert"]), "--tls-key-file", str(paths["key"])),
        *("--tls-ca-cert-file", str(paths["ca"])),
        port=port,
    )
    # A TLS handshake under CPU contention can take longer than the 100 ms default;
    # this test is about verification, not deadlines.
    slack = "timeout_ms=2000&max_stale_ms=5000"
    store = await open_store(f"rediss://localhost:{port}/0?ca_file={paths['ca']}&{slack}")
    assert await store.seen_before(digest("tls"), time.time() + 60) is False
    assert await store.seen_before(digest("tls"), time.time() + 60) is True

    untrusted = await open_store(
        f"rediss://localhost:{port}/0?ca_file={paths['other-ca']}&{slack}", start=False
    )
    with pytest.raises(StateStoreUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        await untrusted.start()
    plaintext = await open_store(f"redis://localhost:{port}/0?{slack}", start=False)
    with pytest.raises(StateStoreUnavailable) as caught:
        await plaintext.start()
    assert "no answer within" not in str(caught.value)  # refused, not merely slow


# --- operational behaviour on the shared test server ------------------------------------


async def test_keys_are_namespaced_and_replay_entries_carry_a_ttl(
    redis_url: str, open_store: Any
) -> None:
    store = await open_store(redis_url)
    prefix = redis_url.rsplit("prefix=", 1)[1]
    key = digest("namespaced")
    await store.seen_before(key, time.time() + 30)
    with redis.Redis.from_url(redis_url.split("?")[0]) as raw:
        ttl_ms = raw.pttl(f"{prefix}:replay:{key}")
    assert 25_000 < ttl_ms <= 30_000


async def test_expired_revocations_are_purged_from_redis(redis_url: str, open_store: Any) -> None:
    store = await open_store(redis_url)
    prefix = redis_url.rsplit("prefix=", 1)[1]
    await store.revoke_token("jti-old", time.time() + 0.2, actor="admin")
    await asyncio.sleep(0.3)
    await store.revoke_token("jti-new", time.time() + 60, actor="admin")
    with redis.Redis.from_url(redis_url.split("?")[0]) as raw:
        assert raw.hkeys(f"{prefix}:revoked") == [b"jti-new"]
        assert raw.zrange(f"{prefix}:revoked:exp", 0, -1) == [b"jti-new"]


async def test_unreadable_records_fail_closed(redis_url: str, open_store: Any) -> None:
    store = await open_store(redis_url)
    prefix = redis_url.rsplit("prefix=", 1)[1]
    with redis.Redis.from_url(redis_url.split("?")[0]) as raw:
        raw.hset(f"{prefix}:revoked", "jti-garbled", b"{not json")
        raw.hset(f"{prefix}:suspended", "tpp-garbled", b"\xff")
        raw.set(f"{prefix}:version", b"changed-by-hand")
    await wait_until(lambda: store.is_token_revoked("jti-garbled"), within=1.0)
    assert store.is_client_suspended("tpp-garbled") is True


async def test_store_refuses_to_be_used_after_a_fork(
    redis_url: str, open_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(redis_url)
    child_pid = os.getpid() + 1
    monkeypatch.setattr(redis_store.os, "getpid", lambda: child_pid)
    with pytest.raises(StateStoreError, match="fork"):
        await store.seen_before(digest("forked"), time.time() + 60)
