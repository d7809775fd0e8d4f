"""Turn JSON Schema validation errors into finward problems.

jsonschema's own messages quote whole instances (``{'token': 'abc…'} is not of type
'string'``), which would put secrets and walls of text into a terminal. Each keyword
used in schema.json gets its own short message; values are quoted only where they are
scalars and the location is not secret.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from finward.config.problems import Location, Problem, location_sort_key, shorten

IsSecret = Callable[[Location], bool]

_KINDS: dict[str, str] = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def collect_schema_problems(
    document: Any, schema: Mapping[str, Any], is_secret: IsSecret
) -> list[Problem]:
    """Every schema violation in ``document``, sorted by location."""
    validator = Draft202012Validator(schema)
    problems: list[Problem] = []
    for error in validator.iter_errors(document):
        problems.extend(_problems_for(error, is_secret))
    # One problem per location and text: `required` errors come once per missing key.
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda problem: location_sort_key(problem.location))


def _problems_for(error: ValidationError, is_secret: IsSecret) -> Iterator[Problem]:
    location: Location = tuple(error.absolute_path)
    keyword = error.validator
    value = error.validator_value
    instance = error.instance
    if "propertyNames" in error.schema_path:
        # Raised against the key itself; point at it.
        yield Problem(
            (*location, str(instance)),
            f"{shorten(str(instance))!r} is not a valid name",
            _hint(error.schema),
        )
        return
    if keyword == "additionalProperties" and isinstance(instance, dict):
        known = sorted(error.schema.get("properties", {}))
        for key in instance:
            if key not in known:
                yield Problem((*location, str(key)), "unknown key", _did_you_mean(str(key), known))
        return
    if keyword == "required" and isinstance(instance, dict):
        for key in value:
            if key not in instance:
                yield Problem((*location, key), "required key is missing")
        return
    shown = None if is_secret(location) else _show_scalar(instance)
    subject = shown if shown is not None else "the value"
    if keyword == "type":
        yield _type_problem(location, value, instance, shown)
    elif keyword == "enum":
        choices = ", ".join(repr(choice) for choice in value)
        close = difflib.get_close_matches(str(instance), [str(c) for c in value], n=1)
        hint = f"did you mean {close[0]!r}?" if close and shown else None
        yield Problem(location, f"{subject} is not one of {choices}", hint)
    elif keyword == "const":
        yield Problem(
            location, f"{subject} is not supported", f"this finward reads version {value!r}"
        )
    elif keyword == "minimum":
        yield Problem(location, f"{subject} is less than the minimum of {value}")
    elif keyword == "maximum":
        yield Problem(location, f"{subject} is greater than the maximum of {value}")
    elif keyword == "exclusiveMinimum":
        yield Problem(location, f"{subject} must be greater than {value}")
    elif keyword == "minLength":
        message = "must not be empty" if value == 1 else f"must be at least {value} characters"
        yield Problem(location, message)
    elif keyword == "maxLength":
        yield Problem(location, f"is longer than {value} characters")
    elif keyword == "pattern":
        yield Problem(location, f"{subject} is not valid", _hint(error.schema))
    else:  # a keyword added to schema.json without a formatter above
        yield Problem(location, error.message if shown is not None else "invalid value")


def _type_problem(location: Location, expected: Any, instance: Any, shown: str | None) -> Problem:
    types = [expected] if isinstance(expected, str) else list(expected)
    wanted = " or ".join(_KINDS.get(t, t) for t in types)
    got = _kind_of(instance)
    hint = None
    if "string" in types and isinstance(instance, bool | int | float):
        hint = "quote the value to make it a string"
    elif isinstance(instance, str) and {"integer", "number"} & set(types) and shown:
        hint = "remove the quotes" if _looks_numeric(instance) else None
    elif instance is None and "object" in types:
        hint = "remove the key, or give it settings"
    return Problem(location, f"expected {wanted}, got {got}", hint)


def _kind_of(instance: Any) -> str:
    if instance is None:
        return "null (an empty value)"
    if isinstance(instance, bool):
        return "a boolean"
    for python_type, kind in ((dict, "object"), (list, "array"), (str, "string")):
        if isinstance(instance, python_type):
            return _KINDS[kind]
    if isinstance(instance, int):
        return _KINDS["integer"]
    if isinstance(instance, float):
        return _KINDS["number"]
    return f"a {type(instance).__name__}"  # e.g. a date: YAML reads 2024-01-01 as one


def _show_scalar(instance: Any) -> str | None:
    if isinstance(instance, str):
        return repr(shorten(instance))
    if isinstance(instance, bool | int | float) or instance is None:
        return repr(instance)
    return None


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _hint(schema: Mapping[str, Any]) -> str | None:
    hint = schema.get("x-hint")
    return f"use {hint}" if isinstance(hint, str) else None


def _did_you_mean(word: str, choices: list[str]) -> str | None:
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if matches:
        return f"did you mean {matches[0]!r}?"
    return f"allowed: {', '.join(choices)}" if choices else None


def coerce_substituted(
    document: Any, locations: frozenset[Location], schema: Mapping[str, Any]
) -> Any:
    """Give env-substituted strings the type the schema expects at their location.

    ``port: ${PORT}`` substitutes the string "8080"; the schema wants an integer. Only
    substituted locations are touched, and only when the schema does not accept a
    string there, so a token of digits stays a string. An empty result becomes null
    where null is allowed: ``client_cert_header: ${HEADER:-}`` means "unset".
    """
    for location in locations:
        if not location:
            continue
        parent = _container_at(document, location[:-1])
        key = location[-1]
        if parent is None:
            continue
        current = parent[key]
        if not isinstance(current, str):
            continue
        types = _types_at(schema, location)
        if "string" in types and current != "":
            continue
        parent[key] = _convert(current, types)
    return document


def _convert(text: str, types: set[str]) -> Any:
    if text == "" and "null" in types:
        return None
    stripped = text.strip()
    if "integer" in types and stripped.lstrip("+-").isdigit() and stripped.isascii():
        return int(stripped)
    if "number" in types and _looks_numeric(stripped) and stripped.isascii():
        return float(stripped)
    if "boolean" in types and stripped.lower() in ("true", "false"):
        return stripped.lower() == "true"
    return text


def _container_at(document: Any, location: Location) -> Any:
    node = document
    for item in location:
        in_dict = isinstance(node, dict) and isinstance(item, str) and item in node
        in_list = isinstance(node, list) and isinstance(item, int) and item < len(node)
        if not (in_dict or in_list):
            return None
        node = node[item]
    return node if isinstance(node, dict | list) else None


def _types_at(schema: Mapping[str, Any], location: Location) -> set[str]:
    """The ``type`` (or enum/const value types) the schema declares at ``location``."""
    node: Mapping[str, Any] | None = _deref(schema, schema)
    for item in location:
        if node is None:
            return set()
        if isinstance(item, int):
            node = node.get("items")
        else:
            properties = node.get("properties", {})
            node = properties.get(item, node.get("additionalProperties"))
        node = _deref(schema, node) if isinstance(node, Mapping) else None
    if node is None:
        return set()
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {str(t) for t in declared}
    if "enum" in node or "const" in node:
        values = node.get("enum", [node.get("const")])
        return {"string" if isinstance(v, str) else "integer" for v in values}
    return set()


def _deref(root: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = root["$defs"][ref.removeprefix("#/$defs/")]
        return target if isinstance(target, Mapping) else node
    return node
