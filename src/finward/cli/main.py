"""The `finward` command line."""

from __future__ import annotations

import typer

from finward.cli import admin_cmd, config_cmd, demo_cmd, limits_cmd, sandbox_cmd, serve_cmd

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="finward: a security gateway for financial (PSD2 / open banking) APIs.",
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(sandbox_cmd.app, name="sandbox")
app.add_typer(limits_cmd.app, name="limits")
serve_cmd.register(app)
demo_cmd.register(app)
admin_cmd.register(app)


def main() -> None:
    app()
