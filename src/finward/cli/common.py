"""What several commands share: loading a configuration file or saying why not."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from finward.errors import ConfigError

if TYPE_CHECKING:
    from finward.config.model import GatewayConfig

# Exit status for a usage or configuration problem (1 is for a refusal at run time).
EXIT_USAGE = 2


def load_or_exit(path: Path, *, compile_specs: bool = False) -> GatewayConfig:
    """The configuration at ``path``; on problems, print each one and exit 2.

    ``compile_specs`` also compiles the mounted specs (what ``finward serve`` needs)."""
    from finward.adapters.runner import load_checked
    from finward.config.loader import load_config

    try:
        return load_checked(path) if compile_specs else load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(EXIT_USAGE) from None
