"""`finward demo`: scenario validation, and the real demo end to end (real processes)."""

from __future__ import annotations

import asyncio
import itertools
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
import yaml
from typer.testing import CliRunner

from finward.auth.dpop import DPoPPolicy, verify_dpop_proof
from finward.cli.main import app
from finward.config.loader import load_config
from finward.demo.oauth import DPoPKey
from finward.demo.processes import DemoProcesses, Endpoints, example_config_path
from finward.demo.report import is_expected, matches_step, percentile, shortfalls
from finward.demo.runner import (
    IDENTITY_VARIABLES,
    SHARED_VARIABLES,
    DemoRun,
    Player,
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
    variables_used,
)
from finward.demo.traffic import Outcome, raw_request_line, render_body
from finward.http import Headers
from finward.sandbox.data import build_bank
from finward.sandbox.paths import spec_path

CLI = [sys.executable, "-c", "from finward.cli.main import main; main()"]
DEMO_BUDGET_S = 60.0
# The token attacks of the default scenario, each with the reason finward must give.
AUTH_ATTACK_REASONS = {
    "token_missing",
    "token_in_query",
    "token_signature_invalid",
    "token_expired",
    "token_algorithm_not_allowed",
    "dpop_proof_replayed",
    "dpop_binding_mismatch",
    "token_binding_missing",
    "insufficient_scope",
}

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
        "steps[2] (a): `expect` is required: a mapping with `status` and/or `reason` "
        "(or a list of them)",
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
    (expect,) = parse_scenario(text).steps[0].expect
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
    # Every legitimate client authenticates with a DPoP-bound token, never a PSU header.
    for step in scenario.steps:
        if step.kind == "legit":
            assert step.auth is not None and step.auth.client in scenario.clients, step.name
            assert (step.auth.scheme, step.auth.proof, step.auth.origin) == (
                "DPoP",
                "fresh",
                "issued",
            )
            assert not any(h.lower() == "x-finward-psu-id" for h in step.request.headers)
    auth_steps = [s for s in scenario.steps if s.category == "authentication"]
    assert {e.reason for s in auth_steps for e in s.expect} >= AUTH_ATTACK_REASONS


RATE_STEP = """
steps:
  - name: burst
    kind: attack
    request: {{path: /v1/accounts}}
    repeat: 10
{extra}
"""


def test_expect_may_list_outcomes_with_a_count_that_must_be_reached() -> None:
    text = RATE_STEP.format(
        extra="""    expect:
      - {status: 429, reason: rate_limited, at_least: 6}
      - {status: 200, reason: null}"""
    )
    step = parse_scenario(text).steps[0]
    limited, served = step.expect
    assert (limited.statuses, limited.reason, limited.at_least) == ((429,), "rate_limited", 6)
    assert (served.statuses, served.reason, served.at_least) == ((200,), "", 0)
    assert step.describe_expect() == "429 rate_limited (>=6) | 200 forwarded"
    refused = Outcome(429, "rate_limited", 1.0, 10)
    forwarded = Outcome(200, None, 1.0, 10)
    assert matches_step(refused, step.expect) and matches_step(forwarded, step.expect)
    assert not matches_step(Outcome(429, "quota_exhausted", 1.0, 10), step.expect)
    assert shortfalls([refused] * 6 + [forwarded] * 4, step.expect) == []
    assert shortfalls([refused] * 5 + [forwarded] * 5, step.expect) == ["429 rate_limited (>=6): 5"]


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            "    expect: {status: 429, at_least: 3}",
            "expect.at_least needs a list of outcomes",
        ),
        (
            "    expect: [{status: 429, at_least: 8}, {status: 200, at_least: 3}]",
            "the `at_least` counts add up to more than `repeat`",
        ),
        ("    expect: [{status: 429, at_least: -1}]", "expect.at_least must be a whole number"),
        ("    expect: []", "`expect` is required"),
        ("    rate_per_s: 0\n    expect: {status: 200}", "`rate_per_s` must be a number above 0"),
        ("    rate_per_s: fast\n    expect: {status: 200}", "`rate_per_s` must be a number"),
    ],
)
def test_bad_outcome_lists_and_rates_are_reported(extra: str, problem: str) -> None:
    problems = problems_of(RATE_STEP.format(extra=extra))
    assert len(problems) == 1, problems
    assert problems[0].startswith("steps[0] (burst): ")
    assert problem in problems[0]


