"""Replay cache and server nonces (RFC 9449 §9, §11.1; DPOP-10, DPOP-13)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finward.auth.replay import (
    MemoryReplayCache,
    NonceService,
    ReplayCache,
    ReplayCacheFullError,
    replay_key,
)
from finward.clock import FakeClock

NOW = 1_800_000_000.0
SECRET = b"s" * 32


def test_dpop13_memory_cache_is_a_replay_cache() -> None:
    cache: ReplayCache = MemoryReplayCache(FakeClock(NOW))
    assert cache.seen_before("k", NOW + 60) is False
    assert cache.seen_before("k", NOW + 60) is True


def test_dpop13_entries_expire_lazily_with_the_injected_clock() -> None:
    clock = FakeClock(NOW)
    cache = MemoryReplayCache(clock)
    cache.seen_before("a", NOW + 60)
    clock.advance(59)
    assert cache.seen_before("a", NOW + 120) is True
    clock.advance(1)
    assert cache.seen_before("a", NOW + 120) is False  # expired: recorded anew
    assert cache.seen_before("a", NOW + 120) is True
    cache.seen_before("b", NOW + 61)
    clock.advance(200)
    cache.seen_before("c", NOW + 400)
    assert len(cache) == 1  # a and b were evicted on access, no timer involved


def test_dpop13_an_already_expired_entry_is_not_stored() -> None:
    cache = MemoryReplayCache(FakeClock(NOW))
    assert cache.seen_before("old", NOW - 1) is False
    assert len(cache) == 0


def test_dpop13_full_cache_fails_closed_instead_of_forgetting() -> None:
    clock = FakeClock(NOW)
    cache = MemoryReplayCache(clock, max_entries=2)
    cache.seen_before("a", NOW + 10)
    cache.seen_before("b", NOW + 20)
    with pytest.raises(ReplayCacheFullError):
        cache.seen_before("c", NOW + 30)
    assert cache.seen_before("a", NOW + 10) is True  # nothing live was dropped
    clock.advance(10)
    assert cache.seen_before("c", NOW + 30) is False  # "a" expired, room again
    with pytest.raises(ValueError):
        MemoryReplayCache(clock, max_entries=0)


def test_dpop13_heap_stays_proportional_to_live_entries() -> None:
    clock = FakeClock(NOW)
    cache = MemoryReplayCache(clock, max_entries=10)
    for i in range(1000):
        cache.seen_before(f"k{i % 5}", clock.now() + 1)
        clock.advance(1)
    assert len(cache) <= 5
    assert len(cache._heap) == len(cache)  # no stale heap entries accumulate


def test_dpop13_replay_key_hashes_and_separates_fields() -> None:
    key = replay_key("jkt", "attacker\x00controlled jti")
    assert len(key) == 64 and "attacker" not in key
    assert replay_key("ab", "c") != replay_key("a", "bc")
    assert replay_key("k", "j") == replay_key("k", "j")
    replay_key("k", "\ud800")  # lone surrogates from JSON must not raise


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 30), st.integers(0, 5))))
def test_dpop13_memory_cache_matches_a_reference_model(ops: list[tuple[str, int, int]]) -> None:
    clock = FakeClock(NOW)
    cache = MemoryReplayCache(clock, max_entries=1000)
    model: dict[str, float] = {}
    for key, ttl, step in ops:
        clock.advance(step)
        now = clock.now()
        expected = key in model and model[key] > now
        assert cache.seen_before(key, now + ttl) is expected
        if not expected and ttl > 0:
            model[key] = now + ttl


# --- nonces -------------------------------------------------------------------------------------


def test_dpop10_nonce_is_stateless_across_workers() -> None:
    worker_a, worker_b = NonceService([SECRET]), NonceService([SECRET])
    nonce = worker_a.issue(NOW)
    assert nonce == worker_b.issue(NOW + 1)  # same window, same nonce on every worker
    assert worker_b.is_valid(nonce, NOW)
    assert all(c.isalnum() or c in "-_" for c in nonce)  # §8.1 NQCHAR, header-safe


def test_dpop10_nonce_rotates_and_expires() -> None:
    nonces = NonceService([SECRET], rotation_s=60)
    start = 60 * (int(NOW) // 60)
    nonce = nonces.issue(start)
    assert nonces.issue(start + 60) != nonce
    assert nonces.is_valid(nonce, start + 59)
    assert nonces.is_valid(nonce, start + 119)  # previous window still accepted
    assert not nonces.is_valid(nonce, start + 120)  # two windows on: stale
    assert not nonces.is_valid(nonces.issue(start + 60), start)  # from the future


def test_dpop10_forged_and_tampered_nonces_fail() -> None:
    nonces = NonceService([SECRET])
    nonce = nonces.issue(NOW)
    assert not NonceService([b"t" * 32]).is_valid(nonce, NOW)
    flipped = nonce[:-2] + ("A" if nonce[-2] != "A" else "B") + nonce[-1]
    assert not nonces.is_valid(flipped, NOW)
    for junk in ("", "garbage", "é" * 32, "!" * 32, nonce + "A"):
        assert not nonces.is_valid(junk, NOW)


def test_dpop10_secret_rotation_keeps_nonces_in_flight() -> None:
    old, new = b"o" * 32, b"n" * 32
    nonce = NonceService([old]).issue(NOW)
    rotated = NonceService([new, old])
    assert rotated.is_valid(nonce, NOW)
    assert rotated.issue(NOW) == NonceService([new]).issue(NOW)


@pytest.mark.parametrize("secrets", [[], [b"short"], [SECRET, b"x" * 31]])
def test_dpop10_weak_secrets_are_refused(secrets: list[bytes]) -> None:
    with pytest.raises(ValueError):
        NonceService(secrets)


def test_dpop10_rotation_must_be_positive() -> None:
    with pytest.raises(ValueError):
        NonceService([SECRET], rotation_s=0)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=64))
def test_dpop10_random_nonces_are_rejected(candidate: str) -> None:
    assert NonceService([SECRET]).is_valid(candidate, NOW) is False
