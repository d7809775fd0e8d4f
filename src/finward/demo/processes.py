"""Start the sandbox bank, the sandbox authorisation server and the gateway as real
subprocesses, and always stop them.

Each child runs in its own session (process group), so a Ctrl-C in the terminal reaches
only the demo, which then stops the children in order; a `finally` and the context
manager make sure no gateway is left listening after an error.

Every child binds port 0 and announces the port it got, so the demo never races
another program for a "free" port between probing and binding. The gateway's policy is
the shipped example plus authentication (`auth_overlay`): tokens from the demo's
authorisation server, sender-constrained, with Berlin Group error codes; and the
scenario's rate limits, if it has any (`rate_limit_overlay`). Its DPoP `htu`
base is the scenario's public URL, not the random port: the URL clients use, as behind
a load balancer.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml

from finward.errors import FinwardError
from finward.sandbox.authserver.tokens import DEFAULT_AUDIENCE
from finward.sandbox.paths import spec_path

# Running the CLI through `-c` works whatever the venv's console-script layout is, and
# main.py has no `__main__` guard for `-m`.
_CLI = "from finward.cli.main import main; main()"
_SANDBOX_READY = re.compile(r"sandbox listening on http://127\.0\.0\.1:(\d+)")
_AUTHSERVER_READY = re.compile(r"authserver listening on http://127\.0\.0\.1:(\d+)")
_GATEWAY_READY = re.compile(
    r"finward listening on http://127\.0\.0\.1:(\d+), admin on http://127\.0\.0\.1:(\d+)"
)
STARTUP_TIMEOUT_S = 20.0  # the gateway compiles the spec, the sandbox builds 18 months of data
STOP_TIMEOUT_S = 5.0


class DemoStartError(FinwardError):
    """A child process did not come up; the message carries the tail of its output."""


@dataclass(slots=True)
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    _files: list[IO[bytes]] = field(default_factory=list)

    def output_tail(self, lines: int = 15) -> str:
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            with contextlib.suppress(OSError):
                parts.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(parts[-lines:])

    def stop(self) -> None:
        """SIGTERM the whole group, then SIGKILL whatever is left after the grace period."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        else:
            # The leader is gone, but a grandchild (a worker) may still hold the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        for f in self._files:
            f.close()


@dataclass(frozen=True, slots=True)
class Endpoints:
    sandbox_url: str
    gateway_url: str
    admin_url: str
    gateway_host: str
    gateway_port: int
    access_log: Path
    config_path: Path
    authserver_url: str = ""  # the issuer: tokens' iss, discovery and JWKS below it
    public_base_url: str = ""  # what DPoP proofs name in htu
    audience: str = DEFAULT_AUDIENCE

    @property
    def metrics_url(self) -> str:
        return f"{self.admin_url}/metrics"


class DemoProcesses:
    """Context manager: sandbox and authorisation server, then gateway, up on enter; all
    down on exit (any exit)."""

    def __init__(
        self,
        workdir: Path,
        seed: int,
        example_config: Path,
        *,
        public_base_url: str,
        audience: str = DEFAULT_AUDIENCE,
        rate_limits: Mapping[str, Any] | None = None,
    ) -> None:
        self.workdir = workdir.resolve()  # the config resolves paths from its own folder
        self.seed = seed
        self.example_config = example_config
        self.public_base_url = public_base_url
        self.audience = audience
        self.rate_limits = rate_limits  # the scenario's, for the gateway
        self.children: list[Child] = []
        self.endpoints: Endpoints | None = None
        self.limits: dict[str, Any] = {}  # the policy's `limits`, for size-attack variables

    def __enter__(self) -> DemoProcesses:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Endpoints:
        sandbox = self._spawn(
            "sandbox",
            ["sandbox", "serve", "--host", "127.0.0.1", "--port", "0", "--seed", str(self.seed)],
        )
        # Both start at once: neither needs the other, and the bank takes the longer.
        authserver_args = ["sandbox", "authserver", "--host", "127.0.0.1", "--port", "0"]
        authserver = self._spawn("authserver", [*authserver_args, "--audience", self.audience])
        (sandbox_port,) = _wait_ready(sandbox, _SANDBOX_READY)
        (authserver_port,) = _wait_ready(authserver, _AUTHSERVER_READY)
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        # `finward sandbox authserver` names itself http://HOST:PORT (its default issuer).
        issuer = f"http://127.0.0.1:{authserver_port}"
        config_path, access_log = self._write_config(sandbox_url, issuer)
        gateway = self._spawn("gateway", ["serve", "-c", str(config_path)])
        port, admin_port = _wait_ready(gateway, _GATEWAY_READY)
        self.endpoints = Endpoints(
            sandbox_url=sandbox_url,
            gateway_url=f"http://127.0.0.1:{port}",
            admin_url=f"http://127.0.0.1:{admin_port}",
            gateway_host="127.0.0.1",
            gateway_port=port,
            access_log=access_log,
            config_path=config_path,
            authserver_url=issuer,
            public_base_url=self.public_base_url,
            audience=self.audience,
        )
        return self.endpoints

    def stop(self) -> None:
        # Gateway first: it drains in-flight requests, which need the sandbox still up.
        # (The order of start is sandbox, authserver, gateway.)
        for child in reversed(self.children):
            child.stop()
        self.children.clear()

    def check_alive(self) -> None:
        for child in self.children:
            if child.proc.poll() is not None:
                raise DemoStartError(
                    f"the {child.name} exited with status {child.proc.returncode}:\n"
                    + child.output_tail()
                )

    def _spawn(self, name: str, args: list[str]) -> Child:
        out_path, err_path = self.workdir / f"{name}.out", self.workdir / f"{name}.err"
        out, err = out_path.open("wb"), err_path.open("wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-c", _CLI, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            start_new_session=True,  # own process group: killpg reaches workers too
        )
        child = Child(name, proc, out_path, err_path, [out, err])
        self.children.append(child)
        return child

    def _write_config(self, sandbox_url: str, issuer: str) -> tuple[Path, Path]:
        """A copy of the shipped example with our ports, absolute specs, a file access log
        and authentication against the demo's authorisation server."""
        config: dict[str, Any] = yaml.safe_load(self.example_config.read_text(encoding="utf-8"))
        base = self.example_config.resolve().parent
        config.setdefault("listen", {})["port"] = 0
        config.setdefault("admin", {})["port"] = 0
        config["upstreams"]["bank"]["url"] = sandbox_url
        for api in config.get("apis", []):
            api["spec"] = str((base / api["spec"]).resolve())
        access_log = self.workdir / "access.log"
        config.setdefault("logging", {})["access_log"] = str(access_log)
        auth_overlay(config, issuer, self.public_base_url, self.audience)
        if self.rate_limits is not None:
            rate_limit_overlay(config, self.rate_limits)
        self.limits = dict(config.get("limits") or {})
        path = self.workdir / "finward.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path, access_log


