"""Run the sandbox bank on a TCP socket: `serve` (blocking) and `start_sandbox` (async)."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from finward.sandbox.app import create_app
from finward.sandbox.data import DEFAULT_SEED, build_bank
from finward.sandbox.model import Bank

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8081
# In-flight requests get this long to finish on SIGTERM; a sandbox answers in
# milliseconds, so waiting aiohttp's default minute would only slow the demo's shutdown.
SHUTDOWN_TIMEOUT_S = 5.0


async def start_sandbox(
    host: str = DEFAULT_HOST, port: int = 0, seed: int = DEFAULT_SEED, *, bank: Bank | None = None
) -> tuple[web.AppRunner, int]:
    """Start the sandbox in the running loop; returns the runner and the bound port.

    `port=0` binds a free port. The caller owns the runner: `await runner.cleanup()`.
    Pass an already built `bank` (which then wins over `seed`) to skip rebuilding the
    data, which takes a few hundred milliseconds.
    """
    app = create_app(bank if bank is not None else build_bank(seed))
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, seed: int = DEFAULT_SEED) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully. Blocks."""
    asyncio.run(_serve(host, port, seed))


async def _serve(host: str, port: int, seed: int) -> None:
    runner, bound = await start_sandbox(host, port, seed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        shown = f"[{host}]" if ":" in host else host
        # One line, flushed: the demo and the tests wait for it before sending traffic.
        print(f"sandbox listening on http://{shown}:{bound}", flush=True)
        await stop.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await runner.cleanup()
