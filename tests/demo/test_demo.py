"""`finward demo`: scenario validation, and the real demo end to end (real processes)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from finward.cli.main import app
from finward.demo.processes import Endpoints
from finward.demo.report import is_expected, percentile
from finward.demo.runner import (
    IDENTITY_VARIABLES,
    SHARED_VARIABLES,
    check_variables,
    identities,
    shared_variables,
)
from finward.demo.scenario import (
    ScenarioError,
    default_scenario_path,
    load_scenario,
    parse_scenario,
    substitute,
)
from finward.demo.traffic import Outcome, render_body
from finward.sandbox.data import build_bank

CLI = [sys.executable, "-c", "from finward.cli.main import main; main()"]
DEMO_BUDGET_S = 60.0

STEP = """
steps:
  - name: list accounts
    kind: {kind}
    category: ais
    request: {request}
    expect: {{status: 200}}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    return info.value.problems


# -- scenario validation ------------------------------------------------------------------


def test_a_bad_kind_is_named_with_the_step_and_the_allowed_kinds() -> None:
    problems = problems_of(STEP.format(kind="hostile", request="{path: /v1/accounts}"))
    assert problems == [
        "steps[0] (list accounts): `kind` must be one of legit, attack (got 'hostile')"
    ]


def test_a_missing_path_is_reported() -> None:
    problems = problems_of(STEP.format(kind="legit", request="{method: GET}"))
    assert problems == [
        "steps[0] (list accounts): request: `path` is required and must start with '/'"
    ]


def test_every_problem_is_reported_at_once_with_the_file_name() -> None:
    text = """
steps:
  - name: a
    kind: legit
    request: {path: /x}
    repeat: 0
    expect: {status: 200}
  - kind: attack
    request: {path: /y, verb: GET}
    expect: {status: 404}
  - name: a
    kind: legit
    request: {path: /z}
    expect: {}
"""
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    assert info.value.problems == [
        "steps[0] (a): `repeat` must be an integer from 1 to 5000 (got 0)",
        "steps[1]: `name` is required (a non-empty string)",
        "steps[1] (?): request: unknown key 'verb'; known: "
        "body, chunked, headers, json, method, pad_to, path, raw",
        "steps[2] (a): `expect` is required: a mapping with `status` and/or `reason`",
    ]
    assert str(info.value).splitlines()[0].startswith("s.yaml: steps[0] (a)")


def test_a_file_without_steps_or_with_broken_yaml_is_refused(tmp_path: Path) -> None:
    assert problems_of("name: empty\n") == ["`steps` must be a non-empty list"]
    assert problems_of("steps: [")[0].startswith("not valid YAML")
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "missing.yaml")


def test_raw_lines_are_joined_with_crlf_and_cannot_capture() -> None:
    text = STEP.format(kind="attack", request='{raw: ["GET / HTTP/1.1", "Host: {host}", "", ""]}')
    step = parse_scenario(text).steps[0]
    assert step.request.raw == "GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"
    assert step.request.is_raw
    bad = text.replace("expect:", "capture: {x: y}\n    expect:")
    assert problems_of(bad) == [
        "steps[0] (list accounts): `capture` and `direct_probe` need an HTTP (not raw) request"
    ]


def test_reason_null_means_forwarded_and_a_reason_must_match() -> None:
    text = STEP.format(kind="attack", request="{path: /x}").replace(
        "{status: 200}", "{status: 400, reason: null}"
    )
    expect = parse_scenario(text).steps[0].expect
    assert expect.reason == ""
    assert is_expected(Outcome(400, None, 1.0, 10), expect)
    assert not is_expected(Outcome(400, "path_not_canonical", 1.0, 10), expect)
    assert not is_expected(Outcome(None, None, 1.0, 0, error="reset"), expect)


def test_unknown_variables_fail_before_anything_starts() -> None:
    text = STEP.format(kind="legit", request='{path: "/v1/accounts/{acount_id}"}')
    with pytest.raises(ScenarioError, match=r"unknown variable \{acount_id\}"):
        check_variables(parse_scenario(text), {"account_id", "psu"})
    with pytest.raises(KeyError):
        substitute("{nope}", {})


def test_the_default_scenario_is_valid_and_uses_only_known_variables() -> None:
    scenario = load_scenario(default_scenario_path())
    bank = build_bank(2026)
    endpoints = Endpoints("", "", "", "127.0.0.1", 1, Path("a"), Path("c"))
    shared = shared_variables(bank, endpoints, {"max_body_bytes": 1000})
    people = identities(bank)
    assert set(shared) == SHARED_VARIABLES
    assert all(set(who) == IDENTITY_VARIABLES for who in people)
    check_variables(scenario, set(shared) | set(people[0]))
    assert len(people) == len(bank.psus)
    assert all(who["creditor_iban"] != who["iban"] for who in people)
    assert int(shared["oversize_bytes"]) > 1000
    kinds = {s.kind for s in scenario.steps}
    assert kinds == {"legit", "attack"}
    assert sum(s.repeat for s in scenario.steps if s.kind == "legit") >= 300


