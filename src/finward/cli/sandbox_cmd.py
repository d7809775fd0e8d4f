"""`finward sandbox …`: run the demo bank upstream and show its OpenAPI description."""

from __future__ import annotations

import typer

from finward.sandbox.paths import spec_path

app = typer.Typer(
    no_args_is_help=True,
    help="The sandbox bank finward protects (no auth of its own) and its test auth server.",
)


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; keep it on loopback."),
    port: int = typer.Option(8081, min=0, max=65535, help="TCP port (0 picks a free one)."),
    seed: int = typer.Option(2026, help="Seed of the generated bank data."),
) -> None:
    """Serve the sandbox bank until Ctrl-C or SIGTERM."""
    # Imported here so `finward --help` does not pay for aiohttp and the data model.
    from finward.sandbox.server import serve as serve_sandbox

    serve_sandbox(host=host, port=port, seed=seed)


@app.command("authserver")
def authserver(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; keep it on loopback."),
    port: int = typer.Option(8082, min=0, max=65535, help="TCP port (0 picks a free one)."),
    issuer: str = typer.Option("", help="Issuer URL [default: http://HOST:PORT]."),
    audience: str = typer.Option("finward", help="The aud claim of issued tokens."),
    gateway_secret: str = typer.Option(
        "finward-gateway-sandbox-secret",
        envvar="FINWARD_AUTHSERVER_GATEWAY_SECRET",
        show_default=False,
        help="Introspection secret of the finward-gateway client.",
    ),
) -> None:
    """Serve the sandbox authorization server (test tokens for finward) until Ctrl-C."""
    from finward.sandbox.authserver.server import serve as serve_authserver

    serve_authserver(
        host=host,
        port=port,
        issuer=issuer or None,
        audience=audience,
        gateway_secret=gateway_secret,
    )


@app.command("spec")
def spec(
    print_content: bool = typer.Option(
        False, "--print", help="Print the spec itself instead of its path."
    ),
) -> None:
    """Show where the sandbox's OpenAPI 3.1 spec is (or print it)."""
    path = spec_path()
    if print_content:
        typer.echo(path.read_text(encoding="utf-8"), nl=False)
    else:
        typer.echo(str(path))
