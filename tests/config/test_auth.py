"""The `auth` and `apis[].auth` sections: schema, semantic checks, build, secrets."""

# ruff: noqa: E501 - the problem messages read best one per line

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from finward.config.loader import check_config, config_schema, inspect_config, load_config
from finward.config.model import (
    AccessRule,
    ApiAuthConfig,
    AuthConfig,
    DPoPConfig,
    IdentityHeadersConfig,
    IntrospectionConfig,
    IssuerConfig,
    TppConfig,
)
from finward.config.render import effective_document
from finward.config.schema_errors import collect_schema_problems

from .conftest import SPEC

SECRET = "S3cr3t-hunter2-7f3a9c-0123456789abcdef"  # >= 32 characters
BANK = {"url": "http://127.0.0.1:8081"}
API = {"name": "accounts", "spec": "spec.yaml", "upstream": "bank"}
ISSUER = {"issuer": "https://as.bank.example"}
# A valid config with authentication: one JWT issuer, the API on the defaults.
BASE: dict[str, Any] = {
    "version": 1,
    "upstreams": {"bank": BANK},
    "apis": [API],
    "auth": {
        "issuers": [ISSUER],
        "audiences": ["https://api.bank.example"],
        "public_base_url": "https://api.bank.example",
    },
}
FILES = ("ca.pem", "key.pem", "cert.pem", "client-key.pem", "server.pem", "server-key.pem")

# Every key of auth and apis[].auth, each with a non-default value.
FULL: dict[str, Any] = {
    "version": 1,
    "listen": {
        "tls": {
            "cert": "server.pem",
            "key": "server-key.pem",
            "client_ca": "ca.pem",
            "client_cert": "optional",
        }
    },
    "upstreams": {"bank": BANK},
    "apis": [
        {
            **API,
            "auth": {
                "token": "spec",
                "sender_constraint": "optional",
                "sender_method": "dpop",
                "scopes": ["accounts"],
                "tpp_roles": ["PSP_AI", "PSP_PI"],
                "error_format": "berlin-group",
                "tags": {
                    "AIS": {"tpp_roles": ["PSP_AI"], "scopes": ["accounts", "balances"]},
                    "PIS": {"token": "required", "sender_method": "mtls", "tpp_roles": None},
                },
                "operations": {
                    "getAccountList": {"sender_constraint": "required", "scopes": []},
                    "GET /accounts/{id}": {"token": "optional", "tpp_roles": []},
                },
            },
        }
    ],
    "auth": {
        "issuers": [
            {
                "issuer": "https://as.bank.example",
                "jwks_uri": "https://as.bank.example/jwks?v=2",
                "audiences": ["psd2"],
                "algorithms": ["PS256", "ES384"],
                "token_types": ["at+jwt"],
                "accept_untyped": True,
                "required_claims": ["iss", "exp"],
                "leeway_s": 5,
                "max_future_s": 0,
                "token_format": "jwt",
                "ca": "ca.pem",
                "allow_insecure_loopback": False,
                "jwks_max_age_s": 600,
                "jwks_min_refetch_s": 30,
                "timeout_s": 3,
            },
            {
                "issuer": "http://127.0.0.1:8082",
                "allow_insecure_loopback": True,
                "token_format": "any",
                "introspection": {
                    "endpoint": "http://127.0.0.1:8082/introspect",
                    "client_id": "finward-gateway",
                    "auth_method": "private_key_jwt",
                    "private_key": "key.pem",
                    "private_key_alg": "ES256",
                    "key_id": "k1",
                    "client_cert": "cert.pem",
                    "client_key": "client-key.pem",
                    "max_ttl_s": 30,
                    "timeout_s": 1.5,
                },
            },
        ],
        "audiences": ["https://api.bank.example"],
        "public_base_url": "https://api.bank.example/gw",
        "state_store": "redis://redis.internal:6379/0",
        "dpop": {
            "algorithms": ["ES256"],
            "max_age_s": 30,
            "max_future_s": 0,
            "nonce": True,
            "nonce_secrets": [SECRET],
            "nonce_rotation_s": 120,
        },
        "tpp": {
            "require_qc_compliance": False,
            "clients": {"tpp-7": "PSDDE-BAFIN-123456", "tpp-8": "PSDFR-ACPR-X1"},
        },
        "identity_headers": {
            "client_id": "X-Client-ID",
            "tpp_organisation": None,
            "subject": "X-PSU-ID",
            "consent_id": "Consent-ID",
            "scopes": None,
        },
        "forward_token": True,
        "consent_claim": "intent_id",
        "token_cache_entries": 500,
        "revocation_ttl_s": 3600,
    },
    "server": {"workers": 4},
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "spec.yaml").write_text(SPEC)
    for name in FILES:
        (tmp_path / name).write_text("x")
    return tmp_path


