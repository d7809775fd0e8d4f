"""Hardened JSON parsing, enforced before schema validation (issue 6, part 2).

``parse_json(body, limits)`` turns a request body into Python values, or raises
``JsonGuardError`` with a stable reason code, a JSON pointer to the problem and a
detail that never echoes the offending value. The rules and their codes (all 400
except ``body_too_large``, 413):

- ``body_too_large``: the body is longer than ``max_body_bytes``; checked first.
- ``body_not_json``: not one RFC 8259 JSON text (syntax, empty body, trailing data).
- ``json_invalid_utf8``: invalid UTF-8 (overlong forms, encoded surrogates, stray
  bytes), a lone surrogate escape (``"\\ud800"``), or a byte order mark.
- ``json_too_deep``: more than ``max_depth`` nested arrays and objects.
- ``json_string_too_long``: a string or key longer than ``max_string_length``
  characters, counted after unescaping.
- ``json_array_too_long``: more than ``max_array_items`` items in one array.
- ``json_too_many_keys``: more than ``max_object_keys`` members in one object.
- ``json_duplicate_key``: a key twice in one object, compared after unescaping
  (``"a"`` and ``"\\u0061"`` collide).
- ``json_number_invalid``: ``NaN``/``Infinity``; an integer of more than
  ``max_int_digits`` digits; a significand of more than ``max_number_digits`` digits;
  an exponent beyond +-``max_exponent``; a value that overflows a double, or a non-zero
  literal that underflows to zero or to a subnormal.

When a body breaks several rules, which code is reported is deterministic but not
specified. ``-0`` and ``1E+2`` are valid JSON and accepted (``0`` and ``100.0``);
``+1``, ``01``, ``.5`` and ``1.`` are not JSON. Integers come back as exact ``int``,
other numbers as ``float``. ``check_amount(value)`` is the amount rule for the schema
layer: plain decimal notation and at most 15 significant digits.

Design, chosen by measurement (``bench/bench_json_guard.py``)
---------------------------------------------------------------
Median µs per body, CPython 3.11, orjson 3.13, the shared bench machine. The bodies are
Berlin Group bulk payments (``bulkPaymentInitiation_json``) with 4 payments (2.1 KB) and
190 payments (94 KB), with IBANs, string amounts, escaped quotes and non-ASCII names::

    candidate                                        2.1 KB     94 KB
    orjson.loads, no checks (the floor)                 3.7       161
    json.loads (stdlib), no checks                     10.2       376
    stdlib + pairs hook + parse_constant               14.5       605   dups/NaN only
    orjson + full tree walk (no duplicate check)       11.6       484
    reference path (stdlib + hooks, every rule)       99.9      4596
    parse_json (chosen: orjson + checks below)         13.3       613   every rule

orjson already refuses invalid UTF-8, lone surrogates, a BOM, ``NaN``/``Infinity``,
numbers that overflow a double and nesting beyond 1024. It silently keeps the *last*
of duplicate keys, turns integers beyond 64 bits into floats and underflows
``1e-400`` to ``0.0``. Hence two paths:

- **Fast path**, every body: ``orjson.loads``, then one walk over the containers of the
  tree (depth, array and object sizes; string lengths only when the body is longer than
  the string cap, since no string is longer than the body) and C-level checks for
  duplicates. A JSON text has one ``:`` per object member plus the colons inside strings,
  and an escape can hide a colon (``\\u003a``) but never add one. So when the body has
  no ``\\u003a`` escape, ``body.count(b":") == orjson.dumps(value).count(b":")`` holds
  exactly when no member was dropped, i.e. no object had a duplicate key. Integers that
  orjson returns are exact and at most 20 digits, so only floats need their literal.
- **Reference path**, only when orjson refuses the body, the tree holds a float, a cap
  is broken, or the colon counts differ: strict UTF-8 decoding, a bounded string-aware
  bracket scan for depth (the stdlib parser is recursive), then the stdlib parser with
  hooks that keep every member and every number literal, and one walk applying every
  rule with its JSON pointer. It is the specification: the fast path only answers
  where the reference path accepts, with the same value (Hypothesis tests check it).

Known cost: a body with a float (open-banking APIs send amounts as strings) or a
refused body takes the reference path, about 7x orjson+walk (~5 ms for 100 KB).

No JSON parser is hand-written here: the bracket scan only counts nesting.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from finward.errors import FinwardError, get_reason

__all__ = [
    "DEFAULT_LIMITS",
    "JsonGuardError",
    "JsonLimits",
    "check_amount",
    "parse_json",
    "parse_json_reference",
]

_BOM = b"\xef\xbb\xbf"
_MAX_DEPTH_CEILING = 256  # the reference path recurses once per level
_FLOAT_MIN_NORMAL = sys.float_info.min


@dataclass(frozen=True, slots=True)
class JsonLimits:
    """Caps applied to a JSON body. Defaults suit open-banking request bodies."""

    max_body_bytes: int = 1_048_576
    max_depth: int = 32
    max_string_length: int = 65_536
    max_array_items: int = 10_000
    max_object_keys: int = 1_000
    max_int_digits: int = 20  # 2**64 has 20 digits; nothing upstream stores more exactly
    max_number_digits: int = 40  # significand digits of a non-integer literal
    max_exponent: int = 308

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_depth",
            "max_string_length",
            "max_array_items",
            "max_object_keys",
            "max_int_digits",
            "max_number_digits",
            "max_exponent",
        ):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"JsonLimits.{name} must be a positive integer")
        if self.max_depth > _MAX_DEPTH_CEILING:
            raise ValueError(f"JsonLimits.max_depth must be at most {_MAX_DEPTH_CEILING}")
        if self.max_int_digits > 4300 or self.max_number_digits > 4300:
            raise ValueError("JsonLimits digit caps must be at most 4300 (CPython's int limit)")


DEFAULT_LIMITS = JsonLimits()


class JsonGuardError(FinwardError):
    """A body refused by a parser-hardening rule.

    ``pointer`` is an RFC 6901 JSON pointer to the value at fault ("" is the whole body;
    it stops at the last key that is short and printable). ``offset`` is the byte offset
    for problems found before there is a tree (encoding, syntax). ``detail`` names the
    rule and the limit, never the value.
    """

    def __init__(
        self, reason: str, detail: str, pointer: str = "", offset: int | None = None
    ) -> None:
        self.reason = reason
        self.status = get_reason(reason).status
        self.detail = detail
        self.pointer = pointer
        self.offset = offset
        super().__init__(f"{reason} at {pointer or '/'}: {detail}")


# --------------------------------------------------------------------------- pointers


def _pointer(path: list[str | int]) -> str:
    out = []
    for seg in path:
        if isinstance(seg, int):
            out.append(str(seg))
            continue
        if len(seg) > 64 or not seg.isprintable():
            break  # never echo a long or odd key; point at its object instead
        out.append(seg.replace("~", "~0").replace("/", "~1"))
    return "".join("/" + s for s in out)


class _Fail(Exception):
    """Internal: a rule broken inside the tree; the path is filled in while unwinding."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        self.path: list[str | int] = []

    def error(self) -> JsonGuardError:
        self.path.reverse()
        return JsonGuardError(self.reason, self.detail, _pointer(self.path))


