"""One gateway worker: the current compiled configuration, connections, and the event stream.

A reload builds a complete new :class:`WorkerState` and swaps one reference.
Requests in flight keep the state they started with, so they finish on the old
configuration; the old upstream pools close when its last request is done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from finward.adapters.auth_runtime import AuthServices
from finward.adapters.clientcert import ClientCertReader
from finward.adapters.http_server import Exchange, HttpProtocol
from finward.adapters.limit_runtime import LimitServices
from finward.adapters.proxy import handle_exchange, upstream_drop_set
from finward.adapters.upstream import UpstreamPool
from finward.clock import Clock, SystemClock
from finward.config.model import GatewayConfig
from finward.errors import ConfigError
from finward.events import Event, EventBus, GatewayEvent
from finward.gateway import CompiledGateway, auth_settings, compile_gateway
from finward.observability.accesslog import AccessLog
from finward.observability.metrics import MetricsRegistry

log = logging.getLogger("finward.worker")


@dataclass(slots=True)
class WorkerState:
    gateway: CompiledGateway
    upstreams: UpstreamPool
    client_certs: ClientCertReader | None
    upstream_drop: frozenset[str] = frozenset()
    inflight: int = 0
    retired: bool = False

    @property
    def config(self) -> GatewayConfig:
        return self.gateway.config


def build_state(
    config: GatewayConfig,
    auth: AuthServices | None = None,
    limits: LimitServices | None = None,
) -> WorkerState:
    """Compile everything a request needs; raises on a bad configuration.

    Without ``auth`` (validation only) an authenticating gateway refuses every request;
    without ``limits``, so does a gateway with rate limits.
    """
    gateway = compile_gateway(config, auth, limits)
    reader = None
    if config.proxy.client_cert_header:
        ca = config.proxy.client_cert_ca
        if ca is None and config.listen.tls is not None:
            ca = config.listen.tls.client_ca
        if ca is None:  # the config check refuses this; never run without anchors
            raise ConfigError(["proxy.client_cert_ca: required when client_cert_header is set"])
        reader = ClientCertReader(ca)
    # A client's own copy of an identity header never passes, with or without auth;
    # with auth, neither does the DPoP proof.
    if gateway.auth is not None:
        extra = gateway.auth.settings.identity_headers.names() | {"dpop"}
    else:  # compiled settings exist only with auth on; the names are configured anyway
        extra = auth_settings(config.auth).identity_headers.names()
    drop = upstream_drop_set(config.proxy.client_cert_header, extra)
    return WorkerState(gateway, UpstreamPool(config.upstreams), reader, drop)


class Worker:
    """Create inside the event loop, then ``await start()`` before serving."""

    def __init__(self, config: GatewayConfig, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.bus = EventBus()
        self.auth: AuthServices | None = None
        if config.auth.issuers:
            self.auth = AuthServices(config.auth, self.clock, self.emit)
        self.rate_limits: LimitServices | None = None
        if config.rate_limits.limits:
            self.rate_limits = LimitServices(config.rate_limits.store, self.clock, self.emit)
        self.state = build_state(config, self.auth, self.rate_limits)
        self.limits = config.limits
        self.metrics = MetricsRegistry()
        self.access_log = AccessLog(config.logging.access_log)
        self.bus.subscribe(self.metrics)
        self.bus.subscribe(self.access_log)
        self.connections: set[HttpProtocol] = set()
        # Open connections per socket-peer IP in this process (limits.max_connections_per_ip:
        # per worker, so with N workers one address may hold up to N times the cap).
        self.connections_per_ip: dict[str, int] = {}
        self.draining = False
        self.inflight = 0
        self._flush_handle: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task[object]] = set()

    async def start(self) -> None:
        """Connect what needs connecting (the state and limit stores) in this loop."""
        if self.auth is not None:
            await self.auth.start()
        if self.rate_limits is not None:
            await self.rate_limits.start()

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run a background task, keeping a reference until it ends (no lost tasks)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- events ---------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        self.bus.emit(event)
        # Batch log writes: one write per event-loop turn, not per request.
        if self.access_log.pending and self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        self.access_log.flush()

    # -- requests -------------------------------------------------------------------

    def protocol_factory(self) -> HttpProtocol:
        return HttpProtocol(self)

    async def handle(self, conn: HttpProtocol, ex: Exchange) -> None:
        state = self.state
        state.inflight += 1
        self.inflight += 1
        try:
            if self.draining:
                ex.keep_alive = False
            await handle_exchange(self, state, conn, ex)
        except Exception:
            log.exception("unhandled error while serving a request")
            ex.keep_alive = False
        finally:
            state.inflight -= 1
            self.inflight -= 1
            if state.retired and state.inflight == 0:
                self.spawn(state.upstreams.close())
            conn.exchange_done(ex)

    # -- reload and shutdown ----------------------------------------------------------

    async def reload(self, config: GatewayConfig, *, actor: str = "signal") -> None:
        """Swap in a new configuration atomically; raises (keeping the old) if it is bad.

        The state and limit stores stay the ones the worker started with: a new
        ``auth.state_store`` or ``rate_limits.store`` needs a restart (the runner says so).
        """
        if config.auth.issuers and self.auth is None:
            services = self.auth = AuthServices(config.auth, self.clock, self.emit)
            await services.start()
        if config.rate_limits.limits and self.rate_limits is None:
            limits = LimitServices(config.rate_limits.store, self.clock, self.emit)
            await limits.start()
            self.rate_limits = limits
        new_state = build_state(config, self.auth, self.rate_limits)
        old, self.state = self.state, new_state
        self.limits = config.limits
        old.retired = True
        if old.inflight == 0:
            self.spawn(old.upstreams.close())
        self.emit(GatewayEvent(time.time(), "config_reloaded", "success", actor=actor))

    async def drain(self, grace_s: float) -> None:
        """Stop taking requests; let in-flight ones finish within ``grace_s``."""
        self.draining = True
        for conn in list(self.connections):
            conn.closing = True
            if conn.handling is None and not conn.queue:
                conn.close()
        deadline = time.monotonic() + grace_s
        while self.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        await self.state.upstreams.close()
        if self.auth is not None:
            await self.auth.close()
        if self.rate_limits is not None:
            await self.rate_limits.close()
        self.access_log.close()
