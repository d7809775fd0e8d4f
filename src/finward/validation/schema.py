"""OpenAPI Schema Objects -> compiled JSON Schema validators (issue 6, item 1).

Engine: ``jsonschema-rs`` (Rust, JSON Schema 2020-12), chosen by measurement. Validating a
Berlin Group SEPA payment-initiation body (``paymentInitiation_json`` behind the spec's
``anyOf`` of single / periodic / bulk, strict mode, resolved from the shared 1.3.6 spec;
``bench/bench_validation.py``, median of interleaved rounds, CPython 3.11, development machine):

=======================  ==========  ==========  ===========================================
engine                   valid body  bad IBAN    notes
=======================  ==========  ==========  ===========================================
jsonschema-rs 0.61.2     1.0 µs      1.1 µs      ``is_valid``; 2020-12; linear-time regex;
                                                 explaining a failure (``violations``) ~30 µs
fastjsonschema 2.22.3    4.5 µs      24 µs       draft-07 at most: no 3.1, no
                                                 ``unevaluatedProperties``; raises on error
jsonschema 4.26.0        94 µs       248 µs      pure Python (already a dependency)
=======================  ==========  ==========  ===========================================

(The figures are refreshed by the bench; see its output for the machine at hand.) Only
jsonschema-rs meets the 20 µs budget *and* speaks 2020-12 (OpenAPI 3.1). Its ``pattern``
keyword is compiled with the ``regex`` crate (``RegexOptions``): linear time, no
backtracking on attacker input. A schema with a pattern the crate cannot compile
(look-around, back-references: UK OB 4.0 writes ``^(?!\\s)(.*)(\\S)$``) is compiled with
``fancy-regex`` under a backtrack budget (``BACKTRACK_LIMIT``) instead; exceeding the
budget fails validation (fail closed), and ``CompiledSchema.backtracking`` says so.

What the conversion does (``to_json_schema``):

- **OpenAPI 3.0** (a superset/subset of JSON Schema draft 4/5):
  ``nullable: true`` next to ``type`` becomes ``type: [T, "null"]`` (and ``null`` joins an
  ``enum``); without ``type`` it has no effect (3.0.3 clarification). Boolean
  ``exclusiveMinimum``/``exclusiveMaximum`` become the numeric form. ``discriminator`` is an
  annotation: the ``oneOf``/``anyOf`` it sits beside carries the semantics, so it is dropped
  (as are ``example``, ``xml``, ``externalDocs``, ``deprecated``, descriptions and ``x-*``).
  ``readOnly`` properties leave ``required`` on requests (``writeOnly`` on responses).
- **OpenAPI 3.1**: already JSON Schema 2020-12; passed through (annotations kept).
- **Formats**: those in ``FORMAT_CHECKERS`` are checked (date, date-time, uuid, iban, bic,
  currency/iso-4217, country/iso-3166-alpha-2); other formats (``uri``, ``int32`` ...) are
  annotations, as JSON Schema 2020-12 says by default.
- **Strict mode** (mass assignment): an object schema with ``properties`` and no
  ``additionalProperties`` gets ``additionalProperties: false``; when it is a branch of an
  ``allOf`` (where that would refuse the sibling branches' properties) the ``allOf`` holder
  gets ``unevaluatedProperties: false`` instead.
- **Cycles**: the loader leaves ``{"$ref": "file:///…#/ptr"}`` on back-edges; each target
  is converted once into ``$defs`` and the ref rewritten to point there.

Errors are ``SchemaViolation(pointer, keyword, schema_pointer)``: the JSON pointer of the
offending instance location (for ``required``, of the missing member; for strict mode, of
the unknown member), the failed keyword, and where in the (converted) schema the rule
sits. The instance value is never included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import jsonschema_rs

from finward.openapi.model import RefResolver
from finward.validation.formats import FORMAT_CHECKERS

__all__ = [
    "BACKTRACK_LIMIT",
    "CHECKED_FORMATS",
    "CompiledSchema",
    "SchemaCompileError",
    "SchemaViolation",
    "compile_schema",
    "to_json_schema",
]

Direction = Literal["request", "response"]

# Backtracking steps allowed per match for look-around patterns (fancy-regex); over it,
# the value is refused.
BACKTRACK_LIMIT: Final = 10_000

DIALECT_2020_12: Final = "https://json-schema.org/draft/2020-12/schema"

# Format names as specs write them -> our checker. Aliases seen in the wild are mapped
# onto the canonical names; anything else is an annotation.
_FORMAT_ALIASES: Final[Mapping[str, str]] = {
    "iso4217": "currency",
    "currency-code": "currency",
    "iso3166": "country",
    "country-code": "country",
    "bicfi": "bic",
}
CHECKED_FORMATS: Final = frozenset(FORMAT_CHECKERS) | frozenset(_FORMAT_ALIASES)

# Keywords whose value is one subschema / a list of subschemas / a name->subschema map.
_SUB_ONE: Final = (
    "additionalProperties",
    "items",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "additionalItems",
)
_SUB_LIST: Final = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUB_MAP: Final = ("properties", "patternProperties", "dependentSchemas", "$defs", "definitions")

# OpenAPI 3.0 Schema Object keywords that are annotations only (or not JSON Schema).
_DROP_30: Final = frozenset(
    {
        "nullable",
        "discriminator",
        "readOnly",
        "writeOnly",
        "xml",
        "externalDocs",
        "example",
        "deprecated",
        "description",
        "title",
        "default",
    }
)


@dataclass(frozen=True, slots=True)
class SchemaViolation:
    """One failed rule: where (JSON pointer into the instance) and which keyword."""

    pointer: str
    keyword: str
    schema_pointer: str


class SchemaCompileError(ValueError):
    """The schema cannot be compiled (bad regex, unsupported construct)."""


def _escape(token: object) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def _pointer(parts: Iterable[object]) -> str:
    return "".join("/" + _escape(p) for p in parts)


class _Converter:
    def __init__(
        self,
        version: str,
        strict: bool,
        direction: Direction,
        resolver: RefResolver | None,
    ) -> None:
        self.is_30 = version == "3.0"
        self.strict = strict
        self.direction = direction
        self.resolver = resolver
        self.defs: dict[str, Any] = {}
        self.def_names: dict[str, str] = {}

    def ref(self, uri: str) -> str:
        name = self.def_names.get(uri)
        if name is None:
            if self.resolver is None:
                raise SchemaCompileError(f"unresolved $ref {uri!r} and no resolver given")
            name = f"r{len(self.def_names)}"
            self.def_names[uri] = name
            self.defs[name] = True  # placeholder while converting (cycles)
            self.defs[name] = self.convert(self.resolver.resolve_uri(uri), in_all_of=False)
        return f"#/$defs/{name}"

    def convert(self, node: Any, in_all_of: bool) -> Any:
        if not isinstance(node, Mapping):
            return node  # booleans (3.1) and anything malformed: the engine judges
        out: dict[str, Any] = {}
        for key, value in node.items():
            if not isinstance(key, str) or key.startswith("x-"):
                continue
            if self.is_30 and key in _DROP_30:
                continue
            if key == "$ref" and isinstance(value, str) and not value.startswith("#"):
                out[key] = self.ref(value)
            elif key in _SUB_ONE:
                out[key] = self.convert(value, False)
            elif key in _SUB_LIST and isinstance(value, list):
                out[key] = [self.convert(v, key == "allOf") for v in value]
            elif key in _SUB_MAP and isinstance(value, Mapping):
                out[key] = {k: self.convert(v, False) for k, v in value.items()}
            elif key == "format" and isinstance(value, str):
                fmt = _FORMAT_ALIASES.get(value, value)
                if fmt in FORMAT_CHECKERS:
                    out[key] = fmt
                elif not self.is_30:
                    out[key] = value  # 3.1: an annotation the engine ignores
            else:
                out[key] = value
        if self.is_30:
            self._openapi30(node, out)
        self._skip_read_write_only(node, out)
        if self.strict:
            self._strict(out, in_all_of)
        return out

    def _openapi30(self, node: Mapping[str, Any], out: dict[str, Any]) -> None:
        if node.get("nullable") is True and "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            if "null" not in types:
                out["type"] = [*types, "null"]
            if isinstance(out.get("enum"), list) and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        for bound in ("Minimum", "Maximum"):
            flag = out.get("exclusive" + bound)
            if isinstance(flag, bool):
                del out["exclusive" + bound]
                limit = out.get(bound.lower())
                if flag and limit is not None:
                    out["exclusive" + bound] = limit
                    del out[bound.lower()]

    def _skip_read_write_only(self, node: Mapping[str, Any], out: dict[str, Any]) -> None:
        props = node.get("properties")
        required = out.get("required")
        if not isinstance(props, Mapping) or not isinstance(required, list):
            return
        skip = "readOnly" if self.direction == "request" else "writeOnly"
        kept = [
            r
            for r in required
            if not (isinstance(props.get(r), Mapping) and props[r].get(skip) is True)
        ]
        if len(kept) != len(required):
            out["required"] = kept

    def _strict(self, out: dict[str, Any], in_all_of: bool) -> None:
        open_keys = ("additionalProperties", "unevaluatedProperties", "patternProperties")
        if any(k in out for k in open_keys):
            return
        if isinstance(out.get("allOf"), list) and not in_all_of:
            out["unevaluatedProperties"] = False
        elif isinstance(out.get("properties"), Mapping) and not in_all_of:
            out["additionalProperties"] = False


def to_json_schema(
    schema: Mapping[str, Any] | bool,
    openapi_version: str,
    *,
    strict: bool = True,
    direction: Direction = "request",
    resolver: RefResolver | None = None,
) -> dict[str, Any]:
    """Convert a resolved Schema Object to a self-contained JSON Schema 2020-12 document."""
    conv = _Converter(openapi_version, strict, direction, resolver)
    root = conv.convert(schema, in_all_of=False)
    if isinstance(root, bool):
        root = {} if root else {"not": {}}
    result: dict[str, Any] = {"$schema": DIALECT_2020_12, **root}
    if conv.defs:
        result["$defs"] = {**result.get("$defs", {}), **conv.defs}
    return result


def _format_callables() -> dict[str, Callable[[str], bool]]:
    return dict(FORMAT_CHECKERS)


class CompiledSchema:
    """A compiled validator; ``is_valid`` is the hot path, ``violations`` explains."""

    __slots__ = ("_validator", "backtracking", "json_schema")

    def __init__(self, json_schema: dict[str, Any]) -> None:
        self.json_schema = json_schema
        self.backtracking = False
        try:
            self._validator = self._compile(jsonschema_rs.RegexOptions())
        except ValueError as exc:
            if "regex" not in str(exc):
                raise SchemaCompileError(str(exc).splitlines()[0]) from None
            self.backtracking = True
            self._validator = self._compile(
                jsonschema_rs.FancyRegexOptions(backtrack_limit=BACKTRACK_LIMIT)
            )

    def _compile(self, pattern_options: Any) -> Any:
        try:
            return jsonschema_rs.Draft202012Validator(
                self.json_schema,
                formats=_format_callables(),
                validate_formats=True,
                pattern_options=pattern_options,
            )
        except jsonschema_rs.ReferencingError as exc:
            raise SchemaCompileError(str(exc).splitlines()[0]) from None
        except ValueError as exc:
            if not isinstance(pattern_options, jsonschema_rs.RegexOptions):
                raise SchemaCompileError(str(exc).splitlines()[0]) from None
            raise

    def is_valid(self, instance: Any) -> bool:
        return bool(self._validator.is_valid(instance))

    def violations(self, instance: Any, limit: int = 10) -> list[SchemaViolation]:
        """The failed rules (at most ``limit``); empty when the instance is valid."""
        out: list[SchemaViolation] = []
        for violation in _explain(self._validator.iter_errors(instance)):
            out.append(violation)
            if len(out) >= limit:
                break
        return out


def _explain(errors: Iterable[Any]) -> Iterator[SchemaViolation]:
    for error in errors:
        kind = error.kind
        name = type(kind).__name__
        context = getattr(kind, "context", None)
        if name in ("AnyOf", "OneOfNotValid") and context:
            # Report the branch that came closest (fewest errors; first on a tie), like
            # jsonschema's best_match: "missing creditorName" beats "anyOf failed".
            best = min(context, key=len)
            if best:
                yield from _explain(best)
                continue
        path = list(error.instance_path)
        keyword = str(error.schema_path[-1]) if error.schema_path else ""
        if name == "Required":
            path.append(kind.property)
        elif name in ("AdditionalProperties", "UnevaluatedProperties"):
            for member in kind.unexpected:
                yield SchemaViolation(
                    _pointer([*path, member]), keyword, _pointer(error.schema_path)
                )
            continue
        yield SchemaViolation(_pointer(path), keyword, _pointer(error.schema_path))


def compile_schema(
    schema: Mapping[str, Any] | bool,
    openapi_version: str,
    *,
    strict: bool = True,
    direction: Direction = "request",
    resolver: RefResolver | None = None,
) -> CompiledSchema:
    """Convert (see ``to_json_schema``) and compile; raises ``SchemaCompileError``."""
    return CompiledSchema(
        to_json_schema(
            schema, openapi_version, strict=strict, direction=direction, resolver=resolver
        )
    )