# --------------------------------------------------------------------------- fast path

_COLON_ESCAPE = re.compile(rb"\\u003[aA]")


def parse_json(body: bytes, limits: JsonLimits = DEFAULT_LIMITS) -> Any:
    """Parse a JSON request body under ``limits``; raise ``JsonGuardError`` if refused."""
    size = len(body)
    if size > limits.max_body_bytes:
        raise JsonGuardError(
            "body_too_large", f"the body is longer than {limits.max_body_bytes} bytes"
        )
    if body[:3] == _BOM:
        raise JsonGuardError("json_invalid_utf8", "a byte order mark is not allowed", "", 0)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        _reference(body, limits, structure_checked=False)
        raise JsonGuardError("body_not_json", "the body is not valid JSON") from None
    # A string is never longer than the body: skip string checks on small bodies.
    max_str = limits.max_string_length if size > limits.max_string_length else sys.maxsize
    int_bound = 10**limits.max_int_digits if limits.max_int_digits < 20 else 0
    kind = type(value)
    try:
        if kind is dict or kind is list:
            suspect = _scan(value, 1, limits, max_str, int_bound)
        elif kind is str:
            suspect = False
            if len(value) > max_str:
                raise _Fail("json_string_too_long", "")
        else:
            suspect = _suspect_number(value, int_bound)
    except _Fail:
        # Broken cap: the reference path finds it again, with its JSON pointer.
        _reference(body, limits, structure_checked=False)
        raise JsonGuardError("body_not_json", "the body is not valid JSON") from None
    colons = body.count(b":")
    if (
        suspect
        or (colons and orjson.dumps(value).count(b":") != colons)
        or (colons and b"\\" in body and _COLON_ESCAPE.search(body) is not None)
    ):
        return _reference(body, limits, structure_checked=True)
    return value


def _suspect_number(value: Any, int_bound: int) -> bool:
    """Floats need their literal (exponent, digits, underflow): the reference path."""
    kind = type(value)
    return kind is float or (kind is int and int_bound > 0 and not -int_bound < value < int_bound)