def _write(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / "finward.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _with(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in; keys are dotted paths, list items by index."""
    document = copy.deepcopy(base)
    for dotted, value in changes.items():
        node: Any = document
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return document


# -- schema ---------------------------------------------------------------------------


def test_schema_accepts_every_auth_key() -> None:
    assert collect_schema_problems(FULL, config_schema(), lambda _: False) == []


def test_full_auth_config_passes_every_check(folder: Path) -> None:
    assert check_config(_write(folder, FULL), environ={}) == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"apis.0.auth": {"token": "mandatory"}},
            "apis[0].auth.token: 'mandatory' is not one of 'required', 'optional', 'spec', 'off'",
        ),
        (
            {"apis.0.auth": {"sender_method": "tls"}},
            "apis[0].auth.sender_method: 'tls' is not one of 'mtls', 'dpop', 'any' (did you mean 'mtls'?)",
        ),
        (
            {"apis.0.auth": {"error_format": "bg"}},
            "apis[0].auth.error_format: 'bg' is not one of 'problem', 'berlin-group'",
        ),
        (
            {"apis.0.auth": {"tpp_roles": ["PSP_XX"]}},
            "apis[0].auth.tpp_roles[0]: 'PSP_XX' is not one of 'PSP_AS', 'PSP_PI', 'PSP_AI', 'PSP_IC'",
        ),
        (
            {"apis.0.auth": {"tags": {"AIS": {"scope": ["a"]}}}},
            "apis[0].auth.tags.AIS.scope: unknown key (did you mean 'scopes'?)",
        ),
        (
            {"apis.0.auth": {"scopes": ["two words"]}},
            "apis[0].auth.scopes[0]: 'two words' is not valid (use a scope without spaces or quotes, e.g. accounts)",
        ),
        (
            {"auth.issuers.0.algorithms": ["HS256"]},
            "auth.issuers[0].algorithms[0]: 'HS256' is not one of",
        ),
        (
            {"auth.issuers.0.algorithms": ["none"]},
            "auth.issuers[0].algorithms[0]: 'none' is not one of",
        ),
        (
            {"auth.issuers.0.token_format": "paseto"},
            "auth.issuers[0].token_format: 'paseto' is not one of 'jwt', 'opaque', 'any'",
        ),
        (
            {"auth.issuers.0.leeway_s": 61},
            "auth.issuers[0].leeway_s: 61 is greater than the maximum of 60",
        ),
        (
            {"auth.issuers.0.leeway_s": -1},
            "auth.issuers[0].leeway_s: -1 is less than the minimum of 0",
        ),
        (
            {"auth.issuers.0.max_future_s": 120},
            "auth.issuers[0].max_future_s: 120 is greater than the maximum of 60",
        ),
        (
            {"auth.dpop": {"max_age_s": 0}},
            "auth.dpop.max_age_s: 0 must be greater than 0",
        ),
        (
            {"auth.dpop": {"max_age_s": 301}},
            "auth.dpop.max_age_s: 301 is greater than the maximum of 300",
        ),
        (
            {"auth.dpop": {"max_future_s": 61}},
            "auth.dpop.max_future_s: 61 is greater than the maximum of 60",
        ),
        (
            {"auth.dpop": {"nonce_secrets": ["short"]}},
            "auth.dpop.nonce_secrets[0]: must be at least 32 characters",
        ),
        (
            {"auth.token_cache_entries": 0},
            "auth.token_cache_entries: 0 is less than the minimum of 1",
        ),
        (
            {"auth.tpp": {"clients": {"c1": "DE-BAFIN-1"}}},
            "auth.tpp.clients.c1: 'DE-BAFIN-1' is not valid (use an organizationIdentifier such as PSDDE-BAFIN-123456)",
        ),
        (
            {"auth.identity_headers": {"subject": "X PSU"}},
            "auth.identity_headers.subject: 'X PSU' is not valid (use an HTTP header name, e.g. X-Finward-Client-ID)",
        ),
        (
            {"auth.issuers.0.introspection": {"endpoint": "https://as/introspect"}},
            "auth.issuers[0].introspection.client_id: required key is missing",
        ),
        (
            {"auth.issuers": [{"jwks_uri": "https://as/jwks"}]},
            "auth.issuers[0].issuer: required key is missing",
        ),
        ({"auth.issuer": []}, "auth.issuer: unknown key (did you mean 'issuers'?)"),
    ],
)
def test_schema_problems(folder: Path, changes: dict[str, Any], expected: str) -> None:
    problems = check_config(_write(folder, _with(BASE, changes)), environ={})
    assert any(p.startswith(expected) for p in problems), problems


