"""Key parts a client must not be able to vary, or to collide with another client's."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from finward.http import Headers
from finward.limits.keys import parse_key_part, part_value, stored_key


def value(
    part: str, *, ip: str = "203.0.113.7", headers: Headers | None = None, **claims: object
) -> str | None:
    principal = SimpleNamespace(token=SimpleNamespace(claims=claims, sub=None, token_hash="h"))
    return part_value(parse_key_part(part), principal, ip, headers or Headers())


@pytest.mark.parametrize("variant", ["k1", "k1 ", "k1\t", "  k1", "k1  \t"])
def test_header_whitespace_is_one_client(variant: str) -> None:
    assert value("header:X-Api-Key", headers=Headers([("x-api-key", variant)])) == "k1"


def test_repeated_headers_are_combined() -> None:
    headers = Headers([("x-api-key", "a"), ("x-api-key", "b")])
    assert value("header:X-Api-Key", headers=headers) == "a, b"
    assert value("header:X-Api-Key") == ""  # absent: one shared bucket, no escape


def test_ip_counts_ipv6_per_64_and_mapped_ipv4_as_ipv4() -> None:
    one = value("ip", ip="2001:db8:0:1:aaaa::1")
    assert one == value("ip", ip="2001:db8:0:1:ffff::2") == "2001:db8:0:1::/64"
    assert value("ip", ip="2001:db8:0:2::1") != one
    assert value("ip", ip="::ffff:198.51.100.4") == value("ip", ip="198.51.100.4")


@pytest.mark.parametrize(("claim", "text"), [(42, "42"), (True, "true"), (["a", "b"], '["a","b"]')])
def test_non_string_claims_count(claim: object, text: str) -> None:
    assert value("claim:tenant", tenant=claim) == text
    assert value("claim:tenant") is None


def test_stored_keys_do_not_collide_on_prefixes_or_separators() -> None:
    long = "A" * 5000
    assert stored_key("l", [long + "victim"]) != stored_key("l", [long + "attacker"])
    assert stored_key("l", ["a\x1f", "b"]) != stored_key("l", ["a", "\x1fb"])
    assert stored_key("l", ["ab", "c"]) != stored_key("l", ["a", "bc"])
    assert stored_key("one", ["x"]) != stored_key("two", ["x"])
