"""The `rate_limits` section: schema, semantic checks (one test per rule), build, secrets."""

# ruff: noqa: E501 - the problem messages read best one per line

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from finward.adapters.runner import load_checked
from finward.cli.main import app
from finward.config.loader import check_config, load_config
from finward.config.model import RateLimitApplyTo, RateLimitConfig, RateLimitsConfig
from finward.config.render import effective_document
from finward.errors import ConfigError

from .conftest import SPEC

SPEC_WITH_IDS = SPEC.replace(
    "  /accounts:\n    get:\n",
    "  /accounts:\n    get:\n      operationId: listAccounts\n      tags: [AIS]\n",
)
BASE: dict[str, Any] = {
    "version": 1,
    "upstreams": {"bank": {"url": "http://127.0.0.1:8081"}},
    "apis": [{"name": "accounts", "spec": "spec.yaml", "upstream": "bank"}],
    "rate_limits": {"limits": [{"name": "q", "algorithm": "gcra", "limit": 5, "key": ["ip"]}]},
}
FULL: dict[str, Any] = {
    **BASE,
    "rate_limits": {
        "store": "redis://127.0.0.1:6379/1",
        "headers": False,
        "on_store_error": "open",
        "limits": [
            {
                "name": "client-burst",
                "algorithm": "gcra",
                "limit": 20,
                "period_s": 1,
                "burst": 40,
                "key": ["client_id", "net:24:56", "header:X-Api-Key", "claim:acr"],
                "cost": 2,
                "costs": {"listAccounts": 10},
                "apply_to": {
                    "apis": ["accounts"],
                    "tags": ["AIS"],
                    "operations": ["GET /accounts"],
                },
                "on_store_error": "closed",
            },
            {
                "name": "daily",
                "algorithm": "fixed_window",
                "limit": 50000,
                "calendar": "day",
                "timezone": "Europe/Berlin",
            },
            {"name": "inflight", "algorithm": "concurrency", "limit": 10, "lease_s": 30},
            {"name": "window", "algorithm": "sliding_window", "limit": 3, "period_s": 60},
        ],
    },
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "spec.yaml").write_text(SPEC_WITH_IDS)
    return tmp_path


def _write(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / "finward.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _limit(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    document["rate_limits"]["limits"][0].update(changes)
    return document


def _problems(folder: Path, document: dict[str, Any]) -> list[str]:
    return check_config(_write(folder, document), environ={})


def _assert_problem(problems: list[str], expected: str) -> None:
    assert any(expected in p for p in problems), problems


def test_base_and_full_configs_are_valid(folder: Path) -> None:
    assert _problems(folder, BASE) == []
    assert _problems(folder, FULL) == []


def test_full_config_builds_the_model(folder: Path) -> None:
    config = load_config(_write(folder, FULL), environ={})
    limits = config.rate_limits
    assert (limits.store, limits.headers, limits.on_store_error) == (
        "redis://127.0.0.1:6379/1",
        False,
        "open",
    )
    burst = limits.limits[0]
    assert burst == RateLimitConfig(
        name="client-burst",
        algorithm="gcra",
        limit=20,
        period_s=1.0,
        burst=40,
        key=("client_id", "net:24:56", "header:X-Api-Key", "claim:acr"),
        cost=2,
        costs={"listAccounts": 10},
        apply_to=RateLimitApplyTo(("accounts",), ("AIS",), ("GET /accounts",)),
        on_store_error="closed",
    )
    assert isinstance(burst.period_s, float)
    assert limits.limits[1].calendar == "day" and limits.limits[1].timezone == "Europe/Berlin"
    assert limits.limits[2].lease_s == 30.0
    assert load_config(_write(folder, {**BASE, "rate_limits": {}}), environ={}).rate_limits == (
        RateLimitsConfig()
    )


def test_full_config_compiles_against_the_specs(folder: Path) -> None:
    config = load_checked(_write(folder, FULL))
    assert len(config.rate_limits.limits) == 4


def test_store_password_is_a_secret_and_keys_are_not(folder: Path) -> None:
    document = copy.deepcopy(FULL)
    document["rate_limits"]["store"] = "redis://:Hunter2-s3cret@127.0.0.1:6379/1"
    config = load_config(_write(folder, document), environ={})
    shown = effective_document(config)["rate_limits"]
    assert shown["store"] == "***"
    assert shown["limits"][0]["key"] == ["client_id", "net:24:56", "header:X-Api-Key", "claim:acr"]
    # A problem elsewhere never quotes the password.
    document["rate_limits"]["limits"][0]["name"] = "Bad Name"
    problems = _problems(folder, document)
    assert problems and not any("Hunter2" in p for p in problems)


# -- one test per rule ---------------------------------------------------------------------


def test_names_are_unique(folder: Path) -> None:
    document = copy.deepcopy(BASE)
    document["rate_limits"]["limits"].append({"name": "q", "algorithm": "concurrency", "limit": 1})
    _assert_problem(
        _problems(folder, document),
        "rate_limits.limits[1].name: 'q' is already the name of rate_limits.limits[0] (give each limit its own name)",
    )


def test_names_are_lower_case_tokens(folder: Path) -> None:
    _assert_problem(_problems(folder, _limit(name="Client Burst")), "rate_limits.limits[0].name:")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"limit": 0}, "rate_limits.limits[0].limit:"),
        ({"period_s": 0}, "rate_limits.limits[0].period_s:"),
        ({"period_s": -1}, "rate_limits.limits[0].period_s:"),
        ({"algorithm": "token_bucket"}, "rate_limits.limits[0].algorithm:"),
        ({"on_store_error": "maybe"}, "rate_limits.limits[0].on_store_error:"),
        ({"cost": 0}, "rate_limits.limits[0].cost:"),
        ({"key": []}, "rate_limits.limits[0].key:"),
        ({"extra": 1}, "rate_limits.limits[0]"),
    ],
)
def test_schema_bounds(folder: Path, changes: dict[str, Any], expected: str) -> None:
    _assert_problem(_problems(folder, _limit(**changes)), expected)


