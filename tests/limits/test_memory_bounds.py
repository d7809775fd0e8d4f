"""memory:// keeps a bounded number of keys: expired ones go first, live ones are never
evicted (that would reset a client's counters), and a full store refuses new keys."""

from __future__ import annotations

import pytest

from finward.limits import Check, LimitRule, LimitStoreUnavailable, MemoryLimitStore
from tests.limits.conftest import T0

RATE = LimitRule("rate", "gcra", 10, period_s=1.0)  # a key decays 0.1 s after one hit
QUOTA = LimitRule("quota", "fixed_window", 1, period_s=3600.0)


async def test_refused_requests_create_no_keys() -> None:
    store = MemoryLimitStore(max_keys=10)
    assert (await store.acquire([Check(RATE, "k", cost=11)], T0))[0].allowed is False
    await store.peek(Check(QUOTA, "other"), T0)
    assert len(store) == 0


async def test_a_full_store_evicts_expired_keys_and_refuses_when_all_are_live() -> None:
    store = MemoryLimitStore(max_keys=3)
    for key in ("a", "b"):
        await store.acquire([Check(RATE, key)], T0)
    await store.acquire([Check(QUOTA, "q")], T0)
    with pytest.raises(LimitStoreUnavailable, match="full"):
        await store.acquire([Check(RATE, "new")], T0 + 0.05)
    # Known keys keep working while the store is full, and nothing was reset.
    assert (await store.acquire([Check(QUOTA, "q")], T0 + 0.05))[0].allowed is False
    assert (await store.acquire([Check(RATE, "a")], T0 + 0.05))[0].allowed is True
    # Once "b" has decayed (its TAT passed) it makes room; the live quota stays.
    assert (await store.acquire([Check(RATE, "new")], T0 + 0.2))[0].allowed is True
    assert len(store) == 3
    assert (await store.peek(Check(QUOTA, "q"), T0 + 0.2)).allowed is False


async def test_a_refused_new_key_consumes_nothing_elsewhere() -> None:
    store = MemoryLimitStore(max_keys=1)
    await store.acquire([Check(QUOTA, "q")], T0)
    with pytest.raises(LimitStoreUnavailable):
        await store.acquire([Check(RATE, "a"), Check(QUOTA, "q2")], T0)
    assert len(store) == 1


async def test_random_keys_cannot_grow_the_store_past_its_bound() -> None:
    store = MemoryLimitStore(max_keys=100)
    refused = 0
    for i in range(2000):
        now = T0 + i * 0.0005  # a new key every 0.5 ms; each decays after 0.1 s
        try:
            await store.acquire([Check(RATE, f"attacker-{i}")], now)
        except LimitStoreUnavailable:
            refused += 1
        assert len(store) <= 100
    # 200 keys would be live at any moment: the bound admits about half of them, and
    # keeps admitting new ones as old ones decay (expired keys are evicted).
    assert 500 < refused < 1500


def test_max_keys_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MemoryLimitStore(max_keys=0)