# -- semantic checks: one test per rule -------------------------------------------------


def _problems(folder: Path, changes: dict[str, Any], base: dict[str, Any] = BASE) -> list[str]:
    return check_config(_write(folder, _with(base, changes)), environ={})


def _assert_problem(problems: list[str], location: str, fragment: str) -> None:
    found = [p for p in problems if p.startswith(f"{location}: ")]
    assert any(fragment in p for p in found), problems


def test_base_is_valid(folder: Path) -> None:
    assert _problems(folder, {}) == []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        (
            "http://as.bank.example",
            "'http://as.bank.example' is not https (tokens and keys must come over TLS",
        ),
        (
            "http://127.0.0.1:8082",
            "is not https (for a local test server set allow_insecure_loopback: true",
        ),
        ("ftp://as.bank.example", "is not an https URL"),
        ("https://", "has no host"),
        ("https://as.bank.example/?x=1", "must not have a query or fragment"),
        ("https://as.bank.example/#f", "must not have a fragment"),
        ("https://u:p@as.bank.example", "contains user:password"),
        ("https://as:99999", "is not a valid URL"),
    ],
)
def test_issuer_must_be_https(folder: Path, url: str, fragment: str) -> None:
    problems = _problems(folder, {"auth.issuers.0.issuer": url})
    _assert_problem(problems, "auth.issuers[0].issuer", fragment)


def test_insecure_loopback_allows_http_only_to_loopback(folder: Path) -> None:
    for host in ("127.0.0.1:8082", "[::1]:8082", "localhost"):
        issuer = {"issuer": f"http://{host}", "allow_insecure_loopback": True}
        assert _problems(folder, {"auth.issuers.0": issuer}) == []
    remote = {"issuer": "http://as.bank.example", "allow_insecure_loopback": True}
    problems = _problems(folder, {"auth.issuers.0": remote})
    _assert_problem(problems, "auth.issuers[0].issuer", "is not https")


def test_jwks_uri_must_be_https(folder: Path) -> None:
    issuer = {**ISSUER, "jwks_uri": "http://as.bank.example/jwks"}
    problems = _problems(folder, {"auth.issuers.0": issuer})
    _assert_problem(problems, "auth.issuers[0].jwks_uri", "is not https")
    loopback = {**ISSUER, "jwks_uri": "http://127.0.0.1:8082/jwks"}
    problems = _problems(folder, {"auth.issuers.0": loopback})
    _assert_problem(problems, "auth.issuers[0].jwks_uri", "allow_insecure_loopback: true")


def test_introspection_endpoint_must_be_https(folder: Path) -> None:
    issuer = {
        **ISSUER,
        "token_format": "opaque",
        "introspection": {
            "endpoint": "http://as.bank.example/introspect",
            "client_id": "gw",
            "client_secret": SECRET,
        },
    }
    problems = _problems(folder, {"auth.issuers.0": issuer})
    _assert_problem(problems, "auth.issuers[0].introspection.endpoint", "is not https")


def test_issuers_are_unique(folder: Path) -> None:
    problems = _problems(folder, {"auth.issuers": [ISSUER, ISSUER]})
    assert (
        "auth.issuers[1].issuer: 'https://as.bank.example' is already auth.issuers[0] "
        "(list each authorisation server once)"
    ) in problems


def _opaque(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "token_format": "opaque",
        "introspection": {
            "endpoint": f"{issuer}/introspect",
            "client_id": "gw",
            "client_secret": SECRET,
        },
    }


def test_at_most_one_issuer_takes_opaque_tokens(folder: Path) -> None:
    second = {**_opaque("https://sso.bank.example"), "token_format": "any"}
    problems = _problems(folder, {"auth.issuers": [_opaque("https://as.bank.example"), second]})
    _assert_problem(
        problems, "auth.issuers[1].token_format", "auth.issuers[0] already accepts opaque tokens"
    )


