"""load_config: defaults, path resolution, and every problem with its exact message."""

# ruff: noqa: E501 - the exact problem messages read best one per line

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from finward.config.loader import check_config, inspect_config, load_config
from finward.config.model import GatewayConfig, LimitsConfig, ListenConfig, TimeoutsConfig
from finward.errors import ConfigError

from .conftest import MINIMAL, SPEC, WriteConfig


def test_load_config_minimal_file_fills_model_defaults(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL)
    config = load_config(path, environ={})
    assert config.listen == ListenConfig()
    assert config.limits == LimitsConfig()
    assert config.upstreams["bank"].name == "bank"
    assert config.upstreams["bank"].url == "http://127.0.0.1:8081"
    assert config.upstreams["bank"].timeouts == TimeoutsConfig()
    (api,) = config.apis
    assert (api.name, api.upstream, api.base_path) == ("accounts", "bank", "")
    assert api.spec == path.parent / "spec.yaml"
    assert config.source == path
    assert config.secret_locations == frozenset()


def test_load_config_resolves_relative_paths_from_the_config_folder(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tls").mkdir()
    for name in ("cert.pem", "key.pem", "ca.pem"):
        (tmp_path / "tls" / name).write_text("x")
    path = write_config(
        MINIMAL
        + """
listen:
  tls: {cert: tls/cert.pem, key: tls/key.pem, client_ca: tls/ca.pem, client_cert: optional}
server: {pid_file: run.pid}
logging: {access_log: access.log}
"""
    )
    monkeypatch.chdir("/")  # the working directory must not matter
    config = load_config(Path(os.path.relpath(path, "/")), environ={})
    assert config.listen.tls is not None
    assert config.listen.tls.cert == tmp_path / "tls" / "cert.pem"
    assert config.listen.tls.client_ca == tmp_path / "tls" / "ca.pem"
    assert config.listen.tls.client_cert == "optional"
    assert config.server.pid_file == tmp_path / "run.pid"
    assert config.logging.access_log == str(tmp_path / "access.log")
    assert config.apis[0].spec == tmp_path / "spec.yaml"


def test_load_config_builds_typed_values(write_config: WriteConfig) -> None:
    path = write_config(
        """
        listen: {port: 8443.0}
        upstreams:
          bank:
            url: https://bank.internal/api
            timeouts: {connect_s: 1, read_s: 5, total_s: 10}
            tls: {verify: false}
        apis:
          - {name: accounts, spec: spec.yaml, upstream: bank}
        proxy:
          trusted_proxies: [10.0.0.0/8, "::1", 192.168.1.7/24]
          client_cert_header: X-Cert
          client_cert_ca: tpp-cas.pem
        """
    )
    (path.parent / "tpp-cas.pem").write_text("x")
    config = load_config(path, environ={})
    assert config.proxy.client_cert_ca == path.parent / "tpp-cas.pem"
    assert config.listen.port == 8443 and isinstance(config.listen.port, int)
    upstream = config.upstreams["bank"]
    assert upstream.timeouts == TimeoutsConfig(connect_s=1.0, read_s=5.0, total_s=10.0)
    assert isinstance(upstream.timeouts.connect_s, float)
    assert upstream.tls is not None and upstream.tls.verify is False
    assert config.proxy.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("192.168.1.0/24"),
    )


def test_load_config_accepts_an_empty_api_list(write_config: WriteConfig) -> None:
    config = load_config(write_config("version: 1\n"), environ={})
    assert config == GatewayConfig(source=config.source)


def _config(tmp_path: Path, patch: dict[str, Any]) -> Path:
    """MINIMAL with ``patch`` merged in (one level deep per section)."""
    document: dict[str, Any] = yaml.safe_load(MINIMAL)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(document.get(key), dict):
            document[key] = {**document[key], **value}
        else:
            document[key] = value
    path = tmp_path / "finward.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


API = {"name": "accounts", "spec": "spec.yaml", "upstream": "bank"}
BANK = {"url": "http://127.0.0.1:8081"}
TLS_FILES = {"cert": "cert.pem", "key": "key.pem"}

