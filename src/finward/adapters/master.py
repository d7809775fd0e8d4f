"""The master process for ``--workers N``: forks workers, coordinates reloads, merges metrics.

All workers accept on one listening socket that the master bound, so
connections spread across processes with no proxying between them. The master
itself serves only the admin listener.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import uvloop

from finward.adapters.admin import AdminHooks, create_admin_app, start_admin
from finward.adapters.runner import (
    _announce,
    _Reloader,
    _serve_worker,
    _status,
    _url,
    _write_pid,
    bind_listener,
)
from finward.clock import SystemClock
from finward.config.model import GatewayConfig
from finward.events import Event, EventBus, GatewayEvent
from finward.observability.accesslog import AccessLog
from finward.observability.metrics import MetricsRegistry
from finward.storage.base import StateStore, StateStoreUnavailable, open_state_store

log = logging.getLogger("finward.master")

# A worker that dies is restarted, but never more often than this (no fork storms).
RESPAWN_MIN_INTERVAL_S = 1.0
CONTROL_TIMEOUT_S = 10.0


@dataclass
class _WorkerHandle:
    pid: int
    sock: socket.socket
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def ask(self, op: str) -> dict[str, object]:
        async with self.lock:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(sock=self.sock)
            assert self.reader is not None
            self.writer.write(orjson.dumps({"op": op}) + b"\n")
            await self.writer.drain()
            line = await asyncio.wait_for(self.reader.readline(), CONTROL_TIMEOUT_S)
            if not line:
                raise ConnectionError("worker control channel closed")
            reply: dict[str, object] = orjson.loads(line)
            return reply


def _fork_worker(path: Path, config: GatewayConfig, listener: socket.socket) -> _WorkerHandle:
    parent_end, child_end = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # child: a fresh event loop; the parent's loop state is never touched
        code = 1
        try:
            parent_end.close()
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            code = uvloop.run(_serve_worker(path, config, listener, child_end, announce=False))
        except BaseException:
            log.exception("worker %d crashed", os.getpid())
        finally:
            os._exit(code)
    child_end.close()
    return _WorkerHandle(pid, parent_end)


def serve_master(path: Path, config: GatewayConfig) -> int:
    listener = bind_listener(config)
    handles = [_fork_worker(path, config, listener) for _ in range(config.server.workers)]
    # The master runs the stock asyncio loop: it serves only the admin listener, and
    # uvloop reserves SIGCHLD, which the master needs to notice and replace dead workers.
    return asyncio.run(_master(path, config, listener, handles))


async def _master(
    path: Path, config: GatewayConfig, listener: socket.socket, handles: list[_WorkerHandle]
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloader = _Reloader(path, config)
    bus = EventBus()
    own_metrics = MetricsRegistry()
    access_log = AccessLog(config.logging.access_log)
    bus.subscribe(own_metrics)
    bus.subscribe(access_log)
    last_respawn = 0.0

    def emit(event: Event) -> None:
        bus.emit(event)
        access_log.flush()

    # The admin API's revocations and suspensions go to the master's own connection to
    # the shared store (never a worker's: connections do not cross processes). The
    # config checks refuse memory:// with workers and auth, so this is Redis.
    store: StateStore | None = None

    async def open_store(cfg: GatewayConfig) -> None:
        nonlocal store
        if store is not None or not cfg.auth.issuers:
            return
        store = open_state_store(cfg.auth.state_store, clock=SystemClock())
        try:
            await store.start()
        except StateStoreUnavailable as exc:
            # It keeps retrying in the background; admin calls answer 503 meanwhile.
            log.warning("state store unavailable at start: %s", exc)
            emit(GatewayEvent(time.time(), "state_store_unavailable", "failure", str(exc)))

    await open_store(config)

    async def metrics() -> str:
        merged = MetricsRegistry()
        merged.merge(own_metrics.snapshot())
        for h in list(handles):
            try:
                reply = await h.ask("metrics")
            except (OSError, ConnectionError, TimeoutError):
                continue  # a worker being replaced; its successor starts from zero
            snap = reply.get("metrics")
            if isinstance(snap, dict):
                merged.merge(snap)
        return merged.render()

    async def reload(actor: str) -> tuple[bool, str]:
        new, detail = reloader.validate()
        if new is None:
            emit(GatewayEvent(time.time(), "config_rejected", "failure", detail, actor))
            return False, detail
        failures = []
        for h in list(handles):
            try:
                reply = await h.ask("reload")
            except (OSError, ConnectionError, TimeoutError) as exc:
                failures.append(f"worker {h.pid}: {exc}")
                continue
            if not reply.get("ok"):
                failures.append(f"worker {h.pid}: {reply.get('detail')}")
        if failures:
            detail = "; ".join(failures)
            emit(GatewayEvent(time.time(), "config_rejected", "failure", detail, actor))
            return False, detail
        reloader.config = new
        await open_store(new)  # auth turned on by this reload
        emit(GatewayEvent(time.time(), "config_reloaded", "success", detail, actor))
        return True, detail

    def reap() -> None:
        nonlocal last_respawn
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for h in list(handles):
                if h.pid == pid:
                    handles.remove(h)
                    h.sock.close()
                    if not stop.is_set():
                        detail = f"worker {pid} exited with status {status}; restarting"
                        emit(GatewayEvent(time.time(), "worker_exited", "failure", detail))
                        wait = max(0.0, last_respawn + RESPAWN_MIN_INTERVAL_S - time.monotonic())
                        loop.call_later(wait, respawn)

    def respawn() -> None:
        nonlocal last_respawn
        if stop.is_set() or len(handles) >= reloader.config.server.workers:
            return
        last_respawn = time.monotonic()
        handles.append(_fork_worker(path, reloader.config, listener))

    loop.add_signal_handler(signal.SIGCHLD, reap)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    tasks: set[asyncio.Task[tuple[bool, str]]] = set()

    def on_hup() -> None:
        task = loop.create_task(reload("signal:SIGHUP"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    admin_runner = None
    admin_port = 0
    if config.admin.enabled:
        hooks = AdminHooks(
            metrics=metrics,
            reload=reload,
            ready=lambda: not stop.is_set() and bool(handles),
            status=lambda: _status(reloader.config, [h.pid for h in handles]),
            emit=emit,
            state_store=lambda: store,
            revocation_ttl_s=lambda: reloader.config.auth.revocation_ttl_s,
        )
        admin_runner, admin_port = await start_admin(
            create_admin_app(hooks, config.admin.token), config.admin.host, config.admin.port
        )
    admin = f", admin on http://{config.admin.host}:{admin_port}" if admin_runner else ""
    _announce(
        f"finward listening on {_url(config, listener)}{admin} "
        f"(master pid {os.getpid()}, {len(handles)} workers)"
    )
    _write_pid(config)
    reap()  # a worker may have died before the handler was installed
    await stop.wait()
    for h in handles:
        try:
            os.kill(h.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + reloader.config.server.shutdown_grace_s + 5.0
    while handles and time.monotonic() < deadline:
        reap()
        await asyncio.sleep(0.05)
    for h in handles:
        try:
            os.kill(h.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if admin_runner is not None:
        await admin_runner.cleanup()
    if store is not None:
        await store.close()
    access_log.close()
    listener.close()
    return 0