def test_introspection_on_a_jwt_issuer_is_flagged(folder: Path) -> None:
    """It would otherwise be unused (or, worse, silently open an opaque-token path)."""
    jwt_issuer = {**_opaque("https://as.bank.example"), "token_format": "jwt"}
    problems = _problems(folder, {"auth.issuers": [jwt_issuer]})
    _assert_problem(
        problems, "auth.issuers[0].introspection", "is not used when token_format is 'jwt'"
    )


@pytest.mark.parametrize("token_format", ["opaque", "any"])
def test_opaque_tokens_need_introspection(folder: Path, token_format: str) -> None:
    problems = _problems(folder, {"auth.issuers.0.token_format": token_format})
    assert (
        f"auth.issuers[0].introspection: required when token_format is {token_format!r} "
        "(the RFC 7662 endpoint that says whether an opaque token is active)"
    ) in problems


@pytest.mark.parametrize(
    ("method", "missing"),
    [
        ("client_secret_basic", ["client_secret"]),
        ("private_key_jwt", ["private_key"]),
        ("tls_client_auth", ["client_cert", "client_key"]),
    ],
)
def test_introspection_auth_method_needs_its_credentials(
    folder: Path, method: str, missing: list[str]
) -> None:
    issuer = _opaque("https://as.bank.example")
    issuer["introspection"] = {
        "endpoint": "https://as.bank.example/introspect",
        "client_id": "gw",
        "auth_method": method,
    }
    problems = _problems(folder, {"auth.issuers.0": issuer})
    for key in missing:
        _assert_problem(
            problems,
            f"auth.issuers[0].introspection.{key}",
            f"required when auth_method is {method!r}",
        )


def test_introspection_client_secret_unused_by_another_method(folder: Path) -> None:
    issuer = _opaque("https://as.bank.example")
    issuer["introspection"].update(auth_method="private_key_jwt", private_key="key.pem")
    problems = _problems(folder, {"auth.issuers.0": issuer})
    _assert_problem(
        problems,
        "auth.issuers[0].introspection.client_secret",
        "is set but auth_method is 'private_key_jwt', so it is never used",
    )
    assert SECRET not in "\n".join(problems)


def test_auth_files_must_exist(folder: Path) -> None:
    issuer = _opaque("https://as.bank.example")
    issuer["ca"] = "missing-ca.pem"
    issuer["introspection"] = {
        "endpoint": "https://as.bank.example/introspect",
        "client_id": "gw",
        "auth_method": "tls_client_auth",
        "client_cert": "missing-cert.pem",
        "client_key": "missing-key.pem",
    }
    problems = _problems(folder, {"auth.issuers.0": issuer})
    assert f"auth.issuers[0].ca: file not found: {folder}/missing-ca.pem" in problems
    assert (
        f"auth.issuers[0].introspection.client_cert: file not found: {folder}/missing-cert.pem"
        in problems
    )
    # A key file's name is not shown: client_key is named like a secret.
    _assert_problem(problems, "auth.issuers[0].introspection.client_key", "file not found")


def test_audiences_required_with_issuers(folder: Path) -> None:
    problems = _problems(folder, {"auth.audiences": []})
    _assert_problem(problems, "auth.audiences", "required when auth.issuers is set")
    # ... unless every issuer has its own.
    own = {**ISSUER, "audiences": ["psd2"]}
    assert _problems(folder, {"auth.audiences": [], "auth.issuers": [own]}) == []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("api.bank.example", "is not an http(s) URL"),
        ("https://api.bank.example/?x=1", "must not have a query or fragment"),
        ("https://api.bank.example/#top", "must not have a fragment"),
    ],
)
def test_public_base_url_is_an_absolute_url(folder: Path, url: str, fragment: str) -> None:
    problems = _problems(folder, {"auth.public_base_url": url})
    _assert_problem(problems, "auth.public_base_url", fragment)


def test_public_base_url_may_be_plain_http() -> None:
    # Behind a TLS terminator finward may be reached on http://; what counts is what the
    # client uses, and that may be any http(s) URL.
    document = _with(BASE, {"auth.public_base_url": "http://gateway.internal:8080"})
    assert collect_schema_problems(document, config_schema(), lambda _: False) == []


