"""`finward serve` and `finward reload`."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

import typer

from finward.cli.common import load_or_exit


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format='{"time":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":%(message)r}',
    )


def serve(
    config: Path = typer.Option(..., "--config", "-c", help="finward.yaml to serve"),
    workers: int = typer.Option(0, "--workers", "-w", help="worker processes (0: from config)"),
) -> None:
    """Run the gateway in front of the configured upstreams."""

    import uvloop

    from finward.adapters.master import serve_master
    from finward.adapters.runner import serve_single

    cfg = load_or_exit(config, compile_specs=True)
    if workers < 0:
        typer.echo("--workers must be at least 1", err=True)
        raise typer.Exit(2)
    if workers:
        cfg = dataclasses.replace(cfg, server=dataclasses.replace(cfg.server, workers=workers))
    if cfg.server.workers > 1 and cfg.auth.issuers and cfg.auth.state_store.startswith("memory:"):
        # The config check says the same for server.workers; --workers bypasses it.
        typer.echo(
            "finward: cannot start: auth.state_store is memory://, which each worker would "
            "hold on its own (DPoP replays, revocations and suspensions not shared); "
            "use redis:// or one worker",
            err=True,
        )
        raise typer.Exit(2)
    limits = cfg.rate_limits
    if cfg.server.workers > 1 and limits.limits and limits.store.lower().startswith("memory:"):
        # The config check says the same for server.workers; --workers bypasses it.
        typer.echo(
            "finward: cannot start: rate_limits.store is memory://, which each worker would "
            f"count on its own (up to {cfg.server.workers} times every limit); "
            "use redis:// or one worker",
            err=True,
        )
        raise typer.Exit(2)
    _setup_logging(cfg.logging.level)
    try:
        if cfg.server.workers > 1:
            code = serve_master(config, cfg)
        else:
            code = uvloop.run(serve_single(config, cfg))
    except OSError as exc:
        # Typically a port in use or a privileged port: say which, without a traceback.
        typer.echo(f"finward: cannot start: {exc.strerror or exc}", err=True)
        typer.echo(
            f"  listen {cfg.listen.host}:{cfg.listen.port}, "
            f"admin {cfg.admin.host}:{cfg.admin.port}",
            err=True,
        )
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def reload(
    config: Path = typer.Option(..., "--config", "-c", help="the finward.yaml the gateway serves"),
) -> None:
    """Ask a running gateway to reload its configuration (admin API, else pid file + SIGHUP)."""

    cfg = load_or_exit(config, compile_specs=True)
    token = cfg.admin.token or os.environ.get("FINWARD_ADMIN_TOKEN")
    if cfg.admin.enabled and token:
        url = f"http://{cfg.admin.host}:{cfg.admin.port}/admin/reload"
        req = urllib.request.Request(
            url, method="POST", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
                typer.echo(resp.read().decode())
                return
        except urllib.error.HTTPError as exc:
            typer.echo(exc.read().decode(), err=True)
            raise typer.Exit(1) from None
        except OSError as exc:
            typer.echo(f"admin listener unreachable at {url}: {exc}", err=True)
            raise typer.Exit(1) from None
    if cfg.server.pid_file is not None and cfg.server.pid_file.exists():
        pid = int(cfg.server.pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
        typer.echo(f"sent SIGHUP to {pid}")
        return
    typer.echo(
        "no admin token and no server.pid_file configured: cannot reach the gateway", err=True
    )
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("reload")(reload)