def test_padding_keeps_json_valid_and_reaches_the_size() -> None:
    step = parse_scenario(
        STEP.format(kind="attack", request='{path: /p, json: {a: "{v}"}, pad_to: "{n}"}')
    ).steps[0]
    body = render_body(step.request, {"v": "x", "n": "300"})
    assert body is not None and len(body) == 300
    assert json.loads(body) == {"a": "x"}


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 99, 100)] == [50.0, 90.0, 99.0, 100.0]
    assert percentile([], 50) == 0.0


def test_the_cli_prints_scenario_problems_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(STEP.format(kind="friendly", request="{path: /v1/accounts}"))
    result = CliRunner().invoke(app, ["demo", "--scenario", str(path)])
    assert result.exit_code == 2
    assert "`kind` must be one of legit, attack (got 'friendly')" in result.stderr
    assert str(path) in result.stderr


# -- the real thing -----------------------------------------------------------------------


def run_cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_the_demo_blocks_every_attack_and_serves_every_legit_request(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    started = time.monotonic()
    result = run_cli("demo", "--report", str(report_path), timeout=DEMO_BUDGET_S * 2)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert elapsed < DEMO_BUDGET_S
    report: dict[str, Any] = json.loads(report_path.read_text())
    assert report["ok"] is True
    assert "finward behaved as expected on" in result.stdout

    steps = report["steps"]
    for step in steps:
        assert step["ok"], step
        if step["kind"] == "legit":
            assert all(200 <= int(a.split()[0]) < 300 for a in step["actual"]), step
            assert step["blocked"] == 0
        elif step["expected"]["reason"]:
            # Blocked by finward itself, with exactly the reason the scenario names.
            reason = step["expected"]["reason"]
            assert step["blocked"] == step["requests"], step
            assert set(step["actual"]) == {f"{s} {reason}" for s in step["expected"]["status"]}
    attack_reasons = {s["expected"]["reason"] for s in steps if s["kind"] == "attack"}
    assert {"route_not_found", "path_not_canonical", "ambiguous_message_length"} <= attack_reasons

    totals = report["totals"]
    assert totals["legit"] >= 300 and totals["no_response"] == 0
    # The gateway saw the same traffic the client sent, attackers from their own address.
    gateway = report["gateway"]
    assert gateway["access_log_lines"] == totals["requests"]
    assert gateway["metrics_requests_total"] == totals["requests"]
    assert gateway["top_blocked_clients"][0]["client"] == report["sources"]["attack"]
    # Shadow endpoints: open on the sandbox, closed through finward.
    shadow = {row["path"]: row for row in report["shadow_endpoints"]}
    assert set(shadow) == {"/admin/users", "/v0/accounts", "/debug/vars"}
    for row in shadow.values():
        assert row["sandbox_direct_status"] == 200
        assert row["through_finward"] == {"404 route_not_found": row_count(steps, row["step"])}
    latency = report["latency"]["legit"]
    assert 0 < latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"] <= latency["max_ms"]


def row_count(steps: list[dict[str, Any]], name: str) -> int:
    return next(s["requests"] for s in steps if s["name"] == name)


def is_listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


@pytest.mark.slow
def test_keep_running_stays_up_until_ctrl_c_then_stops_everything(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(
        STEP.format(
            kind="legit",
            request='{path: /v1/accounts, headers: {X-Finward-PSU-ID: "{psu}"}}',
        )
    )
    out = (tmp_path / "out.txt").open("w")
    proc = subprocess.Popen(
        [*CLI, "demo", "--keep-running", "--scenario", str(scenario)],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        urls: dict[str, str] = {}
        deadline = time.monotonic() + DEMO_BUDGET_S
        while "sandbox" not in urls and time.monotonic() < deadline:
            time.sleep(0.2)
            assert proc.poll() is None, (tmp_path / "out.txt").read_text()
            for line in (tmp_path / "out.txt").read_text().splitlines():
                name, _, value = line.strip().partition(" ")
                if name in ("gateway", "admin", "sandbox") and value.strip().startswith("http"):
                    urls[name] = value.strip()
        assert set(urls) == {"gateway", "admin", "sandbox"}, (tmp_path / "out.txt").read_text()
        assert all(is_listening(u) for u in urls.values())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert not any(is_listening(u) for u in urls.values())
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()


def test_a_misspelt_variable_stops_the_demo_before_any_process_starts(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(STEP.format(kind="legit", request='{path: "/v1/accounts/{acount_id}"}'))
    started = time.monotonic()
    result = CliRunner().invoke(app, ["demo", "--scenario", str(path)])
    assert result.exit_code == 2
    assert "unknown variable {acount_id}" in result.stderr
    assert time.monotonic() - started < 2  # no sandbox, no gateway
