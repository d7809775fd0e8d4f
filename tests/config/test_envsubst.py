"""${NAME} substitution: after parsing, never re-parsed, tracked as secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from finward.config.envsubst import expand, substitute_env
from finward.config.loader import check_config, load_config
from finward.errors import ConfigError

from .conftest import MINIMAL, WriteConfig

ENV = {"HOST": "bank.internal", "PORT": "8443", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${HOST}", "bank.internal"),
        ("https://${HOST}:${PORT}/api", "https://bank.internal:8443/api"),
        ("${MISSING:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),  # ':-' also covers set-but-empty, as in sh
        ("${EMPTY}", ""),
        ("${HOST:-unused}", "bank.internal"),
        ("${MISSING:-}", ""),
        ("${MISSING:-a:-b $x}", "a:-b $x"),  # the default is literal text
        ("$${HOST}", "${HOST}"),
        ("$$${HOST}", "$${HOST}"),  # read left to right: '$', then the escape '$${'
        ("cost: $5 and $$", "cost: $5 and $$"),
        ("${HOST}}", "bank.internal}"),
        ("no dollars", "no dollars"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    assert expand(text, ENV).value == expected


def test_expand_records_used_values_but_not_defaults() -> None:
    result = expand("${HOST}/${MISSING:-dflt}/${EMPTY}", ENV)
    assert result.substituted
    assert result.used_values == ["bank.internal"]
    assert result.missing == []


@pytest.mark.parametrize("text", ["${", "abc ${HOST", "${1X}", "${A B}", "${}", "${A:b}"])
def test_expand_reports_malformed_expressions(text: str) -> None:
    assert expand(text, ENV).error is not None


def test_substitute_env_only_touches_string_values_not_keys() -> None:
    result = substitute_env({"${HOST}": ["${HOST}", 1, None, {"k": "${PORT}"}]}, ENV)
    assert result.document == {"${HOST}": ["bank.internal", 1, None, {"k": "8443"}]}
    assert result.locations == {("${HOST}", 0), ("${HOST}", 3, "k")}
    assert result.used_values == {"bank.internal", "8443"}


def test_env_values_present_and_default(write_config: WriteConfig) -> None:
    path = write_config(
        """
        listen: {host: "${LISTEN_HOST:-127.0.0.1}", port: "${PORT}"}
        admin: {token: "${ADMIN_TOKEN}", port: "${ADMIN_PORT:-9999}"}
        upstreams:
          bank: {url: "http://${BANK_HOST}:8081", tls: "${NO_TLS:-}"}
        apis:
          - {name: accounts, spec: "${SPEC_DIR:-.}/spec.yaml", upstream: bank}
        proxy: {add_forwarded_headers: "${FORWARD:-false}"}
        """
    )
    environ = {"PORT": "8081", "ADMIN_TOKEN": "t" * 20, "BANK_HOST": "10.1.2.3"}
    config = load_config(path, environ=environ)
    assert config.listen.host == "127.0.0.1"
    assert config.listen.port == 8081  # coerced: the schema wants an integer here
    assert config.admin.port == 9999
    assert config.admin.token == "t" * 20
    assert config.upstreams["bank"].url == "http://10.1.2.3:8081"
    assert config.upstreams["bank"].tls is None  # empty -> null where null is allowed
    assert config.apis[0].spec == path.parent / "spec.yaml"
    assert config.proxy.add_forwarded_headers is False
    assert config.secret_locations >= {
        "listen.port",
        "admin.token",
        "upstreams.bank.url",
        "apis[0].spec",
    }


def test_digit_only_env_value_stays_a_string_where_a_string_is_expected(
    write_config: WriteConfig,
) -> None:
    path = write_config(MINIMAL + 'admin: {token: "${TOKEN}"}\n')
    config = load_config(path, environ={"TOKEN": "1234567890123456789"})
    assert config.admin.token == "1234567890123456789"


def test_missing_variable_is_one_problem_naming_variable_and_location(
    write_config: WriteConfig,
) -> None:
    path = write_config(
        MINIMAL + 'listen: {port: "${PORT}"}\nadmin: {host: 0.0.0.0, token: "${ADMIN_TOKEN}"}\n'
    )
    assert check_config(path, environ={}) == [
        "listen.port: environment variable PORT is not set (set it, or give a default: "
        "${PORT:-value})",
        "admin.token: environment variable ADMIN_TOKEN is not set (set it, or give a default: "
        "${ADMIN_TOKEN:-value})",
    ]


def test_malformed_expression_is_reported_with_the_escape_hint(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL + 'listen: {host: "${HOST"}\n')
    assert check_config(path, environ={"HOST": "x"}) == [
        "listen.host: unterminated '${' (write '$${' for a literal '${')"
    ]


def test_escape_gives_a_literal_dollar_brace(write_config: WriteConfig, tmp_path: Path) -> None:
    (tmp_path / "${weird}.yaml").write_text((tmp_path / "spec.yaml").read_text())
    path = write_config(MINIMAL.replace("spec: spec.yaml", 'spec: "$${weird}.yaml"'))
    config = load_config(path, environ={"weird": "spec"})
    assert config.apis[0].spec == tmp_path / "${weird}.yaml"


def test_env_value_is_not_parsed_as_yaml(write_config: WriteConfig) -> None:
    # A value that, pasted into the YAML text, would add a second upstream and an admin
    # section. Substituted after parsing, it is one (invalid) host string.
    injected = 'x"}\n  evil: {url: "http://attacker\nadmin: {enabled: false}\n#'
    path = write_config(
        """
        upstreams:
          bank: {url: "http://${BANK}"}
        apis:
          - {name: accounts, spec: spec.yaml, upstream: bank}
        """
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"BANK": injected})
    assert caught.value.problems == [
        "upstreams.bank.url: the url is not a valid URL "
        "(e.g. http://127.0.0.1:8081 or https://bank.internal/api)"
    ]
    config = load_config(path, environ={"BANK": "ok.example"})
    assert set(config.upstreams) == {"bank"}
    assert config.admin.enabled is True


def test_substituted_value_of_wrong_type_is_reported_without_its_value(
    write_config: WriteConfig,
) -> None:
    path = write_config(MINIMAL + 'listen: {port: "${PORT}"}\n')
    assert check_config(path, environ={"PORT": "80a-S3cret"}) == [
        "listen.port: expected an integer, got a string"
    ]
