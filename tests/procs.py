"""`finward serve` as a real subprocess, for the tests that need whole processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

READY = re.compile(
    r"finward listening on http://127\.0\.0\.1:(\d+), admin on http://127\.0\.0\.1:(\d+)"
)
TOKEN = "test-admin-token-0123456789"


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    port: int
    admin_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from finward.cli.main import main; main()", *args]


def start(config: Path, *extra: str) -> Proc:
    env = {**os.environ, "FW_TEST_TOKEN": TOKEN}
    popen = subprocess.Popen(
        cli_command("serve", "-c", str(config), *extra),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    assert popen.stderr is not None
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = popen.stderr.readline().decode()
        lines.append(line)
        match = READY.search(line)
        if match:
            os.set_blocking(popen.stderr.fileno(), False)
            return Proc(popen, int(match.group(1)), int(match.group(2)))
        if not line and popen.poll() is not None:
            break
    popen.kill()
    popen.wait(timeout=5)
    popen.stderr.close()
    raise AssertionError(f"gateway did not start: {''.join(lines)}")


def stop(proc: Proc) -> int:
    if proc.popen.poll() is None:
        proc.popen.send_signal(signal.SIGTERM)
    try:
        return proc.popen.wait(timeout=20)
    finally:
        if proc.popen.poll() is None:
            proc.popen.kill()
            proc.popen.wait(timeout=5)
        if proc.popen.stderr is not None:
            proc.popen.stderr.close()
