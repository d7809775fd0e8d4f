"""Process model: one process, or a master with N forked workers sharing one listening socket.

Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads the configuration file.
A configuration that fails to load or compile is refused and the old one keeps
serving. With workers, the master validates first, then tells each worker over
its control socket to reload; metrics are merged from every worker's snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import orjson

from finward.adapters.admin import AdminHooks, create_admin_app, start_admin
from finward.adapters.tls import load_certificates, server_context
from finward.adapters.worker import Worker, build_state
from finward.config.loader import load_config
from finward.config.model import GatewayConfig
from finward.errors import ConfigError
from finward.events import GatewayEvent

log = logging.getLogger("finward.runner")


def bind_listener(config: GatewayConfig) -> socket.socket:
    host, port = config.listen.host, config.listen.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _url(config: GatewayConfig, sock: socket.socket) -> str:
    scheme = "https" if config.listen.tls else "http"
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


def load_checked(path: Path) -> GatewayConfig:
    """Load and fully compile (specs included) a configuration, or raise ConfigError."""
    config = load_config(path)
    try:
        build_state(config)
    except ConfigError:
        raise
    except Exception as exc:  # a spec that fails to compile
        raise ConfigError([f"{path}: {exc}"]) from exc
    return config


def _announce(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Reloader:
    """Shared reload logic: validate the file, then apply; never drop the old on failure."""

    def __init__(self, path: Path, config: GatewayConfig) -> None:
        self.path = path
        self.config = config

    def validate(self) -> tuple[GatewayConfig | None, str]:
        try:
            new = load_checked(self.path)
        except ConfigError as exc:
            return None, "; ".join(exc.problems)[:2000]
        except Exception as exc:  # unreadable file etc.
            return None, f"{type(exc).__name__}: {exc}"[:2000]
        notes = []
        if (new.listen.host, new.listen.port) != (self.config.listen.host, self.config.listen.port):
            notes.append("listen address changes need a restart; keeping the old listener")
        if new.server.workers != self.config.server.workers:
            notes.append("a new worker count needs a restart")
        if new.auth.state_store != self.config.auth.state_store:
            notes.append("a new auth.state_store needs a restart; keeping the old store")
        old_limits = self.config.rate_limits
        if old_limits.limits and new.rate_limits.store != old_limits.store:
            notes.append("rate_limits.store changes need a restart; keeping the old store")
        return new, "; ".join(notes) or "ok"


# -- single process -------------------------------------------------------------------


async def serve_single(path: Path, config: GatewayConfig) -> int:
    sock = bind_listener(config)
    return await _serve_worker(path, config, sock, control=None, announce=True)


async def _serve_worker(
    path: Path,
    config: GatewayConfig,
    sock: socket.socket,
    control: socket.socket | None,
    announce: bool,
) -> int:
    loop = asyncio.get_running_loop()
    worker = Worker(config)
    await worker.start()
    ssl_ctx = server_context(config.listen.tls) if config.listen.tls else None
    server = await loop.create_server(worker.protocol_factory, sock=sock, ssl=ssl_ctx, backlog=2048)
    stop = asyncio.Event()
    reloader = _Reloader(path, config)

    async def do_reload(actor: str) -> tuple[bool, str]:
        new, detail = reloader.validate()
        if new is None:
            worker.emit(GatewayEvent(time.time(), "config_rejected", "failure", detail, actor))
            return False, detail
        await worker.reload(new, actor=actor)
        if ssl_ctx is not None and new.listen.tls is not None:
            load_certificates(ssl_ctx, new.listen.tls)  # rotate certificates in place
        reloader.config = new
        return True, detail

    def on_hup() -> None:
        worker.spawn(do_reload("signal:SIGHUP"))

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if control is None:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    else:
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # the master coordinates reloads
        worker.spawn(_control_loop(control, worker, do_reload, stop))

    admin_runner = None
    if control is None and config.admin.enabled:

        async def metrics() -> str:
            return worker.metrics.render()

        hooks = AdminHooks(
            metrics=metrics,
            reload=do_reload,
            ready=lambda: not worker.draining,
            status=lambda: _status(reloader.config, [os.getpid()]),
            emit=worker.emit,
            # The worker's own store: revocations apply to its next request.
            state_store=lambda: worker.auth.store if worker.auth is not None else None,
            revocation_ttl_s=lambda: reloader.config.auth.revocation_ttl_s,
            now=worker.clock.now,
        )
        app = create_admin_app(hooks, config.admin.token)
        admin_runner, admin_port = await start_admin(app, config.admin.host, config.admin.port)
    if announce:
        admin = f", admin on http://{config.admin.host}:{admin_port}" if admin_runner else ""
        _announce(f"finward listening on {_url(config, sock)}{admin} (pid {os.getpid()})")
        _write_pid(config)
    await stop.wait()
    server.close()
    await worker.drain(config.server.shutdown_grace_s)
    if admin_runner is not None:
        await admin_runner.cleanup()
    return 0


def _status(config: GatewayConfig, pids: list[int]) -> dict[str, object]:
    return {
        "pids": pids,
        "config": str(config.source) if config.source else None,
        "apis": [
            {"name": a.name, "base_path": a.base_path, "upstream": a.upstream} for a in config.apis
        ],
        "workers": config.server.workers,
    }


def _write_pid(config: GatewayConfig) -> None:
    if config.server.pid_file is not None:
        config.server.pid_file.write_text(f"{os.getpid()}\n")


async def _control_loop(
    control: socket.socket, worker: Worker, do_reload: object, stop: asyncio.Event
) -> None:
    """Worker side of the control channel: answer the master's JSON-line requests."""
    reader, writer = await asyncio.open_connection(sock=control)
    reload = do_reload  # typed loosely to avoid a circular Protocol
    while not stop.is_set():
        line = await reader.readline()
        if not line:
            stop.set()  # the master is gone
            return
        op = orjson.loads(line).get("op")
        if op == "metrics":
            reply: dict[str, object] = {"metrics": worker.metrics.snapshot()}
        elif op == "reload":
            ok, detail = await reload("master")  # type: ignore[operator]
            reply = {"ok": ok, "detail": detail}
        else:
            reply = {"error": "unknown op"}
        writer.write(orjson.dumps(reply) + b"\n")
        await writer.drain()