def test_limit_and_algorithm_are_required(folder: Path) -> None:
    document = copy.deepcopy(BASE)
    document["rate_limits"]["limits"] = [{"name": "q"}]
    problems = _problems(folder, document)
    _assert_problem(problems, "algorithm")
    _assert_problem(problems, "limit")


def test_timezone_must_exist(folder: Path) -> None:
    for zone in ("Mars/Olympus", "../../etc/passwd", "Europe/Berlin/../x"):
        _assert_problem(
            _problems(folder, _limit(algorithm="fixed_window", calendar="day", timezone=zone)),
            "rate_limits.limits[0].timezone:",
        )
    assert (
        _problems(folder, _limit(algorithm="fixed_window", calendar="month", timezone="Asia/Tokyo"))
        == []
    )


def test_timezone_only_with_a_calendar(folder: Path) -> None:
    _assert_problem(
        _problems(folder, _limit(algorithm="fixed_window", timezone="Europe/Berlin")),
        "rate_limits.limits[0].timezone: is only used with calendar",
    )


def test_calendar_only_with_fixed_window(folder: Path) -> None:
    _assert_problem(
        _problems(folder, _limit(calendar="day")),
        "rate_limits.limits[0].calendar: is only used by the fixed_window algorithm, not gcra (remove it, or set algorithm: fixed_window)",
    )


def test_burst_only_with_gcra(folder: Path) -> None:
    _assert_problem(
        _problems(folder, _limit(algorithm="sliding_window", burst=10)),
        "rate_limits.limits[0].burst: is only used by the gcra algorithm, not sliding_window",
    )


def test_lease_only_with_concurrency(folder: Path) -> None:
    _assert_problem(
        _problems(folder, _limit(lease_s=30)),
        "rate_limits.limits[0].lease_s: is only used by the concurrency algorithm, not gcra",
    )


def test_period_not_with_concurrency_or_a_calendar(folder: Path) -> None:
    _assert_problem(
        _problems(folder, _limit(algorithm="concurrency", period_s=5)),
        "rate_limits.limits[0].period_s: is not used by the concurrency algorithm",
    )
    _assert_problem(
        _problems(folder, _limit(algorithm="fixed_window", calendar="day", period_s=5)),
        "rate_limits.limits[0].period_s: is not used when calendar is set",
    )


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (
            "user",
            "rate_limits.limits[0].key[0]: 'user' is not a key part (one of client_id, consent, ip, psu, token, tpp",
        ),
        (
            "net:24",
            "rate_limits.limits[0].key[0]: 'net:24' is not net:<v4 bits>:<v6 bits> (e.g. net:24:56)",
        ),
        ("net:40:56", "rate_limits.limits[0].key[0]: 'net:40:56' has a prefix length out of range"),
        ("header:", "rate_limits.limits[0].key[0]: 'header:' does not name a header"),
        ("header:a b", "does not name a header"),
        ("claim:", "rate_limits.limits[0].key[0]: 'claim:' does not name a claim"),
        (
            "cookie:session",
            "rate_limits.limits[0].key[0]: 'cookie:session' is not a key part (prefixes are net:, header: and claim:)",
        ),
    ],
)
def test_key_part_syntax(folder: Path, part: str, expected: str) -> None:
    _assert_problem(_problems(folder, _limit(key=[part])), expected)


