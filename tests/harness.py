"""Shared fixtures: a real upstream, an in-process gateway on real loopback sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from finward.adapters.tls import server_context
from finward.adapters.worker import Worker
from finward.clock import Clock
from finward.config.model import (
    ApiConfig,
    GatewayConfig,
    LimitsConfig,
    ListenConfig,
    LoggingConfig,
    TimeoutsConfig,
    UpstreamConfig,
)
from finward.events import Event
from tests.upstream_app import SEEN, create_upstream

REPO = Path(__file__).resolve().parents[1]
VECTORS = Path(__file__).resolve().parent / "vectors"
TEST_SPEC = VECTORS / "gateway" / "test-api.yaml"


def shared_specs_dir() -> Path:
    """../shared/specs beside the repository (CI lays shared/ next to its clone)."""
    return (REPO.parent / "shared" / "specs").resolve()


@dataclass
class Upstream:
    app: web.Application
    runner: web.AppRunner
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def seen(self) -> list[str]:
        return self.app[SEEN]


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    app = create_upstream()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield Upstream(app, runner, port)
    await runner.cleanup()


def make_config(upstream_url: str, **overrides: object) -> GatewayConfig:
    """A gateway config for tests; keyword overrides replace top-level sections."""
    timeouts = overrides.pop("timeouts", TimeoutsConfig(connect_s=1.0, read_s=2.0, total_s=5.0))
    assert isinstance(timeouts, TimeoutsConfig)
    cfg = GatewayConfig(
        listen=ListenConfig(host="127.0.0.1", port=0),
        upstreams={"test": UpstreamConfig(name="test", url=upstream_url, timeouts=timeouts)},
        apis=(ApiConfig(name="test-api", spec=TEST_SPEC, upstream="test"),),
        limits=LimitsConfig(
            max_body_bytes=1_000_000,
            header_timeout_s=1.0,
            body_timeout_s=1.0,
            keepalive_timeout_s=5.0,
        ),
        logging=LoggingConfig(access_log="off"),
    )
    return dataclasses.replace(cfg, **overrides)  # type: ignore[arg-type]


@dataclass
class Gateway:
    worker: Worker
    server: asyncio.Server
    port: int
    scheme: str = "http"
    events: list[Event] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.close()
        await self.worker.drain(1.0)


async def start_gateway(config: GatewayConfig, clock: Clock | None = None) -> Gateway:
    worker = Worker(config, clock)
    await worker.start()
    ssl_ctx = server_context(config.listen.tls) if config.listen.tls else None
    loop = asyncio.get_running_loop()
    server = await loop.create_server(worker.protocol_factory, "127.0.0.1", 0, ssl=ssl_ctx)
    port = server.sockets[0].getsockname()[1]
    gw = Gateway(worker, server, port, "https" if ssl_ctx else "http")
    worker.bus.subscribe(gw.events.append)
    return gw


@pytest.fixture
async def gateway(upstream: Upstream) -> AsyncIterator[Gateway]:
    gw = await start_gateway(make_config(upstream.url))
    yield gw
    await gw.stop()


async def raw_exchange(
    port: int,
    data: bytes | list[bytes],
    *,
    ssl_ctx: ssl.SSLContext | None = None,
    timeout: float = 5.0,
    pause: float = 0.0,
) -> bytes:
    """Send raw bytes (in parts, with pauses) and read until the server closes or times out."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ssl_ctx, server_hostname="localhost" if ssl_ctx else None
    )
    parts = data if isinstance(data, list) else [data]
    for part in parts:
        writer.write(part)
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)
    received = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass
    return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