# (patch, the exact problem). {dir} is the config's folder.
PROBLEMS: list[tuple[dict[str, Any], str]] = [
    # Schema.
    ({"listen": {"port": 70000}}, "listen.port: 70000 is greater than the maximum of 65535"),
    ({"listen": {"prot": 1}}, "listen.prot: unknown key (did you mean 'port'?)"),
    ({"limitz": {}}, "limitz: unknown key (did you mean 'limits'?)"),
    ({"upstreams": {"bank": {}}}, "upstreams.bank.url: required key is missing"),
    (
        {"listen": {"port": "80"}},
        "listen.port: expected an integer, got a string (remove the quotes)",
    ),
    (
        {"listen": {"host": 10}},
        "listen.host: expected a string, got an integer (quote the value to make it a string)",
    ),
    (
        {"listen": None},
        "listen: expected a mapping, got null (an empty value) (remove the key, or give it settings)",
    ),
    (
        {"listen": {"tls": {**TLS_FILES, "client_cert": "require"}}},
        "listen.tls.client_cert: 'require' is not one of 'none', 'optional', 'required' (did you mean 'required'?)",
    ),
    ({"version": 2}, "version: 2 is not supported (this finward reads version 1)"),
    ({"server": {"workers": 0}}, "server.workers: 0 is less than the minimum of 1"),
    (
        {"upstreams": {"bank": {**BANK, "timeouts": {"connect_s": 0}}}},
        "upstreams.bank.timeouts.connect_s: 0 must be greater than 0",
    ),
    (
        {"upstreams": {"bank": {**BANK, "timeouts": {"read_s": -1}}}},
        "upstreams.bank.timeouts.read_s: -1 must be greater than 0",
    ),
    (
        {"upstreams": {"bank": BANK, "my bank": BANK}},
        "upstreams['my bank']: 'my bank' is not a valid name (use letters, digits, '-', '_' and '.', starting with a letter or digit)",
    ),
    (
        {"apis": [{**API, "name": ""}]},
        "apis[0].name: '' is not valid (use letters, digits, '-', '_' and '.', starting with a letter or digit)",
    ),
    ({"admin": {"token": "short"}}, "admin.token: must be at least 16 characters"),
    (
        {"proxy": {"trusted_proxies": "10.0.0.0/8"}},
        "proxy.trusted_proxies: expected a list, got a string",
    ),
    # Upstream references and URLs.
    (
        {"apis": [{**API, "upstream": "bnk"}]},
        "apis[0].upstream: unknown upstream 'bnk' (known: bank)",
    ),
    (
        {"upstreams": {"bank": {"url": "ftp://bank"}}},
        "upstreams.bank.url: 'ftp://bank' is not an http(s) URL (e.g. http://127.0.0.1:8081 or https://bank.internal/api)",
    ),
    (
        {"upstreams": {"bank": {"url": "http://"}}},
        "upstreams.bank.url: 'http://' has no host (e.g. http://127.0.0.1:8081 or https://bank.internal/api)",
    ),
    (
        {"upstreams": {"bank": {"url": "bank:8081"}}},
        "upstreams.bank.url: 'bank:8081' is not an http(s) URL (e.g. http://127.0.0.1:8081 or https://bank.internal/api)",
    ),
    (
        {"upstreams": {"bank": {"url": "http://bank:99999"}}},
        "upstreams.bank.url: 'http://bank:99999' is not a valid URL (e.g. http://127.0.0.1:8081 or https://bank.internal/api)",
    ),
    (
        {"upstreams": {"bank": {"url": "http://bank/?debug=1"}}},
        "upstreams.bank.url: 'http://bank/?debug=1' must not have a query or fragment (e.g. http://127.0.0.1:8081 or https://bank.internal/api)",
    ),
    (
        {"upstreams": {"bank": {"url": "http://u:p@bank"}}},
        "upstreams.bank.url: contains user:password (not supported; it would leak into logs)",
    ),
    (
        {"upstreams": {"bank": {**BANK, "timeouts": {"read_s": 40}}}},
        "upstreams.bank.timeouts.total_s: 30.0 is less than read_s (40) (the read_s limit could never be reached; raise total_s or lower read_s)",
    ),
    (
        {"upstreams": {"bank": {**BANK, "tls": {"verify": True}}}},
        "upstreams.bank.tls: is set but the url is http:// (use https://)",
    ),
    (
        {"upstreams": {"bank": {"url": "https://bank", "tls": {"client_cert": "cert.pem"}}}},
        "upstreams.bank.tls.client_key: required when client_cert is set",
    ),
    # APIs.
    (
        {"apis": [API, {**API, "base_path": "/v2"}]},
        "apis[1].name: 'accounts' is already used by apis[0]",
    ),
    (
        {"apis": [API, {**API, "name": "payments"}]},
        "apis[1].base_path: '' is already the base_path of apis[0] (give each API its own base_path)",
    ),
    (
        {"apis": [{**API, "base_path": "/psd2"}, {**API, "name": "b", "base_path": "/psd2/"}]},
        "apis[1].base_path: '/psd2/' is already the base_path of apis[0] (give each API its own base_path)",
    ),
    (
        {"apis": [{**API, "base_path": "psd2/"}]},
        "apis[0].base_path: 'psd2/' must start with '/' and not end with '/' (write '/psd2')",
    ),
    (
        {"apis": [{**API, "base_path": "/"}]},
        "apis[0].base_path: '/' is not allowed (use \"\" for the root)",
    ),
    (
        {"apis": [{**API, "base_path": "/a/../b"}]},
        "apis[0].base_path: '/a/../b' is not a plain path (use segments of letters, digits, '-', '.', '_' and '~'; no '//', '.' or '..')",
    ),
    (
        {"apis": [{**API, "upstream_path_prefix": "/a%2fb"}]},
        "apis[0].upstream_path_prefix: '/a%2fb' is not a plain path (use segments of letters, digits, '-', '.', '_' and '~'; no '//', '.' or '..')",
    ),
    ({"apis": [{**API, "spec": "nope.yaml"}]}, "apis[0].spec: file not found: {dir}/nope.yaml"),
    ({"apis": [{**API, "spec": "."}]}, "apis[0].spec: not a regular file: {dir}"),
    # Listener TLS.
    (
        {"listen": {"tls": {"cert": "missing.pem", "key": "key.pem"}}},
        "listen.tls.cert: file not found: {dir}/missing.pem",
    ),
    (
        {"listen": {"tls": {"cert": "cert.pem", "key": "missing.pem"}}},
        "listen.tls.key: file not found (value hidden; relative paths resolve from {dir})",
    ),
    (
        {"listen": {"tls": {**TLS_FILES, "client_cert": "required"}}},
        "listen.tls.client_ca: required when client_cert is 'required' (the PEM bundle of CAs that issue the client certificates)",
    ),
    (
        {"listen": {"tls": {**TLS_FILES, "client_cert": "optional"}}},
        "listen.tls.client_ca: required when client_cert is 'optional' (the PEM bundle of CAs that issue the client certificates)",
    ),
    (
        {"listen": {"tls": {**TLS_FILES, "client_ca": "cert.pem"}}},
        "listen.tls.client_cert: is 'none', so client_ca is never used (set client_cert to 'optional' or 'required', or remove client_ca)",
    ),
    # Proxy.
    (
        {"proxy": {"trusted_proxies": ["10.0.0.0/33"]}},
        "proxy.trusted_proxies[0]: '10.0.0.0/33' is not an IP address or CIDR network (e.g. 10.0.0.0/8)",
    ),
    (
        {"proxy": {"trusted_proxies": ["::/0"]}},
        "proxy.trusted_proxies[0]: '::/0' trusts every address (list your proxies' networks)",
    ),
    (
        {"proxy": {"client_cert_header": "X-Client-Cert"}},
        "proxy.client_cert_header: is set but proxy.trusted_proxies is empty (the header is only read from trusted proxies; list your TLS terminator's address)",
    ),
    (
        {"proxy": {"trusted_proxies": ["10.0.0.1"], "client_cert_header": "X-Client-Cert"}},
        "proxy.client_cert_ca: required when proxy.client_cert_header is set (or set "
        "listen.tls.client_ca) (the CA bundle that issued your clients' certificates)",
    ),
    (
        {"proxy": {"client_cert_ca": "cert.pem"}},
        "proxy.client_cert_ca: is set but proxy.client_cert_header is not (name the header "
        "your TLS terminator puts the certificate in)",
    ),
    (
        {"proxy": {"trusted_proxies": ["10.0.0.1"], "client_cert_header": "X Cert"}},
        "proxy.client_cert_header: 'X Cert' is not valid (use an HTTP header name, e.g. X-Client-Cert)",
    ),
    # Admin, server, logging, numbers.
    (
        {"admin": {"host": "0.0.0.0"}},
        "admin.token: required when admin.host (0.0.0.0) is not a loopback address (anyone who can reach the port could use the admin API)",
    ),
    ({"admin": {"port": 8080}}, "admin.port: 8080 is also listen.port (use another port)"),
    (
        {"server": {"pid_file": "no/such/dir/finward.pid"}},
        "server.pid_file: folder does not exist: {dir}/no/such/dir",
    ),
    (
        {"logging": {"access_log": "no/such/access.log"}},
        "logging.access_log: folder does not exist: {dir}/no/such",
    ),
    (
        {"limits": {"header_timeout_s": float("nan")}},
        "limits.header_timeout_s: must be a finite number",
    ),
    (
        {"limits": {"max_body_bytes": float("inf")}},
        "limits.max_body_bytes: must be a finite number",
    ),
]