def test_public_base_url_required_when_an_api_accepts_dpop(folder: Path) -> None:
    problems = _problems(folder, {"auth.public_base_url": None})
    assert (
        "auth.public_base_url: required because apis[0] accepts DPoP-bound tokens (the URL "
        "clients use to reach finward, e.g. https://api.bank.example; or set sender_method: "
        "mtls on every API)"
    ) in problems


@pytest.mark.parametrize(
    ("api_auth", "required"),
    [
        (None, True),  # the defaults accept DPoP
        ({"sender_method": "dpop"}, True),
        ({"sender_method": "mtls"}, False),
        ({"token": "off"}, False),
        ({"sender_method": "mtls", "tags": {"AIS": {"sender_method": "any"}}}, True),
        (
            {"sender_method": "mtls", "operations": {"getAccountList": {"sender_method": "dpop"}}},
            True,
        ),
        ({"token": "off", "operations": {"getAccountList": {"token": "required"}}}, True),
        ({"sender_method": "mtls", "tags": {"AIS": {"token": "optional"}}}, False),
    ],
)
def test_public_base_url_rule(folder: Path, api_auth: Any, required: bool) -> None:
    changes: dict[str, Any] = {
        "auth.public_base_url": None,
        "listen.tls": {"cert": "server.pem", "key": "server-key.pem", "client_ca": "ca.pem"},
        "listen.tls.client_cert": "optional",
    }
    if api_auth is not None:
        changes["apis.0.auth"] = api_auth
    problems = _problems(folder, changes)
    assert any(p.startswith("auth.public_base_url: required") for p in problems) is required
    assert len(problems) == int(required), problems


def test_public_base_url_not_required_without_issuers(folder: Path) -> None:
    assert _problems(folder, {"auth": {}}) == []


def test_dpop_nonce_needs_secrets(folder: Path) -> None:
    problems = _problems(folder, {"auth.dpop": {"nonce": True}})
    _assert_problem(problems, "auth.dpop.nonce_secrets", "required when nonce is true")
    assert _problems(folder, {"auth.dpop": {"nonce": True, "nonce_secrets": [SECRET]}}) == []


def test_empty_algorithm_lists(folder: Path) -> None:
    problems = _problems(folder, {"auth.issuers.0.algorithms": [], "auth.dpop": {"algorithms": []}})
    _assert_problem(problems, "auth.issuers[0].algorithms", "must not be empty")
    _assert_problem(problems, "auth.dpop.algorithms", "must not be empty")


def test_jwks_min_refetch_not_above_max_age(folder: Path) -> None:
    problems = _problems(
        folder, {"auth.issuers.0.jwks_max_age_s": 60, "auth.issuers.0.jwks_min_refetch_s": 120}
    )
    _assert_problem(
        problems, "auth.issuers[0].jwks_min_refetch_s", "120 is more than jwks_max_age_s (60)"
    )


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("memcached://cache", "unknown state store scheme 'memcached'"),
        ("redis://", "redis:// URL needs a host"),
        ("memory://host", "memory:// takes no host or path"),
    ],
)
def test_state_store_must_parse(folder: Path, url: str, fragment: str) -> None:
    problems = _problems(folder, {"auth.state_store": url})
    _assert_problem(problems, "auth.state_store", fragment)


def test_memory_state_store_with_several_workers(folder: Path) -> None:
    problems = _problems(folder, {"server": {"workers": 4}})
    assert (
        "auth.state_store: a memory:// store is per process: with 4 workers DPoP replays, "
        "revocations and suspensions would not be shared (use redis://)"
    ) in problems
    assert _problems(folder, {"server": {"workers": 4}, "auth.state_store": "redis://r:6379"}) == []
    # Without issuers nothing is stored.
    assert _problems(folder, {"server": {"workers": 4}, "auth": {}}) == []


def test_api_auth_needs_issuers(folder: Path) -> None:
    problems = _problems(folder, {"auth": {}, "apis.0.auth": {"sender_method": "dpop"}})
    assert (
        "apis[0].auth: no issuers configured (list the authorisation servers under "
        "auth.issuers, or remove this API's auth)"
    ) in problems
    assert _problems(folder, {"auth": {}, "apis.0.auth": {"token": "off"}}) == []
    assert _problems(folder, {"auth": {}, "apis.0.auth": None}) == []


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        (
            "FETCH /accounts",
            "the method is one of GET, PUT, POST, DELETE, OPTIONS, HEAD, PATCH, TRACE",
        ),
        ("GET accounts", "an operationId has no spaces"),
        ("GET  /accounts", "an operationId has no spaces"),
        ("list accounts", "an operationId has no spaces"),
        ("GET /accounts x", "an operationId has no spaces"),
    ],
)
def test_operation_keys_are_operation_ids_or_method_and_path(
    folder: Path, key: str, fragment: str
) -> None:
    problems = _problems(folder, {"apis.0.auth": {"operations": {key: {"token": "optional"}}}})
    location = f"apis[0].auth.operations[{key!r}]"
    _assert_problem(problems, location, "is neither an operationId nor 'METHOD /path'")
    _assert_problem(problems, location, fragment)