def test_rate_limits_must_be_a_mapping_and_are_kept_as_written() -> None:
    text = RATE_STEP.format(extra="    rate_per_s: 12.5\n    expect: {status: 200}")
    assert problems_of("rate_limits: [a]\n" + text) == [
        "rate_limits: must be a mapping (the gateway's `rate_limits` section)"
    ]
    section = "rate_limits:\n  limits: [{name: x, algorithm: gcra, limit: 1}]\n"
    scenario = parse_scenario(section + text)
    assert scenario.rate_limits == {"limits": [{"name": "x", "algorithm": "gcra", "limit": 1}]}
    assert scenario.steps[0].rate_per_s == 12.5
    assert parse_scenario(text).rate_limits is None


def test_the_demo_gateway_gets_the_scenarios_rate_limits_and_they_are_valid(
    tmp_path: Path,
) -> None:
    scenario = load_scenario(default_scenario_path())
    assert scenario.rate_limits is not None
    procs = DemoProcesses(
        tmp_path,
        2026,
        example_config_path(),
        public_base_url=scenario.public_base_url,
        rate_limits=scenario.rate_limits,
    )
    path, _ = procs._write_config("http://127.0.0.1:1", "http://127.0.0.1:2")
    config = load_config(path)
    assert config.server.workers == 1  # memory:// counts in one process
    assert config.rate_limits.store == "memory://"
    names = {limit.name: limit for limit in config.rate_limits.limits}
    assert names["transaction-details"].algorithm == "gcra"
    assert names["card-history-daily"].calendar == "day"
    # The operations the limits name are the sandbox bank's (the gateway checks it too).
    spec = yaml.safe_load(spec_path().read_text(encoding="utf-8"))
    operation_ids = {
        op["operationId"]
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }
    for limit in names.values():
        assert set(limit.apply_to.operations) <= operation_ids, limit.name
    # Without a rate_limits section in the scenario, the gateway has none.
    bare = DemoProcesses(tmp_path, 2026, example_config_path(), public_base_url="http://x")
    assert (
        load_config(
            bare._write_config("http://127.0.0.1:1", "http://127.0.0.1:2")[0]
        ).rate_limits.limits
        == ()
    )


def test_the_default_scenario_has_a_scraper_and_a_client_that_keeps_within_its_limit() -> None:
    scenario = load_scenario(default_scenario_path())
    steps = {s.name: s for s in scenario.steps}
    scraper = steps["scraper floods transaction details"]
    assert scraper.kind == "attack" and scraper.auth is not None
    assert scraper.auth.client == "tpp-scraper" and scraper.rate_per_s is None
    assert {(e.reason, e.at_least > 0) for e in scraper.expect} == {
        ("rate_limited", True),
        ("", False),
    }
    paced = steps["transaction details, paced"]
    assert paced.kind == "legit" and paced.rate_per_s is not None
    assert [(e.statuses, e.reason) for e in paced.expect] == [((200,), "")]
    # It asks for more than the burst, so only the pacing keeps it clear of a 429 ...
    limits = {limit["name"]: limit for limit in scenario.rate_limits["limits"]}  # type: ignore[index]
    details = limits["transaction-details"]
    assert paced.repeat > details["burst"]
    # ... and a little under the limit's rate adds up to less than the burst by the end.
    assert paced.repeat - details["limit"] * paced.repeat / paced.rate_per_s < details["burst"]
    # The demo stays quick: the paced step takes about repeat / rate seconds.
    assert paced.repeat / paced.rate_per_s <= 3
    quota = steps["scraper exhausts its daily card quota"]
    assert {e.reason for e in quota.expect} == {"quota_exhausted", ""}
    assert sum(e.at_least for e in quota.expect) == quota.repeat


