"""`finward demo`: run the sandbox bank behind the gateway and play a traffic scenario."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import typer

# Wide enough for the per-step table when the output goes to a file or a CI log.
REPORT_WIDTH = 120


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so the children (in their own sessions,
    # out of reach of the terminal's signals) are always stopped.
    raise KeyboardInterrupt


def demo(
    scenario: Path | None = typer.Option(
        None,
        "--scenario",
        help="Scenario YAML to play (default: the packaged default scenario).",
        dir_okay=False,
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Also write the summary as JSON to this file.", dir_okay=False
    ),
    keep_running: bool = typer.Option(
        False,
        "--keep-running",
        help="Leave the sandbox and the gateway up after the run, until Ctrl-C.",
    ),
    seed: int = typer.Option(2026, help="Seed of the sandbox bank's generated data."),
) -> None:
    """Start a sandbox bank and finward in front of it, send legitimate and attack
    traffic, and show what finward forwarded and what it refused (and why)."""
    # Imported here so `finward --help` does not pay for aiohttp, rich tables and the bank.
    from rich.console import Console

    from finward.demo.processes import DemoStartError
    from finward.demo.report import build_report, render, write_report
    from finward.demo.runner import DemoRun, run_demo, run_metadata, wait_forever
    from finward.demo.scenario import ScenarioError, default_scenario_path, load_scenario

    console = Console(width=None if sys.stdout.isatty() else REPORT_WIDTH)
    try:
        plan = load_scenario(scenario or default_scenario_path())
    except ScenarioError as exc:
        for problem in exc.problems:
            typer.echo(f"{exc.source}: {problem}", err=True)
        raise typer.Exit(2) from None

    verdict: dict[str, bool] = {}

    def show(run: DemoRun) -> None:
        # Printed while the processes are still up, so --keep-running can follow it.
        summary = build_report(run)
        verdict["ok"] = bool(summary["ok"])
        render(summary, console)
        if report is not None:
            write_report(summary, report)
            console.print(f"JSON report written to {report}")
        if keep_running:
            console.rule("still running: Ctrl-C to stop")
            for name, value in run_metadata(run).items():
                console.print(f"  {name:<10} {value}")
            wait_forever()

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_demo(plan, seed=seed, console=console, on_finished=show)
    except ScenarioError as exc:
        for problem in exc.problems:
            typer.echo(f"{exc.source}: {problem}", err=True)
        raise typer.Exit(2) from None
    except DemoStartError as exc:
        typer.echo(f"finward demo: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("finward demo: interrupted; sandbox and gateway stopped", err=True)
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not verdict.get("ok"):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `finward demo` to the top-level app."""
    app.command("demo")(demo)
