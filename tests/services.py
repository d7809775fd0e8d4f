"""Real services for tests: whether they are mandatory, and throwaway Redis servers.

When ``CI`` is set a missing server (or binary) fails the run, so a broken CI image can
never turn service tests into silent skips; on a laptop without them they are skipped
with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from finward.storage import parse_state_store_url

# The shared test Redis: db 15 unless FINWARD_TEST_REDIS_URL says otherwise.
TEST_REDIS_URL = os.environ.get("FINWARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def is_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_service(problem: str) -> NoReturn:
    """Fail under CI, skip elsewhere, saying which service is missing."""
    if is_ci():
        msg = f"{problem}; CI is set, so services are mandatory (.ci/run starts them)"
        pytest.fail(msg, pytrace=False)
    pytest.skip(problem)


def require_redis(url: str = TEST_REDIS_URL) -> redis.Redis:
    """A client of the shared test Redis, which must answer (see require_service).

    No retries: redis-py's default would back off for seconds before each failure."""
    client = redis.Redis.from_url(
        url, socket_timeout=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        shown = parse_state_store_url(url).redacted_url  # the env URL may carry a password
        require_service(f"Redis at {shown} is unreachable ({type(exc).__name__})")
    return client


@contextmanager
def deleting_keys(client: redis.Redis, pattern: str) -> Iterator[None]:
    """Delete the keys matching ``pattern`` afterwards (only a test's own prefix)."""
    try:
        yield
    finally:
        for key in client.scan_iter(match=pattern, count=1000):
            client.unlink(key)


def with_params(url: str, **params: str) -> str:
    """``url`` with query parameters appended."""
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ThrowawayRedis:
    binary: str
    workdir: Path
    port: int
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        log = self.workdir / f"redis-{self.port}.log"
        self.process = subprocess.Popen(
            [
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
                *("--logfile", str(log)),
                *self.extra_args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.01)
        pytest.fail(f"redis-server did not listen on {self.port} within 10 s")

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def destroy(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process ignores SIGTERM
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        require_service("the redis-server binary is not installed")
    return path


@pytest.fixture
def make_server(
    redis_server_binary: str, tmp_path: Path
) -> Iterator[Callable[..., ThrowawayRedis]]:
    """Throwaway redis-servers on free loopback ports, killed at teardown whatever the
    test did to them: ``make(*extra_args, port=None, start=True)``."""
    servers: list[ThrowawayRedis] = []

    def make(*extra_args: str, port: int | None = None, start: bool = True) -> ThrowawayRedis:
        server = ThrowawayRedis(redis_server_binary, tmp_path, port or free_port(), extra_args)
        servers.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in servers:
        server.destroy()