@pytest.mark.parametrize(("patch", "expected"), PROBLEMS, ids=[p[1][:60] for p in PROBLEMS])
def test_check_config_reports_problem(tmp_path: Path, patch: dict[str, Any], expected: str) -> None:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    (tmp_path / "spec.yaml").write_text(SPEC)
    problems = check_config(_config(tmp_path, patch), environ={})
    assert expected.format(dir=tmp_path) in problems


def test_load_config_lists_every_problem_schema_first_sorted_by_location(
    write_config: WriteConfig,
) -> None:
    path = write_config(
        """
        listen: {port: 70000}
        upstreams:
          bank: {url: "ftp://bank"}
        apis:
          - {name: a, spec: nope.yaml, upstream: bnk}
          - {name: a, spec: spec.yaml, upstream: bank, base_path: /x, colour: red}
        server: {workers: 0}
        """
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.problems == [
        "apis[1].colour: unknown key (allowed: auth, base_path, name, spec, upstream, "
        "upstream_path_prefix)",
        "listen.port: 70000 is greater than the maximum of 65535",
        "server.workers: 0 is less than the minimum of 1",
        "upstreams.bank.url: 'ftp://bank' is not an http(s) URL "
        "(e.g. http://127.0.0.1:8081 or https://bank.internal/api)",
        "apis[0].upstream: unknown upstream 'bnk' (known: bank)",
        f"apis[0].spec: file not found: {path.parent}/nope.yaml",
        "apis[1].name: 'a' is already used by apis[0]",
    ]
    assert str(caught.value) == "\n".join(caught.value.problems)


def test_schema_problems_sort_numeric_indexes_numerically(write_config: WriteConfig) -> None:
    apis = "".join(
        f"  - {{name: a{i}, spec: spec.yaml, upstream: bank, base_path: /a{i}, x: 1}}\n"
        for i in range(11)
    )
    path = write_config(MINIMAL.split("apis:")[0] + "apis:\n" + apis)
    problems = check_config(path, environ={})
    assert [p.split(".")[0] for p in problems] == [f"apis[{i}]" for i in range(11)]


def test_check_config_loads_each_spec_and_reports_spec_errors(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    (tmp_path / "swagger.yaml").write_text("swagger: '2.0'\ninfo: {title: t, version: '1'}\n")
    path = write_config(
        MINIMAL + "  - {name: old, spec: swagger.yaml, upstream: bank, base_path: /old}\n"
    )
    problems = check_config(path, environ={})
    assert len(problems) == 1
    assert problems[0].startswith(
        f"apis[1].spec: invalid OpenAPI document {tmp_path}/swagger.yaml at /swagger: "
    )
    assert "2.0" in problems[0]


def test_inspect_config_counts_operations(write_config: WriteConfig) -> None:
    report = inspect_config(write_config(MINIMAL), environ={})
    assert report.problems == ()
    assert report.config is not None
    assert report.operation_count == 2


def test_check_config_returns_empty_list_for_a_valid_file(write_config: WriteConfig) -> None:
    assert check_config(write_config(MINIMAL), environ={}) == []


def test_check_config_reports_unreadable_spec(write_config: WriteConfig, tmp_path: Path) -> None:
    """Root reads any file, so the check runs in a child that drops to an unprivileged uid."""
    config = write_config(MINIMAL)
    (tmp_path / "spec.yaml").chmod(0)
    # The folders must be traversable by "nobody" so that only the file's mode refuses.
    for folder in (tmp_path, *tmp_path.parents):
        if folder == Path("/"):
            break
        folder.chmod(folder.stat().st_mode | 0o005)
    code = (
        "import os, sys; from pathlib import Path\n"
        "from finward.config.loader import check_config\n"
        "import finward.openapi.loader, encodings.utf_8_sig\n"
        "if os.geteuid() == 0: os.setgid(65534); os.setuid(65534)\n"
        "print('\\n'.join(check_config(Path(sys.argv[1]), environ={})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"apis[0].spec: file is not readable: {tmp_path}/spec.yaml (check its permissions)"
    ]
