"""Run the sandbox AS on a TCP socket: ``serve`` (blocking) and ``start_authserver`` (async)."""

from __future__ import annotations

import asyncio
import signal
import socket
from typing import Any

from aiohttp import web

from finward.clock import Clock
from finward.sandbox.authserver.app import create_app
from finward.sandbox.authserver.clients import (
    DEFAULT_GATEWAY_SECRET,
    ClientRegistry,
    default_clients,
)
from finward.sandbox.authserver.keys import SigningKeys
from finward.sandbox.authserver.protocol import AUTHSERVER_KEY
from finward.sandbox.authserver.state import AuthServer, AuthServerConfig

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8082
# As for the sandbox bank: the AS answers in milliseconds, no need for aiohttp's minute.
SHUTDOWN_TIMEOUT_S = 5.0


def default_issuer(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def start_authserver(
    host: str = DEFAULT_HOST,
    port: int = 0,
    *,
    issuer: str | None = None,
    keys: SigningKeys | None = None,
    clients: ClientRegistry | None = None,
    clock: Clock | None = None,
    **config: Any,
) -> tuple[web.AppRunner, int]:
    """Start the AS in the running loop; returns the runner and the bound port.

    ``port=0`` binds a free port. The issuer defaults to ``http://HOST:PORT`` with the
    bound port. Pass ``keys``, ``clients`` and ``clock`` to hold them in the test;
    other keyword arguments are ``AuthServerConfig`` fields (``audience``,
    ``token_lifetime_s``, ``consent_claim``, ``sandbox_mode`` ...). The AS object is
    ``authserver_of(runner)``. The caller owns the runner: ``await runner.cleanup()``.
    """
    # Bind first, so the issuer can name the real port before the app is built.
    sock = _bind(host, port)
    try:
        bound = sock.getsockname()[1]
        settings = AuthServerConfig(issuer=issuer or default_issuer(host, bound), **config)
        server = AuthServer(settings, keys=keys, clients=clients, clock=clock)
    except BaseException:
        sock.close()
        raise
    runner = web.AppRunner(create_app(server), shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    try:
        await runner.setup()
        await web.SockSite(runner, sock).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    return runner, bound


def authserver_of(runner: web.AppRunner) -> AuthServer:
    """The in-process AS behind a runner from ``start_authserver`` (keys, clients, stores)."""
    app = runner.app
    if not isinstance(app, web.Application):
        raise TypeError("not an authserver runner")
    return app[AUTHSERVER_KEY]


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    issuer: str | None = None,
    audience: str = "finward",
    gateway_secret: str = DEFAULT_GATEWAY_SECRET,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully. Blocks."""
    asyncio.run(_serve(host, port, issuer, audience, gateway_secret))


async def _serve(
    host: str, port: int, issuer: str | None, audience: str, gateway_secret: str
) -> None:
    runner, bound = await start_authserver(
        host,
        port,
        issuer=issuer,
        clients=default_clients(gateway_secret=gateway_secret),
        audience=audience,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        # One line, flushed: the demo and the tests wait for it before sending traffic.
        print(f"authserver listening on {default_issuer(host, bound)}", flush=True)
        await stop.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await runner.cleanup()
