"""Starting and stopping the sandbox: the async helper and the `finward sandbox` command."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from finward.cli.main import app as cli
from finward.sandbox.paths import spec_path
from finward.sandbox.server import start_sandbox

LISTENING = re.compile(r"sandbox listening on http://127\.0\.0\.1:(\d+)")


async def test_start_sandbox_binds_a_free_port_with_the_requested_seed() -> None:
    runner, port = await start_sandbox("127.0.0.1", 0, seed=5)
    try:
        assert port > 0
        url = f"http://127.0.0.1:{port}/debug/vars"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert (await response.json())["config"]["data_seed"] == 5
    finally:
        await runner.cleanup()


async def test_start_sandbox_reports_a_busy_port_and_leaves_nothing_running() -> None:
    runner, port = await start_sandbox("127.0.0.1", 0, seed=1)
    try:
        with pytest.raises(OSError):
            await start_sandbox("127.0.0.1", port, seed=1)
    finally:
        await runner.cleanup()


def test_spec_command_prints_the_path_or_the_content() -> None:
    runner = CliRunner()
    shown = runner.invoke(cli, ["sandbox", "spec"])
    assert shown.exit_code == 0 and Path(shown.output.strip()) == spec_path()
    printed = runner.invoke(cli, ["sandbox", "spec", "--print"])
    assert printed.exit_code == 0
    assert printed.output == spec_path().read_text(encoding="utf-8")


@pytest.mark.slow
def test_serve_command_announces_itself_answers_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from finward.cli.main import main; main()",
            *("sandbox", "serve", "--port", "0", "--seed", "3"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = LISTENING.fullmatch(line.strip())
        assert match, line
        deadline = time.monotonic() + 10
        url = f"http://127.0.0.1:{match.group(1)}/v1/accounts"
        request = urllib.request.Request(url, headers={"X-Finward-PSU-ID": "psu-carla"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=max(1.0, deadline - time.monotonic())) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=5)
