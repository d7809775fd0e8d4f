"""Parser hardening (issue 6): one test per rule, tricky inputs, and the fast path
agreeing with the reference path."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from finward.errors import REASONS
from finward.validation.json_guard import (
    DEFAULT_LIMITS,
    JsonGuardError,
    JsonLimits,
    check_amount,
    parse_json,
    parse_json_reference,
)

PARSERS = [parse_json, parse_json_reference]


def refused(body: bytes, limits: JsonLimits = DEFAULT_LIMITS) -> JsonGuardError:
    errors = []
    for parse in PARSERS:
        with pytest.raises(JsonGuardError) as info:
            parse(body, limits)
        errors.append(info.value)
    fast, reference = errors
    assert (fast.reason, fast.pointer) == (reference.reason, reference.pointer)
    assert fast.status == REASONS[fast.reason].status
    return fast


def accepted(body: bytes, limits: JsonLimits = DEFAULT_LIMITS) -> Any:
    value = parse_json(body, limits)
    assert parse_json_reference(body, limits) == value
    return value


def nested(depth: int, inner: str = "") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


# -------------------------------------------------------------------- valid JSON


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": [1, 2.5, "x", true, false, null]}', {"a": [1, 2.5, "x", True, False, None]}),
        (b"-0", 0),
        (b"-0.0", -0.0),
        (b"1E+2", 100.0),
        (b"1e-2", 0.01),
        (b"18446744073709551615", 18446744073709551615),
        (b"-9223372036854775808", -9223372036854775808),
        (b"18446744073709551616", 18446744073709551616),  # beyond u64: still exact
        (b"99999999999999999999", 99999999999999999999),  # 20 digits
        (b"1.7976931348623157e308", 1.7976931348623157e308),
        (b"2.2250738585072014e-308", 2.2250738585072014e-308),
        (b"0e5", 0.0),
        (b' \t\r\n{"k":"v"} \n', {"k": "v"}),
        ('"Müller € 😀"'.encode(), "Müller € 😀"),
        (b'"\\ud83d\\ude00"', "😀"),  # a valid surrogate pair
        (b'{"a":1,"A":2}', {"a": 1, "A": 2}),  # keys are case-sensitive
        (b'{"\\u003a":1}', {":": 1}),
        (b'{"a":"x:y","b":"\\u003a"}', {"a": "x:y", "b": ":"}),
        (b'"E2E-1e5, [x]: {y}"', "E2E-1e5, [x]: {y}"),
        (b"[]", []),
        (b"{}", {}),
    ],
)
def test_valid_json_is_accepted(body: bytes, expected: Any) -> None:
    value = accepted(body)
    assert value == expected and type(value) is type(expected)


# -------------------------------------------------------------------- body_not_json


@pytest.mark.parametrize(
    "body",
    [b"", b" ", b"+1", b"01", b".5", b"1.", b"[1,]", b"{'a':1}", b"[1] x", b'"a\tb"', b"\x0c1",
     b'{"a"}', b"[1 2]", b"tru", b'"\\x"', b"\xc2\xa01"],
)  # fmt: skip
def test_not_json(body: bytes) -> None:
    error = refused(body)
    assert error.reason == "body_not_json" and error.status == 400 and error.pointer == ""


# -------------------------------------------------------------------- body_too_large


def test_body_too_large_before_parsing() -> None:
    limits = JsonLimits(max_body_bytes=10)
    assert accepted(b"[1,2,3,45]", limits) == [1, 2, 3, 45]
    error = refused(b"[1,2,3,456]", limits)
    assert (error.reason, error.status) == ("body_too_large", 413)
    # Refused on size alone: the bytes are never looked at.
    assert refused(b"\xff" * 11, limits).reason == "body_too_large"


# -------------------------------------------------------------------- json_too_deep


def test_depth_at_the_limit_and_one_past() -> None:
    assert accepted(nested(32)) is not None
    error = refused(nested(33))
    assert error.reason == "json_too_deep"
    assert error.pointer == "/0" * 32


def test_depth_counts_objects_and_arrays_and_points_at_the_container() -> None:
    limits = JsonLimits(max_depth=3)
    assert accepted(b'{"a":[{"b":1}]}', limits) == {"a": [{"b": 1}]}
    error = refused(b'{"a":[1,{"b":[]}]}', limits)
    assert (error.reason, error.pointer) == ("json_too_deep", "/a/1/b")


@pytest.mark.parametrize("depth", [1025, 100_000])
def test_json_bombs_are_refused_without_recursion(depth: int) -> None:
    # orjson stops at 1024 levels; the reference path scans brackets first.
    assert refused(nested(depth)).reason == "json_too_deep"
    assert refused(b'{"x":' + nested(depth) + b"}").pointer == "/x" + "/0" * 31


def test_brackets_in_strings_do_not_count() -> None:
    assert accepted(b'["' + b"[" * 100 + b'"]') == ["[" * 100]


# -------------------------------------------------------------------- json_string_too_long


def test_string_length_at_the_limit_and_one_past() -> None:
    limits = JsonLimits(max_string_length=5)
    assert accepted(b'{"k":["abcde"]}', limits) == {"k": ["abcde"]}
    error = refused(b'{"k":["abcdef"]}', limits)
    assert (error.reason, error.pointer) == ("json_string_too_long", "/k/0")
    assert "abcdef" not in str(error) and "abcdef" not in error.detail


def test_string_length_counts_characters_after_unescaping() -> None:
    limits = JsonLimits(max_string_length=2)
    assert accepted(b'"\\u00e9\\u00e9"', limits) == "éé"
    assert accepted('"éé"'.encode(), limits) == "éé"
    assert refused(b'"\\u00e9\\u00e9\\u00e9"', limits).reason == "json_string_too_long"


def test_long_keys_are_refused_without_echoing_them() -> None:
    limits = JsonLimits(max_string_length=8)
    error = refused(b'{"a":{"secretsecret":1}}', limits)
    assert (error.reason, error.pointer) == ("json_string_too_long", "/a")
    assert "secret" not in str(error)


def test_default_string_limit() -> None:
    ok = b'"' + b"a" * 65_536 + b'"'
    assert accepted(ok) == "a" * 65_536
    assert refused(b'{"a":"' + b"a" * 65_537 + b'"}').pointer == "/a"


# -------------------------------------------------------------------- json_array_too_long


def test_array_items_at_the_limit_and_one_past() -> None:
    limits = JsonLimits(max_array_items=3)
    assert accepted(b'{"a":[1,2,3]}', limits) == {"a": [1, 2, 3]}
    error = refused(b'{"a":[1,2,3,4]}', limits)
    assert (error.reason, error.pointer) == ("json_array_too_long", "/a")


def test_default_array_limit() -> None:
    ok = json.dumps([0] * 10_000).encode()
    assert accepted(ok) == [0] * 10_000
    assert refused(json.dumps([0] * 10_001).encode()).reason == "json_array_too_long"


# -------------------------------------------------------------------- json_too_many_keys


def test_object_keys_at_the_limit_and_one_past() -> None:
    limits = JsonLimits(max_object_keys=2)
    assert accepted(b'[{"a":1,"b":2}]', limits) == [{"a": 1, "b": 2}]
    error = refused(b'[{"a":1,"b":2,"c":3}]', limits)
    assert (error.reason, error.pointer) == ("json_too_many_keys", "/0")


def test_default_key_limit() -> None:
    ok = {f"k{i}": i for i in range(1000)}
    assert accepted(json.dumps(ok).encode()) == ok
    too_many = json.dumps({f"k{i}": i for i in range(1001)}).encode()
    assert refused(too_many).reason == "json_too_many_keys"


# -------------------------------------------------------------------- json_duplicate_key


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b'{"a":1,"a":2}', "/a"),
        (b'{"a":1,"a":1}', "/a"),
        (b'{"a":1,"\\u0061":2}', "/a"),  # collide only after unescaping
        (b'{"x":[{"b":1,"c":2,"b":3}]}', "/x/0/b"),
        (b'{"\\u003a":1,"\\u003a":2}', "/:"),  # hides the colon the fast check counts
        (b'{"a":{"k":"v:w"},"a":{"k":"\\u003a\\u003a"}}', "/a"),
        (b'{"a":"\\u003a","a":"\\u003A"}', "/a"),
        (b'{"a/b":1,"a/b":2}', "/a~1b"),
        (b'{"\\ud83d\\ude00":1,"\xf0\x9f\x98\x80":2}', "/\U0001f600"),
    ],
)
def test_duplicate_keys_are_refused(body: bytes, pointer: str) -> None:
    error = refused(body)
    assert (error.reason, error.pointer) == ("json_duplicate_key", pointer)


def test_duplicate_with_whitespace_and_nested_drops() -> None:
    body = b'{ "a" : { "x" : 1 } , "b" : 2 , "a" : 3 }'
    assert refused(body).reason == "json_duplicate_key"


# -------------------------------------------------------------------- json_invalid_utf8


@pytest.mark.parametrize(
    "body",
    [
        b'"\xff"',
        b'"\xc0\xaf"',  # overlong '/'
        b'"\xe0\x80\xaf"',  # overlong, 3 bytes
        b'"\xed\xa0\x80"',  # an encoded surrogate (CESU-8)
        b'"\xf4\x90\x80\x80"',  # beyond U+10FFFF
        b'"\xc3"',  # truncated sequence
        b"\xef\xbb\xbf{}",  # a BOM
        b"\xff\xfe{\x00}\x00",  # UTF-16
    ],
)
def test_invalid_utf8_is_refused(body: bytes) -> None:
    error = refused(body)
    assert error.reason == "json_invalid_utf8" and error.offset is not None


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b'"\\ud800"', ""),
        (b'"\\udc00"', ""),
        (b'["\\ud800\\u0041"]', "/0"),
        (b'{"a":{"\\ude00":1}}', "/a"),  # a lone surrogate key: the pointer stops before it
        (b'{"k":"\\ud83d"}', "/k"),
    ],
)
def test_lone_surrogates_are_refused(body: bytes, pointer: str) -> None:
    error = refused(body)
    assert (error.reason, error.pointer) == ("json_invalid_utf8", pointer)


# -------------------------------------------------------------------- json_number_invalid


@pytest.mark.parametrize(
    "body",
    [
        b"1e400",
        b"-1e400",
        b"1e-400",
        b"0e999",
        b"1E+309",
        b"[NaN]",
        b"Infinity",
        b"-Infinity",
        b"1" + b"0" * 20,  # 21 digits
        b"-" + b"9" * 21,
        b"1" * 5000,  # beyond CPython's int-string limit
        b"0." + b"0" * 400 + b"1",  # underflows to zero without an exponent
        b"1" * 400 + b".5",  # overflows without an exponent
        b"4e-320",  # subnormal
        b"1." + b"1" * 40,  # 41 significand digits
        b"1e0000001000",
        b'{"amount":1e99999999999999999999}',
    ],
)
def test_absurd_numbers_are_refused(body: bytes) -> None:
    assert refused(body).reason == "json_number_invalid"


def test_number_pointer_and_no_echo() -> None:
    error = refused(b'{"p":[{"n":12345678901234567890123}]}')
    assert (error.reason, error.pointer) == ("json_number_invalid", "/p/0/n")
    assert "12345678901234567890123" not in str(error)


def test_number_caps_are_configurable() -> None:
    limits = JsonLimits(max_int_digits=3, max_exponent=5, max_number_digits=4)
    assert accepted(b"[999, -999, 1e5, 1.234]", limits) == [999, -999, 1e5, 1.234]
    for body in (b"[1000]", b"[-1000]", b"[1e6]", b"[1.2345]"):
        assert refused(body, limits).reason == "json_number_invalid"


# -------------------------------------------------------------------- errors and limits


def test_every_rule_has_its_own_code() -> None:
    codes = {
        "body_not_json",
        "json_invalid_utf8",
        "json_too_deep",
        "json_string_too_long",
        "json_array_too_long",
        "json_too_many_keys",
        "json_duplicate_key",
        "json_number_invalid",
    }
    assert all(REASONS[code].status == 400 for code in codes)
    assert REASONS["body_too_large"].status == 413


def test_pointer_escapes_and_skips_odd_keys() -> None:
    error = refused(b'{"a~b/c":{"d":"\\ud800"}}')
    assert error.pointer == "/a~0b~1c/d"
    error = refused(b'{"line\\nbreak":{"d":"\\ud800"}}')
    assert error.pointer == ""


@pytest.mark.parametrize(
    "kwargs",
    [{"max_depth": 0}, {"max_depth": 257}, {"max_body_bytes": -1}, {"max_int_digits": 5000},
     {"max_array_items": True}],
)  # fmt: skip
def test_limits_are_validated(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        JsonLimits(**kwargs)


def test_limits_are_frozen() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_LIMITS.max_depth = 1  # type: ignore[misc]


# -------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    "value",
    ["0", "-0", "123.45", "0.05", "999999999999999", "99999999999999.9", "0.000000000000001",
     "1.00000000000000", 0, 12345, -12345, 123.45, 0.1, 1e15 - 1, Decimal("12.30"),
     Decimal("1E+2"), 100.0],
)  # fmt: skip
def test_sane_amounts(value: object) -> None:
    assert check_amount(value)


@pytest.mark.parametrize(
    "value",
    ["1234567890123456", "1.234567890123456", "0.1234567890123456", "1E+2", "1e2", "+1", "01",
     "1.", ".5", " 1", "1 ", "", "-", "NaN", "Infinity", "١٢٣", "1_000", "0x10", "1,5",
     True, False, None, 1234567890123456, 2**70, 0.1 + 0.2, 1e16, float("nan"), float("inf"),
     Decimal("NaN"), Decimal("1E+100000000"), Decimal("1E-100000000"), "9" * 100, [1], b"1"],
)  # fmt: skip
def test_absurd_amounts(value: object) -> None:
    assert not check_amount(value)


def test_amount_digit_cap_is_configurable() -> None:
    assert check_amount("123.45", max_significant_digits=5)
    assert not check_amount("123.456", max_significant_digits=5)