def _scan(
    node: dict[str, Any] | list[Any], depth: int, limits: JsonLimits, max_str: int, int_bound: int
) -> bool:
    """Caps on an orjson tree, without locating (keys are unique there already).

    Returns True when the tree has a number that only the reference path can judge.
    """
    if depth > limits.max_depth:
        raise _Fail("json_too_deep", "")
    items: Any
    if type(node) is dict:
        if len(node) > limits.max_object_keys:
            raise _Fail("json_too_many_keys", "")
        if max_str != sys.maxsize:
            for key in node:
                if len(key) > max_str:
                    raise _Fail("json_string_too_long", "")
        items = node.values()
    else:
        if len(node) > limits.max_array_items:
            raise _Fail("json_array_too_long", "")
        items = node
    suspect = False
    for item in items:
        kind = type(item)
        if kind is dict or kind is list:
            if _scan(item, depth + 1, limits, max_str, int_bound):
                suspect = True
        elif kind is str:
            if len(item) > max_str:
                raise _Fail("json_string_too_long", "")
        elif kind is float or (int_bound and kind is int and not -int_bound < item < int_bound):
            suspect = True
    return suspect


# --------------------------------------------------------------------------- reference path


class _Pairs(list[tuple[str, Any]]):
    """An object as the stdlib parser saw it: every member, duplicates included."""


class _Number:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class _Constant:
    __slots__ = ()

    def __init__(self, text: str) -> None:
        pass


_REFERENCE_DECODER = json.JSONDecoder(
    object_pairs_hook=_Pairs, parse_float=_Number, parse_int=_Number, parse_constant=_Constant
)
# Strings (an unterminated one runs to the end, so the scan stays linear) and structure.
_SCAN = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)|[\[\]{},:]', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMBER = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?(?:[eE]([-+]?)([0-9]+))?", re.ASCII)


def parse_json_reference(body: bytes, limits: JsonLimits = DEFAULT_LIMITS) -> Any:
    """The slow, obviously-correct path: every rule, from the stdlib parser.

    ``parse_json`` must agree with it on what is accepted and on the values; use it in
    tests and when in doubt, never on the hot path.
    """
    if len(body) > limits.max_body_bytes:
        raise JsonGuardError(
            "body_too_large", f"the body is longer than {limits.max_body_bytes} bytes"
        )
    if body[:3] == _BOM:
        raise JsonGuardError("json_invalid_utf8", "a byte order mark is not allowed", "", 0)
    return _reference(body, limits, structure_checked=False)


def _reference(body: bytes, limits: JsonLimits, *, structure_checked: bool) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonGuardError(
            "json_invalid_utf8", "the body is not valid UTF-8", "", exc.start
        ) from None
    if not structure_checked:
        _scan_depth(text, limits)
    try:
        tree = _REFERENCE_DECODER.decode(text)
    except json.JSONDecodeError as exc:
        offset = len(text[: exc.pos].encode("utf-8", "surrogatepass"))
        raise JsonGuardError("body_not_json", "the body is not valid JSON", "", offset) from None
    except RecursionError:  # pragma: no cover - the depth scan runs first
        raise JsonGuardError("json_too_deep", "nesting is too deep") from None
    try:
        return _build(tree, 0, limits)
    except _Fail as fail:
        raise fail.error() from None


def _scan_depth(text: str, limits: JsonLimits) -> None:
    """Refuse nesting beyond ``max_depth`` before the recursive stdlib parser sees it.

    Counts brackets outside strings and tracks, per open container, the current key or
    index, so the error can point at the container that is one level too deep. On text
    that is not JSON the scan stops at the first mismatch and leaves the verdict to the
    parser.
    """
    stack: list[list[Any]] = []  # [is_object, current key token, current index]
    last_string = ""
    for match in _SCAN.finditer(text):
        token = match.group()
        char = token[0]
        if char == '"':
            last_string = token
        elif char == "[" or char == "{":
            if len(stack) >= limits.max_depth:
                raise JsonGuardError(
                    "json_too_deep",
                    f"nesting is deeper than {limits.max_depth} levels",
                    _pointer(list(_scan_path(stack))),
                    len(text[: match.start()].encode("utf-8", "surrogatepass")),
                )
            stack.append([char == "{", None, 0])
        elif char == "]" or char == "}":
            if not stack or stack[-1][0] != (char == "}"):
                return
            stack.pop()
        elif char == ":":
            if stack and stack[-1][0]:
                stack[-1][1] = last_string
        elif stack and not stack[-1][0]:  # ',' in an array
            stack[-1][2] += 1


def _scan_path(stack: list[list[Any]]) -> Iterator[str | int]:
    for is_object, key_token, index in stack:
        if not is_object:
            yield index
            continue
        try:
            key = json.loads(key_token) if key_token else None
        except ValueError:
            key = None
        if not isinstance(key, str):
            return
        yield key