def auth_overlay(config: dict[str, Any], issuer: str, public_base_url: str, audience: str) -> None:
    """Turn authentication on in a copy of the example policy (what the demo runs)."""
    for api in config.get("apis", []):
        api["auth"] = {
            "token": "required",  # every call needs a valid access token
            "sender_constraint": "required",  # a bearer token anyone could replay: refused
            "sender_method": "any",  # DPoP-bound (the demo's clients) or certificate-bound
            # Refusals carry a Berlin Group message code (TOKEN_INVALID, TOKEN_EXPIRED ...).
            "error_format": "berlin-group",
            # No scopes here: each operation's OpenAPI `security` names its own.
            # No tpp_roles: the demo runs on plain HTTP, so no client presents a QWAC.
        }
    config["auth"] = {
        "issuers": [
            # Keys through discovery (RFC 8414) below the issuer; http:// only because the
            # demo's authorisation server is on loopback.
            {"issuer": issuer, "allow_insecure_loopback": True},
        ],
        "audiences": [audience],
        "public_base_url": public_base_url,
        "state_store": "memory://",  # one worker: replayed proofs are caught in memory
    }


def rate_limit_overlay(config: dict[str, Any], rate_limits: Mapping[str, Any]) -> None:
    """Give the demo gateway the scenario's `rate_limits` section, as written.

    The scenario's expectations (a scraper refused, a paced client never) depend on these
    exact limits, so they travel with the scenario, not with the example policy.
    """
    config["rate_limits"] = copy.deepcopy(dict(rate_limits))
    if str(config["rate_limits"].get("store", "memory://")).startswith("memory:"):
        # Counters in one process's memory are exact only if one process counts.
        config.setdefault("server", {})["workers"] = 1


def _wait_ready(child: Child, pattern: re.Pattern[str]) -> tuple[int, ...]:
    """Poll the child's output for its ready line; fail fast if it exits first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        for path in (child.stderr_path, child.stdout_path):
            with contextlib.suppress(OSError):
                match = pattern.search(path.read_text(errors="replace"))
                if match:
                    return tuple(int(g) for g in match.groups())
        if child.proc.poll() is not None:
            raise DemoStartError(
                f"the {child.name} exited with status {child.proc.returncode} before it was "
                f"ready:\n{child.output_tail()}"
            )
        time.sleep(0.05)
    raise DemoStartError(
        f"the {child.name} was not ready after {STARTUP_TIMEOUT_S:.0f} s:\n{child.output_tail()}"
    )


def example_config_path() -> Path:
    """The shipped example policy: examples/finward.yaml in a checkout."""
    # The sandbox spec lives in the package; the example sits at the repo root beside src/.
    candidate = spec_path().parents[3] / "examples" / "finward.yaml"
    if candidate.is_file():
        return candidate
    raise DemoStartError(
        f"cannot find the example policy at {candidate}; run the demo from a finward checkout"
    )
