"""Limit store URLs: the state store's grammar, plus ``clock=`` and ``max_keys=``."""

from __future__ import annotations

import pytest

from finward.clock import SystemClock
from finward.limits import (
    LimitStoreURLError,
    MemoryLimitConfig,
    MemoryLimitStore,
    RedisLimitConfig,
    open_limit_store,
    parse_limit_store_url,
)


def test_memory_urls() -> None:
    assert parse_limit_store_url("memory://") == MemoryLimitConfig()
    assert parse_limit_store_url("memory://?max_keys=5") == MemoryLimitConfig(max_keys=5)
    assert isinstance(open_limit_store("memory://", clock=SystemClock()), MemoryLimitStore)


def test_redis_urls() -> None:
    config = parse_limit_store_url(
        "redis://:s3cret@cache.internal:6380/2?timeout_ms=50&prefix=gw&max_connections=8"
    )
    assert isinstance(config, RedisLimitConfig)
    assert config.server_time is True
    redis = config.redis
    assert (redis.host, redis.port, redis.db, redis.password) == (
        "cache.internal",
        6380,
        2,
        "s3cret",
    )
    assert (redis.timeout_ms, redis.prefix, redis.max_connections) == (50, "gw", 8)
    assert "s3cret" not in repr(config)
    client = parse_limit_store_url("redis://localhost?clock=client&timeout_ms=5000")
    assert isinstance(client, RedisLimitConfig) and client.server_time is False
    tls = parse_limit_store_url("rediss://localhost?ca_file=/etc/ca.pem")
    assert isinstance(tls, RedisLimitConfig) and tls.redis.tls


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("memory://host", "no host"),
        ("memory://?max_keys=0", "max_keys"),
        ("memory://?max_keys=-1", "max_keys"),
        ("memory://?refresh_ms=1", "unknown memory"),
        ("redis://h?clock=local", "clock"),
        ("redis://h?max_keys=5", "unknown redis"),
        ("redis://h?refresh_ms=10", "unknown redis"),
        ("redis://h?ca_file=/x", "unknown redis"),
        ("redis://h?timeout_ms=0", "timeout_ms"),
        ("redis://h?prefix=a*b", "prefix"),
        ("redis://h?clock=client&clock=server", "twice"),
        ("redis://h/x", "database"),
        ("postgresql://h/db", "unknown limit store scheme"),
        ("redis://:hunter2@h:99999", "malformed"),
    ],
)
def test_bad_urls_are_refused_naming_the_problem(url: str, message: str) -> None:
    with pytest.raises(LimitStoreURLError, match=message) as caught:
        parse_limit_store_url(url)
    assert "hunter2" not in str(caught.value)
    assert "state store" not in str(caught.value)