@pytest.mark.parametrize("key", ["getAccountList", "GET /accounts/{id}", "get /accounts"])
def test_operation_keys_accepted(folder: Path, key: str) -> None:
    assert _problems(folder, {"apis.0.auth": {"operations": {key: {"token": "optional"}}}}) == []


@pytest.mark.parametrize("name", ["Authorization", "host", "DPoP", "Connection", "X-Forwarded-For"])
def test_identity_headers_not_reserved(folder: Path, name: str) -> None:
    problems = _problems(folder, {"auth.identity_headers": {"subject": name}})
    _assert_problem(
        problems,
        "auth.identity_headers.subject",
        f"{name!r} is a header finward reads, writes or removes",
    )


def test_identity_headers_distinct(folder: Path) -> None:
    problems = _problems(folder, {"auth.identity_headers": {"scopes": "x-finward-client-id"}})
    assert (
        "auth.identity_headers.scopes: 'x-finward-client-id' is also identity_headers.client_id "
        "(give each its own header, or null to leave one out)"
    ) in problems
    # The one written in the file is named, even when it comes first.
    problems = _problems(folder, {"auth.identity_headers": {"client_id": "X-Finward-PSU-ID"}})
    _assert_problem(problems, "auth.identity_headers.client_id", "is also identity_headers.subject")
    # null leaves a header out, so it cannot collide.
    changes = {"auth.identity_headers": {"client_id": None, "subject": "X-Finward-Client-ID"}}
    assert _problems(folder, changes) == []


def test_identity_header_not_the_client_cert_header(folder: Path) -> None:
    changes = {
        "proxy": {
            "trusted_proxies": ["127.0.0.1"],
            "client_cert_header": "X-Finward-TPP-ID",
            "client_cert_ca": "ca.pem",
        }
    }
    problems = _problems(folder, changes)
    _assert_problem(
        problems, "auth.identity_headers.tpp_organisation", "is also proxy.client_cert_header"
    )


def test_mtls_and_tpp_roles_need_client_certificates(folder: Path) -> None:
    changes = {"apis.0.auth": {"sender_method": "mtls", "tags": {"AIS": {"tpp_roles": ["PSP_AI"]}}}}
    problems = _problems(folder, changes)
    _assert_problem(problems, "apis[0].auth.sender_method", "'mtls' needs client certificates")
    _assert_problem(problems, "apis[0].auth.tags.AIS.tpp_roles", "TPP roles come from eIDAS")
    tls = {
        "cert": "server.pem",
        "key": "server-key.pem",
        "client_ca": "ca.pem",
        "client_cert": "optional",
    }
    assert _problems(folder, {**changes, "listen.tls": tls}) == []


# -- build ----------------------------------------------------------------------------


def test_build_without_auth_leaves_the_defaults(folder: Path) -> None:
    document = _with(BASE, {})
    del document["auth"]
    config = load_config(_write(folder, document), environ={})
    assert config.auth == AuthConfig()
    assert config.apis[0].auth is None
    config = load_config(_write(folder, _with(BASE, {"apis.0.auth": None})), environ={})
    assert config.apis[0].auth is None