def test_a_paced_step_starts_its_requests_at_the_rate_it_names() -> None:
    text = RATE_STEP.format(
        extra="    concurrency: 3\n    rate_per_s: 50\n    expect: {status: 200}"
    )
    scenario = parse_scenario(text)
    endpoints = Endpoints("", "http://gw", "", "127.0.0.1", 1, Path("a"), Path("c"))
    run = DemoRun(scenario=scenario, seed=1, endpoints=endpoints, started_at="now")
    run.sources = {"legit": "127.0.0.1", "attack": "127.0.0.2"}
    player = Player(run, [{}], {}, lambda n: None)
    started: list[float] = []

    async def send(step: Any, index: int, source: str, base_url: str) -> Outcome:
        started.append(asyncio.get_running_loop().time())
        return Outcome(200, None, 1.0, 10)

    player.send = send  # type: ignore[method-assign]

    async def play() -> Any:
        try:
            return await player.play_step(scenario.steps[0])
        finally:
            await player.http.close()
            await player.tpp.close()

    result = asyncio.run(play())
    assert len(result.outcomes) == 10
    gaps = [b - a for a, b in itertools.pairwise(started)]
    # 10 requests at 50 a second: 0.18 s from the first to the last, never two at once.
    assert started[-1] - started[0] == pytest.approx(0.18, abs=0.05)
    assert min(gaps) > 0.01


AUTH_STEP = """
clients:
  tpp-acme-ais: {{redirect_uri: "https://acme.example/callback"}}
steps:
  - name: keeper
    kind: legit
    request: {{path: /v1/accounts}}
    auth: {{client: tpp-acme-ais, psu: "{{psu}}", keep: kept}}
    expect: {{status: 200}}
  - name: attack
    kind: attack
    request: {{path: /v1/accounts}}
    auth: {auth}
    expect: {{status: 401}}
"""


def test_auth_defaults_follow_the_scheme_and_placement() -> None:
    scenario = parse_scenario(AUTH_STEP.format(auth="{client: tpp-acme-ais, scheme: Bearer}"))
    keeper, attack = (s.auth for s in scenario.steps)
    assert keeper is not None and attack is not None
    assert (keeper.scheme, keeper.place, keeper.proof, keeper.keep) == (
        "DPoP",
        "header",
        "fresh",
        "kept",
    )
    assert (attack.scheme, attack.proof, attack.psu) == ("Bearer", "none", None)
    query = parse_scenario(AUTH_STEP.format(auth="{client: tpp-acme-ais, in: query}"))
    assert query.steps[1].auth is not None and query.steps[1].auth.proof == "none"
    replay = parse_scenario(AUTH_STEP.format(auth="{replay: kept}"))
    assert replay.steps[1].auth is not None and replay.steps[1].auth.replay == "kept"
    assert scenario.public_base_url == "https://api.bank.example"
    assert "psu" in variables_used(scenario.steps[0])


@pytest.mark.parametrize(
    ("auth", "problem"),
    [
        ("{client: tpp-nobody}", "auth.client 'tpp-nobody' is not in `clients` (tpp-acme-ais)"),
        ("{replay: never-kept}", "auth.replay 'never-kept' names nothing an earlier step keeps"),
        ("{replay: kept, client: tpp-acme-ais}", "auth.replay sends kept credentials"),
        ("{psu: x}", "auth.client is required (or auth.replay)"),
        ("{client: tpp-acme-ais, token: stolen}", "auth.token must be one of issued, expired"),
        ("{client: tpp-acme-ais, scheme: Basic}", "auth.scheme must be one of DPoP, Bearer"),
        ("{client: tpp-acme-ais, via: header}", "auth: unknown key 'via'"),
        ("{client: tpp-acme-ais, psu: 7}", "auth.psu must be a string"),
    ],
)
def test_bad_auth_is_reported_with_the_step(auth: str, problem: str) -> None:
    problems = problems_of(AUTH_STEP.format(auth=auth))
    assert len(problems) == 1, problems
    assert problems[0].startswith("steps[1] (attack): ")
    assert problem in problems[0]


