"""No problem message, in the library or the CLI, contains a secret value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from finward.config.loader import check_config, load_config
from finward.config.render import effective_document

from .conftest import MINIMAL, WriteConfig

SECRET = "S3cr3t-hunter2-7f3a9c"  # recognisable, >= 16 characters

# Each config puts SECRET (or an env var holding it) where it triggers a problem.
UPSTREAM = 'upstreams:\n  bank: {url: "http://127.0.0.1:8081"}\n'
API = "apis:\n  - {name: accounts, spec: spec.yaml, upstream: bank}\n"
LEAKY_CONFIGS = {
    "admin_token_wrong_type": "admin: {token: [S3cr3t-hunter2-7f3a9c]}\n" + UPSTREAM + API,
    "admin_token_with_other_problems": (
        "admin: {token: S3cr3t-hunter2-7f3a9c, port: 70000}\nlisten: {port: -1}\n" + UPSTREAM + API
    ),
    "token_from_env_too_short": 'admin: {token: "${SHORT}"}\n' + UPSTREAM + API,
    "url_from_env": 'upstreams:\n  bank: {url: "${SECRET}"}\n' + API,
    "url_with_userinfo": "upstreams:\n  bank: {url: 'ftp://u:S3cr3t-hunter2-7f3a9c@h'}\n" + API,
    "url_from_env_in_tls_mismatch": (
        'upstreams:\n  bank: {url: "http://${SECRET}", tls: {verify: true}}\n' + API
    ),
    "port_from_env": 'listen: {port: "${SECRET}"}\n' + UPSTREAM + API,
    "enum_from_env": 'logging: {level: "${SECRET}"}\n' + UPSTREAM + API,
    "proxy_from_env": 'proxy: {trusted_proxies: ["${SECRET}"]}\n' + UPSTREAM + API,
    "host_from_env_plus_bad_port": 'admin: {host: "${SECRET}", port: 1.5}\n' + UPSTREAM + API,
    "pem_pasted_as_key": (
        "listen: {tls: {cert: spec.yaml, key: '-----BEGIN PRIVATE KEY-----\\n"
        "S3cr3t-hunter2-7f3a9c'}}\n" + UPSTREAM + API
    ),
    "upstream_client_key": (
        "upstreams:\n  bank: {url: 'https://b', tls: {client_cert: spec.yaml, "
        "client_key: S3cr3t-hunter2-7f3a9c}}\n" + API
    ),
    "spec_from_env": UPSTREAM + 'apis:\n  - {name: b, spec: "${SECRET}", upstream: bank}\n',
    "upstream_name_from_env": UPSTREAM
    + 'apis:\n  - {name: b, spec: spec.yaml, upstream: "${SECRET}"}\n',
    "base_path_from_env": (
        UPSTREAM + 'apis:\n  - {name: b, spec: spec.yaml, upstream: bank, base_path: "${SECRET}"}\n'
    ),
    "secret_named_field_unknown_key": "server: {password: S3cr3t-hunter2-7f3a9c}\n"
    + UPSTREAM
    + API,
    "introspection_secret_unused": (
        "auth: {audiences: [a], public_base_url: 'https://gw', issuers: [{issuer: 'https://as', "
        "token_format: opaque, introspection: {endpoint: 'https://as/i', client_id: c, "
        "auth_method: private_key_jwt, client_secret: S3cr3t-hunter2-7f3a9c}}]}\n" + UPSTREAM + API
    ),
    "nonce_secret_too_short": "auth: {dpop: {nonce_secrets: [S3cr3t-hunter2-7f3a9c]}}\n"
    + UPSTREAM
    + API,
    "nonce_secret_wrong_type": "auth: {dpop: {nonce_secrets: [[S3cr3t-hunter2-7f3a9c]]}}\n"
    + UPSTREAM
    + API,
    "state_store_password_bad_url": "auth: {state_store: 'redis://:S3cr3t-hunter2-7f3a9c@/x'}\n"
    + UPSTREAM
    + API,
    "state_store_password_bad_scheme": "auth: {state_store: 'redix://:S3cr3t-hunter2-7f3a9c@h'}\n"
    + UPSTREAM
    + API,
}
ENVIRON = {"SECRET": SECRET, "SHORT": "hunter2"}


@pytest.mark.parametrize("config", LEAKY_CONFIGS.values(), ids=LEAKY_CONFIGS.keys())
def test_problems_never_contain_a_secret(write_config: WriteConfig, config: str) -> None:
    path = write_config(config)
    problems = check_config(path, environ=ENVIRON)
    assert problems, "each config must be invalid, or the test proves nothing"
    text = "\n".join(problems)
    assert SECRET not in text
    assert "hunter2" not in text
    assert "duplicate key" not in text  # invalid for the intended reason
    # The formatters themselves keep the value out; the *** scrubber is only a backstop.
    assert "***" not in text


def test_cli_check_never_prints_a_secret_and_exits_2(write_config: WriteConfig) -> None:
    path = write_config(
        """
        listen: {port: "${SECRET}", tls: {cert: spec.yaml, key: S3cr3t-hunter2-7f3a9c}}
        admin: {token: "${SHORT}", host: "${SECRET}", port: 1.5}
        upstreams:
          bank: {url: "ftp://u:S3cr3t-hunter2-7f3a9c@h"}
          other: {url: "${SECRET}"}
        apis:
          - {name: accounts, spec: "${SECRET}", upstream: bank}
        proxy: {trusted_proxies: ["${SECRET}"]}
        logging: {level: "${SECRET}"}
        """
    )
    result = _run_cli("config", "check", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    problems = result.stderr.splitlines()
    assert len(problems) >= 8, problems  # one per line, every one of them
    assert SECRET not in result.stderr
    assert "hunter2" not in result.stderr


def test_cli_show_masks_secrets(write_config: WriteConfig) -> None:
    path = write_config(
        MINIMAL.replace("http://127.0.0.1:8081", "${BANK_URL}")
        + 'admin: {token: "S3cr3t-hunter2-7f3a9c"}\n'
    )
    result = _run_cli("config", "show", str(path))
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout
    assert "bank.internal" not in result.stdout  # came from the environment
    assert "  token: '***'" in result.stdout
    assert "    url: '***'" in result.stdout


def test_effective_document_masks_secret_locations(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL + 'admin: {token: "${TOKEN}"}\n')
    config = load_config(path, environ={"TOKEN": SECRET})
    document = effective_document(config)
    assert document["admin"]["token"] == "***"
    assert document["upstreams"]["bank"]["url"] == "http://127.0.0.1:8081"
    assert SECRET not in repr(document)
    assert SECRET not in repr(config)  # the model hides the token from repr too


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **ENVIRON, "BANK_URL": "http://bank.internal:8081"}
    return subprocess.run(
        [sys.executable, "-c", "from finward.cli.main import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parent,
        timeout=60,
        check=False,
    )