def test_build_full_auth_config(folder: Path) -> None:
    config = load_config(_write(folder, FULL), environ={})
    auth = config.auth
    first, second = auth.issuers
    assert first == IssuerConfig(
        issuer="https://as.bank.example",
        jwks_uri="https://as.bank.example/jwks?v=2",
        audiences=("psd2",),
        algorithms=("PS256", "ES384"),
        token_types=("at+jwt",),
        accept_untyped=True,
        required_claims=("iss", "exp"),
        leeway_s=5.0,
        max_future_s=0.0,
        ca=folder / "ca.pem",
        jwks_max_age_s=600.0,
        jwks_min_refetch_s=30.0,
        timeout_s=3.0,
    )
    assert isinstance(first.leeway_s, float) and isinstance(first.jwks_max_age_s, float)
    assert second.token_format == "any" and second.allow_insecure_loopback
    assert second.introspection == IntrospectionConfig(
        endpoint="http://127.0.0.1:8082/introspect",
        client_id="finward-gateway",
        auth_method="private_key_jwt",
        private_key=folder / "key.pem",
        private_key_alg="ES256",
        key_id="k1",
        client_cert=folder / "cert.pem",
        client_key=folder / "client-key.pem",
        max_ttl_s=30.0,
        timeout_s=1.5,
    )
    assert auth.audiences == ("https://api.bank.example",)
    assert auth.public_base_url == "https://api.bank.example/gw"
    assert auth.state_store == "redis://redis.internal:6379/0"
    assert auth.dpop == DPoPConfig(
        algorithms=("ES256",),
        max_age_s=30.0,
        max_future_s=0.0,
        nonce=True,
        nonce_secrets=(SECRET,),
        nonce_rotation_s=120,
    )
    assert type(auth.dpop.nonce_rotation_s) is int
    assert auth.tpp == TppConfig(
        require_qc_compliance=False,
        clients={"tpp-7": "PSDDE-BAFIN-123456", "tpp-8": "PSDFR-ACPR-X1"},
    )
    assert auth.identity_headers == IdentityHeadersConfig(
        client_id="X-Client-ID",
        tpp_organisation=None,
        subject="X-PSU-ID",
        consent_id="Consent-ID",
        scopes=None,
    )
    assert auth.forward_token is True
    assert auth.consent_claim == "intent_id"
    assert auth.token_cache_entries == 500 and type(auth.token_cache_entries) is int
    assert auth.revocation_ttl_s == 3600.0 and isinstance(auth.revocation_ttl_s, float)

    assert config.apis[0].auth == ApiAuthConfig(
        token="spec",
        sender_constraint="optional",
        sender_method="dpop",
        scopes=("accounts",),
        tpp_roles=("PSP_AI", "PSP_PI"),
        error_format="berlin-group",
        tags={
            "AIS": AccessRule(tpp_roles=("PSP_AI",), scopes=("accounts", "balances")),
            "PIS": AccessRule(token="required", sender_method="mtls"),
        },
        operations={
            "getAccountList": AccessRule(sender_constraint="required", scopes=()),
            "GET /accounts/{id}": AccessRule(token="optional", tpp_roles=()),
        },
    )


def test_build_integral_floats_become_ints(folder: Path) -> None:
    changes = {"auth.token_cache_entries": 20.0, "auth.dpop": {"nonce_rotation_s": 30.0}}
    config = load_config(_write(folder, _with(BASE, changes)), environ={})
    assert type(config.auth.token_cache_entries) is int
    assert type(config.auth.dpop.nonce_rotation_s) is int


def test_build_api_auth_defaults(folder: Path) -> None:
    config = load_config(_write(folder, _with(BASE, {"apis.0.auth": {}})), environ={})
    assert config.apis[0].auth == ApiAuthConfig()


# -- secrets --------------------------------------------------------------------------


def test_auth_secrets_are_masked(folder: Path) -> None:
    password = "redis-password-5d1e"
    document = _with(FULL, {"auth.state_store": f"redis://:{password}@redis.internal:6379/0"})
    issuer = _opaque("https://sso.bank.example")
    document["auth"]["issuers"][1] = issuer
    config = load_config(_write(folder, document), environ={})
    assert {
        "auth.issuers[1].introspection.client_secret",
        "auth.dpop.nonce_secrets[0]",
        "auth.state_store",
    } <= config.secret_locations
    shown = effective_document(config)
    assert shown["auth"]["issuers"][1]["introspection"]["client_secret"] == "***"
    assert shown["auth"]["dpop"]["nonce_secrets"] == ["***"]
    assert shown["auth"]["state_store"] == "***"
    assert SECRET not in repr(shown) and password not in repr(shown)
    assert SECRET not in repr(config)  # model.py: repr=False on client_secret, nonce_secrets
    # Modes and formats named with a secret word are not secrets.
    assert shown["apis"][0]["auth"]["token"] == "spec"
    assert shown["apis"][0]["auth"]["tags"]["PIS"]["token"] == "required"
    assert shown["auth"]["issuers"][0]["token_format"] == "jwt"
    assert shown["auth"]["token_cache_entries"] == 500
    assert shown["auth"]["forward_token"] is True


