"""Problem formatting, secret-name detection and the *** backstop."""

from __future__ import annotations

import pytest

from finward.config.loader import check_config, load_config
from finward.config.problems import (
    Problem,
    format_location,
    is_secret_location,
    location_sort_key,
    scrub,
)

from .conftest import MINIMAL, WriteConfig


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ((), "(root)"),
        (("listen", "port"), "listen.port"),
        (("apis", 0, "upstream"), "apis[0].upstream"),
        (("upstreams", "my.bank", "url"), "upstreams['my.bank'].url"),
        (("upstreams", "core-bank", "url"), "upstreams.core-bank.url"),
        (("apis", 3), "apis[3]"),
    ],
)
def test_format_location(location: tuple[str | int, ...], expected: str) -> None:
    assert format_location(location) == expected


def test_problem_format_with_and_without_hint() -> None:
    assert Problem(("a", 1), "bad").format() == "a[1]: bad"
    assert Problem(("a",), "bad", "try this").format() == "a: bad (try this)"
    assert Problem((), "missing", label="/x.yaml").format() == "/x.yaml: missing"


@pytest.mark.parametrize(
    ("location", "secret"),
    [
        (("admin", "token"), True),
        (("upstreams", "b", "tls", "client_key"), True),
        (("listen", "tls", "key"), True),
        (("admin", "token", 0), True),
        (("x", "db_password"), True),
        (("upstreams", "token_service", "url"), False),
        (("upstreams", "b", "keepalive_s"), False),
        (("limits", "max_header_bytes"), False),
        (("listen", "tls", "cert"), False),
        (("auth", "issuers", 0, "introspection", "client_secret"), True),
        (("auth", "issuers", 0, "introspection", "private_key"), True),
        (("auth", "dpop", "nonce_secrets", 0), True),
        (("auth", "dpop", "nonce_secrets"), True),
        # Named with a secret word, holding a mode, a format, a key id or an algorithm.
        (("apis", 0, "auth", "token"), False),
        (("apis", 0, "auth", "tags", "AIS", "token"), False),
        (("apis", 0, "auth", "operations", "GET /x", "token"), False),
        (("auth", "issuers", 0, "token_format"), False),
        (("auth", "issuers", 0, "token_types", 0), False),
        (("auth", "issuers", 0, "introspection", "key_id"), False),
        (("auth", "issuers", 0, "introspection", "private_key_alg"), False),
        (("auth", "token_cache_entries"), False),
        (("auth", "forward_token"), False),
        # ... but only there: a `token` anywhere else is still a secret.
        (("apis", 0, "token"), True),
        (("apis", 0, "auth", "tags", "token"), True),
    ],
)
def test_is_secret_location(location: tuple[str | int, ...], secret: bool) -> None:
    assert is_secret_location(location) is secret


def test_location_sort_key_orders_indexes_numerically() -> None:
    locations = [("apis", 10), ("apis", 2), ("admin",), ("apis", 2, "name")]
    assert sorted(locations, key=location_sort_key) == [
        ("admin",),
        ("apis", 2),
        ("apis", 2, "name"),
        ("apis", 10),
    ]


def test_scrub_masks_longest_secret_first_and_ignores_tiny_values() -> None:
    messages = ["x: 'abcd-efgh' and abcd", "port 80"]
    assert scrub(messages, {"abcd", "abcd-efgh", "80"}) == ["x: '***' and ***", "port 80"]


def test_a_secret_pasted_into_an_ordinary_field_is_still_masked(
    write_config: WriteConfig,
) -> None:
    # The token value reused as an upstream name: the "unknown upstream" formatter
    # quotes upstream names, so the backstop must catch it.
    token = "tok-5a8d1c9e7b3f2a60"
    path = write_config(
        MINIMAL.replace("upstream: bank}", f"upstream: {token}}}") + f"admin: {{token: {token}}}\n"
    )
    assert check_config(path, environ={}) == [
        "apis[0].upstream: unknown upstream '***' (known: bank)"
    ]


def test_secret_locations_record_named_and_substituted_values(write_config: WriteConfig) -> None:
    path = write_config(
        MINIMAL.replace('"http://127.0.0.1:8081"', '"http://${BANK_HOST:-127.0.0.1}:8081"')
        + "admin: {token: 0123456789abcdef0123}\n"
    )
    config = load_config(path, environ={})
    assert config.secret_locations == {"admin.token", "upstreams.bank.url"}