def test_clients_and_public_base_url_are_checked() -> None:
    text = AUTH_STEP.format(auth="{client: tpp-acme-ais}")
    bad_client = text.replace('{redirect_uri: "https://acme.example/callback"}', "{secret: 1}")
    assert "clients.tpp-acme-ais: redirect_uri is required" in problems_of(bad_client)[0]
    bad_url = "public_base_url: https://api.example/psd2\n" + text
    assert problems_of(bad_url)[0].startswith("public_base_url: must be scheme://host[:port]")


def test_dpop_proofs_verify_against_the_public_url_and_the_token() -> None:
    key = DPoPKey()
    url = "https://api.bank.example/v1/accounts"
    proof = key.proof("GET", url, "the-access-token")
    verified = verify_dpop_proof(
        Headers([("DPoP", proof)]),
        "GET",
        url,
        "the-access-token",
        time.time(),
        DPoPPolicy(),
        replay=None,
        token_jkt=key.jkt,
    )
    assert verified.jkt == key.jkt
    assert key.proof("GET", url) != key.proof("GET", url)  # a new jti every time


def test_the_request_line_of_a_raw_request_names_method_and_target() -> None:
    step = parse_scenario(
        STEP.format(kind="attack", request='{raw: ["POST /p?q={v} HTTP/1.1", "Host: h", ""]}')
    ).steps[0]
    assert raw_request_line(step.request, {"v": "1"}) == ("POST", "/p?q=1")


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
    # Every token attack was refused with its own reason, and the summary (client side
    # and gateway side) counts each reason.
    assert attack_reasons >= AUTH_ATTACK_REASONS
    for step in steps:
        if step["kind"] == "attack" and step["expected"]["reason"]:
            reason = step["expected"]["reason"]
            assert report["by_reason"].get(reason, 0) >= step["requests"], (reason, report)
            assert report["gateway"]["by_reason"].get(reason, 0) >= step["requests"], reason
    for reason in AUTH_ATTACK_REASONS:
        assert reason in result.stdout, reason
    # Rate limits: the scraper's burst allowance is served and the rest refused with
    # Retry-After; the paced client never sees a 429, and every answer it gets says what
    # is left of its limits. The reason table shows both refusals.
    by_name = {step["name"]: step for step in steps}
    scraper = by_name["scraper floods transaction details"]
    assert scraper["actual"]["429 rate_limited"] >= 200
    assert set(scraper["actual"]) == {"429 rate_limited", "200 forwarded"}
    assert scraper["retry_after"] == scraper["actual"]["429 rate_limited"]
    quota = by_name["scraper exhausts its daily card quota"]
    assert quota["actual"] == {"200 forwarded": 30, "429 quota_exhausted": 10}
    assert quota["retry_after"] == 10
    paced = by_name["transaction details, paced"]
    assert paced["actual"] == {"200 forwarded": paced["requests"]}
    assert paced["rate_limit_headers"] == paced["requests"]
    for reason in ("rate_limited", "quota_exhausted"):
        assert reason in result.stdout, reason
        assert report["gateway"]["by_reason"][reason] == report["by_reason"][reason]
    # Legit traffic came from tokens the demo's authorisation server issued.
    assert report["endpoints"]["authserver"].startswith("http://127.0.0.1:")
    assert report["endpoints"]["public_url"] == "https://api.bank.example"

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
        'clients:\n  tpp-acme-ais: {redirect_uri: "https://acme.example/callback"}\n'
        + STEP.format(kind="legit", request="{path: /v1/accounts}").replace(
            "    expect:", '    auth: {client: tpp-acme-ais, psu: "{psu}"}\n    expect:'
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
        names = ("gateway", "admin", "sandbox", "authserver")
        while "authserver" not in urls and time.monotonic() < deadline:
            time.sleep(0.2)
            assert proc.poll() is None, (tmp_path / "out.txt").read_text()
            for line in (tmp_path / "out.txt").read_text().splitlines():
                name, _, value = line.strip().partition(" ")
                if name in names and value.strip().startswith("http"):
                    urls[name] = value.strip()
        assert set(urls) == set(names), (tmp_path / "out.txt").read_text()
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
