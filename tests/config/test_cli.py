"""`finward config schema | check | show`."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from finward.cli.main import app
from finward.config.loader import config_schema

from .conftest import MINIMAL, WriteConfig

runner = CliRunner()


def test_config_schema_prints_the_schema_as_indented_json() -> None:
    result = runner.invoke(app, ["config", "schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == config_schema()
    assert result.stdout.startswith('{\n  "$schema": ')


def test_config_check_ok(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL)
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"OK: {path} (1 APIs, 2 operations)\n"
    assert result.stderr == ""


def test_config_check_prints_each_problem_on_stderr_and_exits_2(
    write_config: WriteConfig,
) -> None:
    path = write_config(MINIMAL + "listen: {port: 70000, hots: x}\n")
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "listen.hots: unknown key (did you mean 'host'?)",
        "listen.port: 70000 is greater than the maximum of 65535",
    ]


def test_config_check_missing_file_exits_2() -> None:
    result = runner.invoke(app, ["config", "check", "/nonexistent/finward.yaml"])
    assert result.exit_code == 2
    assert result.stderr == "/nonexistent/finward.yaml: file not found\n"


def test_config_show_prints_the_effective_config(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL + "listen: {port: 9000}\n")
    result = runner.invoke(app, ["config", "show", str(path)])
    assert result.exit_code == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["version"] == 1
    assert shown["listen"] == {"host": "127.0.0.1", "port": 9000, "tls": None}
    assert shown["upstreams"]["bank"]["timeouts"] == {
        "connect_s": 2.0,
        "read_s": 15.0,
        "total_s": 30.0,
    }
    assert shown["apis"][0]["spec"] == str(path.parent / "spec.yaml")
    assert shown["admin"]["token"] is None  # unset stays null, not ***


def test_config_show_output_is_itself_a_valid_config(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL)
    result = runner.invoke(app, ["config", "show", str(path)])
    path.write_text(result.stdout)
    check = runner.invoke(app, ["config", "check", str(path)])
    assert check.exit_code == 0, check.stderr


def test_config_show_invalid_file_exits_2(write_config: WriteConfig) -> None:
    path = write_config("listen: {port: x}\n")
    result = runner.invoke(app, ["config", "show", str(path)])
    assert result.exit_code == 2
    assert result.stderr == "listen.port: expected an integer, got a string\n"
