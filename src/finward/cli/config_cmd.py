"""`finward config …`: print the schema, check a file, show the effective config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
import yaml

from finward.config.loader import config_schema, inspect_config
from finward.config.render import effective_document

# Distinct from 1 (crash or usage error from typer is 2 too, but those print usage):
# scripts and CI can tell "the config is invalid" from "finward broke".
EXIT_INVALID_CONFIG = 2

app = typer.Typer(
    no_args_is_help=True,
    help="Check and inspect finward.yaml configuration files.",
)

FileArgument = Annotated[
    Path, typer.Argument(help="The configuration file, e.g. finward.yaml.", show_default=False)
]


@app.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of finward.yaml (for editors and CI validation)."""
    typer.echo(json.dumps(config_schema(), indent=2, ensure_ascii=False))


@app.command("check")
def check_command(file: FileArgument) -> None:
    """Check a configuration file; list every problem and exit with status 2 if any."""
    report = inspect_config(file)
    if report.config is None:
        _fail(report.problems)
    # A fixed shape ("1 APIs" included) so scripts can parse it.
    typer.echo(f"OK: {file} ({len(report.config.apis)} APIs, {report.operation_count} operations)")


@app.command("show")
def show_command(file: FileArgument) -> None:
    """Print the effective configuration (defaults filled in, secrets shown as ***)."""
    report = inspect_config(file)
    if report.config is None:
        _fail(report.problems)
    document = effective_document(report.config)
    typer.echo(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), nl=False)


def _fail(problems: tuple[str, ...]) -> NoReturn:
    for problem in problems:
        typer.echo(problem, err=True)
    raise typer.Exit(EXIT_INVALID_CONFIG)