def test_a_plain_state_store_is_shown(folder: Path) -> None:
    config = load_config(_write(folder, FULL), environ={})
    assert effective_document(config)["auth"]["state_store"] == "redis://redis.internal:6379/0"


def test_problems_never_contain_auth_secrets(folder: Path) -> None:
    document = _with(
        BASE,
        {
            "auth.state_store": f"redis://:{SECRET}@/0",
            "auth.dpop": {"nonce": True, "nonce_secrets": ["hunter2-too-short"]},
            "auth.issuers": [
                {
                    **ISSUER,
                    "token_format": "opaque",
                    "introspection": {
                        "endpoint": "https://as.bank.example/introspect",
                        "client_id": "gw",
                        "auth_method": "tls_client_auth",
                        "client_secret": SECRET,
                    },
                }
            ],
        },
    )
    problems = check_config(_write(folder, document), environ={})
    text = "\n".join(problems)
    _assert_problem(problems, "auth.state_store", "redis:// URL needs a host")
    assert "auth.dpop.nonce_secrets[0]: must be at least 32 characters" in problems
    assert SECRET not in text and "hunter2" not in text
    assert "***" not in text  # kept out by the formatters, not by the backstop


def test_a_mode_named_token_is_not_scrubbed_from_messages(folder: Path) -> None:
    # If `token: required` counted as a secret, "required" would become *** everywhere.
    problems = _problems(folder, {"apis.0.auth": {"token": "required"}, "auth.audiences": []})
    _assert_problem(problems, "auth.audiences", "required when auth.issuers is set")
    problems = _problems(folder, {"apis.0.auth": {"token": "requierd"}})
    _assert_problem(problems, "apis[0].auth.token", "'requierd' is not one of")


# -- the shipped example --------------------------------------------------------------


def test_auth_example_builds_the_intended_config(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "finward-auth.yaml"
    for name in ("server.pem", "server-key.pem", "ca.pem"):
        (tmp_path / name).write_text("x")
    environ = {
        "FINWARD_TLS_CERT": str(tmp_path / "server.pem"),
        "FINWARD_TLS_KEY": str(tmp_path / "server-key.pem"),
        "FINWARD_CLIENT_CA": str(tmp_path / "ca.pem"),
        "FINWARD_ADMIN_TOKEN": "example-admin-token-0123456789abcdef",
        "FINWARD_DPOP_NONCE_SECRET": SECRET,
    }
    report = inspect_config(example, environ=environ)
    assert report.problems == ()
    assert report.config is not None
    (issuer,) = report.config.auth.issuers
    assert issuer.issuer == "http://127.0.0.1:8082" and issuer.allow_insecure_loopback
    api_auth = report.config.apis[0].auth
    assert api_auth is not None
    assert api_auth.tags["AIS"].tpp_roles == ("PSP_AI",)
    assert api_auth.tags["PIS"].tpp_roles == ("PSP_PI",)
    assert report.config.auth.dpop.nonce and report.config.auth.public_base_url
    # Every tag and operation it names exists in the sandbox spec.
    from finward.auth.rules import compile_rules
    from finward.openapi.loader import load_spec

    api = report.config.apis[0]
    rules = compile_rules(api.name, api_auth, load_spec(api.spec, api=api.name))
    payment = rules[("POST", "/v1/payments/{payment-product}")]
    assert payment.sender_method == "mtls" and payment.tpp_roles == {"PSP_PI"}
    assert rules[("GET", "/v1/accounts")].scope_alternatives == (frozenset({"accounts"}),)


@pytest.mark.parametrize(
    "changes",
    [
        {"apis.0.auth": {"token": ["required"], "sender_method": {"x": 1}}},
        {"apis.0.auth": {"tags": {"AIS": {"token": [1], "sender_method": [2]}}}},
        {"apis.0.auth": {"tags": ["AIS"], "operations": "getAccountList"}},
        {"auth.issuers": [{"issuer": ["x"], "token_format": ["opaque"], "introspection": []}]},
        {"auth.identity_headers": {"subject": ["X"]}, "auth.dpop": {"nonce": "yes"}},
        {"auth.state_store": 5, "server": {"workers": "4"}},
    ],
)
def test_wrong_shapes_are_reported_not_raised(folder: Path, changes: dict[str, Any]) -> None:
    assert _problems(folder, changes)
