"""Hypothesis: values within limits round-trip, random bytes only ever raise
JsonGuardError, and the fast path accepts exactly what the reference path accepts."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from finward.validation.json_guard import (
    JsonGuardError,
    JsonLimits,
    parse_json,
    parse_json_reference,
)

LIMITS = JsonLimits(max_depth=6, max_string_length=40, max_array_items=8, max_object_keys=8)

_finite = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda x: x == 0 or abs(x) >= 2.2250738585072014e-308
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20) + 1, max_value=10**20 - 1)
    | _finite
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=40), inner, max_size=8)
    ),
    max_leaves=40,
)


def _encodings(value: Any) -> list[bytes]:
    return [
        json.dumps(value).encode(),  # ASCII with \\u escapes, spaces
        json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        ),
        json.dumps(value, indent=2).encode(),
    ]


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES)
def test_values_within_limits_round_trip(value: Any) -> None:
    text_ok = all(
        not any(0xD800 <= ord(c) <= 0xDFFF for c in s) for s in _strings(value)
    )  # hypothesis text may hold lone surrogates: those must be refused instead
    for body in _encodings(value):
        if _depth(value) <= LIMITS.max_depth and text_ok:
            assert _same(parse_json(body, LIMITS), value)
            assert _same(parse_json_reference(body, LIMITS), value)
        else:
            _agree(body)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return list(value) + [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _agree(body: bytes, limits: JsonLimits = LIMITS) -> None:
    """Both paths accept with the same value, or both refuse with JsonGuardError."""
    outcomes = []
    for parse in (parse_json, parse_json_reference):
        try:
            outcomes.append(("ok", parse(body, limits)))
        except JsonGuardError as error:
            assert error.detail and error.status in (400, 413)
            outcomes.append(("refused", None))
    (fast_kind, fast_value), (ref_kind, ref_value) = outcomes
    assert fast_kind == ref_kind, body
    assert _same(fast_value, ref_value)


@settings(max_examples=1500)
@given(st.binary(max_size=200))
@example(b'{"a":1,"a":2}')
@example(b"[" * 2000)
@example(b'"\\ud800')
@example(b'"' + b'\\"' * 50)
def test_random_bytes_only_raise_the_module_error(body: bytes) -> None:
    _agree(body)


_JSONISH = st.text(alphabet='{}[]:,"\\u0aeE+-.19 tfnl\x00\xe9\ud800', max_size=80)


@settings(max_examples=1500)
@given(_JSONISH)
@example('{"\\u003a":1,"\\u003a":2}')
@example('{"a":{"b":[1e5,0.0]},"a":"x"}')
def test_json_shaped_noise_agrees(text: str) -> None:
    _agree(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=500)
@given(JSON_VALUES, st.data())
def test_duplicated_members_are_always_found(value: Any, data: st.DataObject) -> None:
    """Splice a repeated key into a valid document's first object."""
    body = json.dumps({"k": value, "z": 1}).encode()
    key = data.draw(st.sampled_from(['"k"', '"\\u006b"', '"z"']))
    spliced = body[:-1] + b"," + key.encode() + b":" + json.dumps(value).encode() + b"}"
    for parse in (parse_json, parse_json_reference):
        try:
            parse(spliced, JsonLimits())
        except JsonGuardError as error:
            assert error.reason in ("json_duplicate_key", "json_too_deep", "json_invalid_utf8")
        else:
            raise AssertionError("duplicate accepted")


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=40), st.integers(min_value=1, max_value=40))
def test_depth_limit_is_exact(depth: int, limit: int) -> None:
    limits = JsonLimits(max_depth=limit)
    body = b'{"a":' * depth + b"1" + b"}" * depth
    if depth <= limit:
        assert parse_json(body, limits) is not None
    else:
        try:
            parse_json(body, limits)
        except JsonGuardError as error:
            assert error.reason == "json_too_deep"
            assert error.pointer == "/a" * limit
        else:
            raise AssertionError("too deep accepted")