def test_key_parts_listed_once(folder: Path) -> None:
    _assert_problem(
        _problems(folder, _limit(key=["ip", "ip"])),
        "rate_limits.limits[0].key[1]: 'ip' is listed twice",
    )


def test_apply_to_apis_exist(folder: Path) -> None:
    _assert_problem(
        _problems(folder, _limit(apply_to={"apis": ["payments"]})),
        "rate_limits.limits[0].apply_to.apis[0]: unknown API 'payments' (known: accounts)",
    )


def test_operation_names_have_the_right_shape(folder: Path) -> None:
    problems = _problems(
        folder, _limit(apply_to={"operations": ["FETCH /accounts"]}, costs={"get accounts": 2})
    )
    _assert_problem(
        problems, "rate_limits.limits[0].apply_to.operations[0]: 'FETCH /accounts' is neither"
    )
    _assert_problem(
        problems, "rate_limits.limits[0].costs['get accounts']: 'get accounts' is neither"
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"costs": {"exportAll": 5}},
            "rate_limits.limits[0].costs.exportAll: no operation this limit applies to",
        ),
        (
            {"apply_to": {"operations": ["DELETE /accounts"]}},
            "rate_limits.limits[0].apply_to.operations[0]: no operation of the selected APIs",
        ),
        (
            {"apply_to": {"tags": ["PIS"]}},
            "rate_limits.limits[0].apply_to.tags[0]: no operation of the selected APIs has the tag 'PIS' (tags: AIS)",
        ),
    ],
)
def test_operations_must_exist_in_the_specs(
    folder: Path, changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_checked(_write(folder, _limit(**changes)))
    _assert_problem(info.value.problems, expected)


def test_store_url_scheme(folder: Path) -> None:
    document = copy.deepcopy(BASE)
    document["rate_limits"]["store"] = "memcached://:pw@cache:11211"
    problems = _problems(folder, document)
    _assert_problem(problems, "rate_limits.store: is not a memory://, redis:// or rediss:// URL")
    assert not any(":pw@" in p for p in problems)


def test_store_url_options(folder: Path) -> None:
    document = copy.deepcopy(BASE)
    document["rate_limits"]["store"] = "memory://?max_entries=5"
    _assert_problem(
        _problems(folder, document), "rate_limits.store: unknown memory:// option 'max_entries'"
    )


def test_cost_above_capacity_could_never_pass(folder: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_checked(_write(folder, _limit(burst=8, costs={"listAccounts": 9})))
    _assert_problem(
        info.value.problems,
        "rate_limits.limits[0].costs.listAccounts: 9 is more than the limit allows at once (8)",
    )


def test_at_most_16_limits_per_operation(folder: Path) -> None:
    document = copy.deepcopy(BASE)
    document["rate_limits"]["limits"] = [
        {"name": f"l{i}", "algorithm": "gcra", "limit": 5, "key": ["ip"]} for i in range(17)
    ]
    with pytest.raises(ConfigError) as info:
        load_checked(_write(folder, document))
    _assert_problem(info.value.problems, "rate_limits.limits: 17 limits apply to GET /accounts")


def test_memory_store_refused_with_several_workers(folder: Path) -> None:
    document = {**copy.deepcopy(BASE), "server": {"workers": 4}}
    _assert_problem(
        _problems(folder, document),
        "rate_limits.store: a memory:// store is per process: with 4 workers each would count on its own",
    )
    document["rate_limits"]["store"] = "redis://127.0.0.1:6379/0"
    assert _problems(folder, document) == []
    document["rate_limits"] = {"store": "memory://"}  # no limits: nothing to share
    assert _problems(folder, document) == []


def test_serve_with_workers_refuses_a_memory_store(folder: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "-c", str(_write(folder, BASE)), "--workers", "2"])
    assert result.exit_code == 2
    assert "rate_limits.store is memory://" in result.output


def test_reload_says_a_new_store_needs_a_restart(folder: Path) -> None:
    from finward.adapters.runner import _Reloader

    path = _write(folder, BASE)
    reloader = _Reloader(path, load_checked(path))
    assert reloader.validate()[1] == "ok"
    document = copy.deepcopy(BASE)
    document["rate_limits"]["store"] = "redis://127.0.0.1:6379/3"
    _write(folder, document)
    new, note = reloader.validate()
    assert new is not None
    assert note == "rate_limits.store changes need a restart; keeping the old store"


def test_a_before_auth_limit_cannot_key_on_identity(folder: Path) -> None:
    problems = _problems(folder, _limit(key=["ip", "client_id"], phase="before_auth"))
    _assert_problem(problems, "rate_limits.limits[0].key[1]: 'client_id' is known only after")
    assert (
        _problems(folder, _limit(key=["net:24:56", "header:X-Api-Key"], phase="before_auth")) == []
    )