def _build(node: Any, depth: int, limits: JsonLimits) -> Any:
    kind = type(node)
    if kind is str:
        _check_string(node, limits)
        return node
    if kind is _Number:
        return _number(node.text, limits)
    if kind is _Pairs:
        if depth >= limits.max_depth:
            raise _Fail("json_too_deep", f"nesting is deeper than {limits.max_depth} levels")
        if len(node) > limits.max_object_keys:
            raise _Fail("json_too_many_keys", f"more than {limits.max_object_keys} members")
        result: dict[str, Any] = {}
        for key, item in node:
            _check_string(key, limits)  # a bad key: point at its object, not at it
            try:
                if key in result:
                    raise _Fail("json_duplicate_key", "the object has this key twice")
                result[key] = _build(item, depth + 1, limits)
            except _Fail as fail:
                fail.path.append(key)
                raise
        return result
    if kind is list:
        if depth >= limits.max_depth:
            raise _Fail("json_too_deep", f"nesting is deeper than {limits.max_depth} levels")
        if len(node) > limits.max_array_items:
            raise _Fail("json_array_too_long", f"more than {limits.max_array_items} items")
        items = []
        for index, item in enumerate(node):
            try:
                items.append(_build(item, depth + 1, limits))
            except _Fail as fail:
                fail.path.append(index)
                raise
        return items
    if kind is _Constant:
        raise _Fail("json_number_invalid", "NaN and Infinity are not JSON numbers")
    return node  # True, False, None


def _check_string(text: str, limits: JsonLimits) -> None:
    if len(text) > limits.max_string_length:
        raise _Fail("json_string_too_long", f"longer than {limits.max_string_length} characters")
    if not text.isascii() and _SURROGATE.search(text) is not None:
        raise _Fail("json_invalid_utf8", "a lone surrogate escape is not a character")


def _number(text: str, limits: JsonLimits) -> int | float:
    match = _NUMBER.fullmatch(text)
    if match is None:  # pragma: no cover - the stdlib grammar already holds
        raise _Fail("json_number_invalid", "not a JSON number")
    whole, fraction, _sign, exponent = match.groups()
    if fraction is None and exponent is None:
        if len(whole) > limits.max_int_digits:
            raise _Fail(
                "json_number_invalid", f"an integer has more than {limits.max_int_digits} digits"
            )
        return int(text)
    if len(whole) + len(fraction or "") > limits.max_number_digits:
        raise _Fail(
            "json_number_invalid", f"a number has more than {limits.max_number_digits} digits"
        )
    if exponent is not None:
        exponent = exponent.lstrip("0")
        if len(exponent) > 6 or int(exponent or "0") > limits.max_exponent:
            raise _Fail("json_number_invalid", f"an exponent is beyond +-{limits.max_exponent}")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Fail("json_number_invalid", "the number is too large for a double")
    if abs(value) < _FLOAT_MIN_NORMAL and (whole + (fraction or "")).strip("0"):
        raise _Fail("json_number_invalid", "the number underflows a double")
    return value


# --------------------------------------------------------------------------- amounts

_AMOUNT = re.compile(r"-?(0|[1-9][0-9]*)(?:\.([0-9]+))?", re.ASCII)
_AMOUNT_MAX_TEXT = 64


def check_amount(value: object, *, max_significant_digits: int = 15) -> bool:
    """Whether ``value`` is a sane amount: plain decimal notation, finite, and at most
    ``max_significant_digits`` significant digits (15 by default: every such decimal
    survives a round trip through an IEEE double, so no upstream rounds it).

    Accepts a decimal string (``"123.45"``, ``"-0.5"``), an ``int``, a ``float`` (judged
    by its shortest repr) or a ``Decimal``. Refuses ``bool``, exponents (``"1E+2"``), a
    leading ``+`` or zeros (``"+1"``, ``"01"``), ``"1."``, ``".5"``, whitespace, NaN and
    infinities. Significant digits run from the first non-zero digit to the last digit
    written, so ``"0.050"`` has 2 and ``"100"`` has 3. ``"-0"`` is accepted (the schema
    decides about signs). Never raises.
    """
    text: str
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        if value.bit_length() > 64:
            return False
        text = str(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return False
        text = repr(value)
        if text.endswith(".0"):
            text = text[:-2]
    elif isinstance(value, Decimal):
        if not value.is_finite() or abs(value.adjusted()) > _AMOUNT_MAX_TEXT:
            return False
        text = format(value, "f")
    elif isinstance(value, str):
        text = value
    else:
        return False
    if len(text) > _AMOUNT_MAX_TEXT:
        return False
    match = _AMOUNT.fullmatch(text)
    if match is None:
        return False
    digits = (match.group(1) + (match.group(2) or "")).lstrip("0")
    return len(digits) <= max_significant_digits
