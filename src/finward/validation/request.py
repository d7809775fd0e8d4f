"""Per-operation request validation compiled from the spec (issue 6, item 1).

``compile_operation(op, openapi_version=...)`` is called once at load time and returns an
``OperationValidator``; nothing is compiled per request. Sans-IO: the caller hands in
already-split inputs (path parameters from the router, decoded query pairs in order,
headers, cookies, the media type and the body parsed by ``json_guard.parse_json``).

Parameters (OpenAPI 3.x "style values"), primitives, arrays and objects:

- path: ``simple`` (``1,2``), ``label`` (``.1.2`` / ``.1,2``), ``matrix`` (``;id=1;id=2`` /
  ``;id=1,2``);
- query: ``form`` (explode: repeated keys, object members as their own keys; not:
  ``1,2`` / ``a,1,b,2``), ``spaceDelimited``, ``pipeDelimited``, ``deepObject``
  (``id[a]=1``);
- header: ``simple``; cookie: ``form`` (``1,2`` when not exploded).

Values are coerced to the schema's type (integer, number, boolean; ``null`` for an
empty value of a nullable/"null"-typed schema) before validation; a value that does not
coerce stays a string and fails the schema's ``type`` rule. A primitive query parameter
given more than once is refused (``keyword="duplicate"``: HTTP parameter pollution, where
the gateway and the upstream could read different copies).

Bodies: the request's media type (parameters dropped, case-folded) is matched against
the declared ``content`` keys (exact, then ``type/*``, then ``*/*``); an undeclared one
is ``keyword="content-type"`` (the caller answers 415). JSON media types
(``application/json``, ``*/*+json``) are schema-validated; other declared types pass here
(form bodies: not yet).

Violations never carry the offending value: location, parameter name, JSON pointer,
keyword.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from finward.openapi.model import LoadedSpec, Operation, Parameter, RefResolver
from finward.validation.schema import (
    CompiledSchema,
    Direction,
    SchemaViolation,
    compile_schema,
)

__all__ = [
    "OperationValidator",
    "ParameterResult",
    "RequestViolation",
    "compile_operation",
    "compile_spec",
    "deserialise",
]

_INT: Final = re.compile(r"-?(?:0|[1-9][0-9]*)", re.ASCII)
_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", re.ASCII)
_JSON_SUFFIX: Final = "+json"


@dataclass(frozen=True, slots=True)
class RequestViolation:
    """One refused input: where (location, parameter name, JSON pointer) and which rule."""

    location: str  # 'path' | 'query' | 'header' | 'cookie' | 'body'
    name: str | None  # the parameter's name; None for the body
    pointer: str  # JSON pointer inside the parameter value or the body ('' = the whole)
    keyword: str  # 'required', 'type', 'pattern', 'format', 'duplicate', 'content-type', ...


@dataclass(frozen=True, slots=True)
class ParameterResult:
    """Deserialised, coerced values by location and name; ``violations`` empty when valid."""

    values: Mapping[str, Mapping[str, Any]]
    violations: tuple[RequestViolation, ...]

    @property
    def ok(self) -> bool:
        return not self.violations


# ---------------------------------------------------------------------------
# Coercion
# ---------------------------------------------------------------------------


def _types(schema: Mapping[str, Any] | None) -> tuple[str, ...]:
    if not isinstance(schema, Mapping):
        return ()
    declared = schema.get("type")
    if isinstance(declared, str):
        types: tuple[str, ...] = (declared,)
    elif isinstance(declared, list):
        types = tuple(t for t in declared if isinstance(t, str))
    else:
        types = ()
    if schema.get("nullable") is True and types and "null" not in types:
        types = (*types, "null")
    return types


def _coerce(text: str, schema: Mapping[str, Any] | None) -> Any:
    """A primitive from its text, per the schema's type(s); unchanged text if none fits.

    An empty value of a schema that admits ``null`` is ``None`` (a nullable date sent as
    ``?since=``), before any string reading.
    """
    types = _types(schema)
    if text == "" and "null" in types:
        return None
    for kind in types:
        if kind == "string":
            return text
        if kind == "integer" and _INT.fullmatch(text):
            return int(text)
        if kind == "number" and _NUMBER.fullmatch(text):
            return int(text) if _INT.fullmatch(text) else float(text)
        if kind == "boolean" and text in ("true", "false"):
            return text == "true"
    return text


def _sub(schema: Mapping[str, Any] | None, key: str, member: str | None = None) -> Any:
    if not isinstance(schema, Mapping):
        return None
    node = schema.get(key)
    if member is not None:
        node = node.get(member) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else None


def _shape(schema: Mapping[str, Any] | None) -> str:
    types = _types(schema)
    if "array" in types:
        return "array"
    if "object" in types or (isinstance(schema, Mapping) and "properties" in schema):
        return "object"
    return "primitive"


def _array(items: Sequence[str], schema: Mapping[str, Any] | None) -> list[Any]:
    item_schema = _sub(schema, "items")
    return [_coerce(i, item_schema) for i in items]


def _object_from_pairs(pairs: Iterable[tuple[str, str]], schema: Any) -> dict[str, Any]:
    return {k: _coerce(v, _sub(schema, "properties", k)) for k, v in pairs}


def _pairs_flat(parts: Sequence[str]) -> list[tuple[str, str]] | None:
    if len(parts) % 2:
        return None
    return [(parts[i], parts[i + 1]) for i in range(0, len(parts), 2)]


def _pairs_eq(parts: Sequence[str]) -> list[tuple[str, str]] | None:
    out = []
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep:
            return None
        out.append((key, value))
    return out


class _StyleError(ValueError):
    pass


def deserialise(
    raw: str, style: str, explode: bool, schema: Mapping[str, Any] | None, name: str = ""
) -> Any:
    """One path/header/cookie value (or one non-exploded query value) to a Python value.

    Raises ``ValueError`` when the text does not fit the style (e.g. a label value
    without its leading ``.``).
    """
    shape = _shape(schema)
    if style == "label":
        if not raw.startswith("."):
            raise _StyleError("label value without '.'")
        raw = raw[1:]
        sep = "." if explode else ","
        parts = raw.split(sep) if shape != "primitive" else [raw]
    elif style == "matrix":
        prefix = f";{name}="
        if shape == "array" and explode:
            if not raw.startswith(prefix):
                raise _StyleError("matrix value without ';name='")
            parts = raw[len(prefix) :].split(prefix)
        elif shape == "object" and explode:
            if not raw.startswith(";"):
                raise _StyleError("matrix value without ';'")
            parts = raw[1:].split(";")
        else:
            if not raw.startswith(prefix):
                raise _StyleError("matrix value without ';name='")
            raw = raw[len(prefix) :]
            parts = raw.split(",") if shape != "primitive" else [raw]
    else:
        delimiter = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(style, ",")
        parts = raw.split(delimiter) if shape != "primitive" else [raw]
    if shape == "primitive":
        return _coerce(parts[0], schema)
    if shape == "array":
        return _array(parts, schema) if raw != "" else []
    pairs = _pairs_eq(parts) if explode else _pairs_flat(parts)
    if pairs is None:
        raise _StyleError("object value with an odd member list")
    return _object_from_pairs(pairs, schema)


# ---------------------------------------------------------------------------
# Compiled operation
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CompiledParameter:
    parameter: Parameter
    key: str  # lookup key: the name, lower-cased for headers
    schema: Mapping[str, Any] | None
    validator: CompiledSchema | None
    shape: str


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media: str) -> bool:
    return media == "application/json" or media.endswith(_JSON_SUFFIX)


class OperationValidator:
    """Validates one operation's parameters and body; built by ``compile_operation``."""

    def __init__(
        self,
        op: Operation,
        openapi_version: str,
        *,
        strict: bool = True,
        resolver: RefResolver | None = None,
        direction: Direction = "request",
    ) -> None:
        self.operation = op
        compiled: list[_CompiledParameter] = []
        for p in op.parameters:
            # A ``content`` parameter (no ``schema``) is only checked for presence here.
            schema = p.schema
            validator = (
                compile_schema(
                    schema, openapi_version, strict=strict, direction=direction, resolver=resolver
                )
                if schema is not None
                else None
            )
            key = p.name.lower() if p.location == "header" else p.name
            compiled.append(_CompiledParameter(p, key, schema, validator, _shape(schema)))
        self._parameters = tuple(compiled)
        body = op.request_body
        self.body_required = bool(body and body.get("required") is True)
        self._bodies: dict[str, CompiledSchema | None] = {}
        content = body.get("content") if body else None
        if isinstance(content, Mapping):
            for media, media_object in content.items():
                schema = media_object.get("schema") if isinstance(media_object, Mapping) else None
                key = _media_type(str(media))
                self._bodies[key] = (
                    compile_schema(
                        schema,
                        openapi_version,
                        strict=strict,
                        direction=direction,
                        resolver=resolver,
                    )
                    if _is_json(key) and isinstance(schema, Mapping | bool)
                    else None
                )

    # -- parameters ---------------------------------------------------------

    def validate_parameters(
        self,
        path_params: Mapping[str, str],
        query: Sequence[tuple[str, str]] | Mapping[str, str | Sequence[str]],
        headers: Mapping[str, str],
        cookies: Mapping[str, str],
    ) -> ParameterResult:
        """Deserialise, coerce and check every declared parameter.

        ``query`` is the decoded pairs in order (or a mapping name -> value(s)); header
        names are matched case-insensitively.
        """
        query_pairs = _query_pairs(query)
        multi: dict[str, list[str]] = {}
        for k, v in query_pairs:
            multi.setdefault(k, []).append(v)
        lowered = {k.lower(): v for k, v in headers.items()}
        sources: Mapping[str, Mapping[str, str]] = {
            "path": path_params,
            "header": lowered,
            "cookie": cookies,
        }
        values: dict[str, dict[str, Any]] = {"path": {}, "query": {}, "header": {}, "cookie": {}}
        violations: list[RequestViolation] = []
        for cp in self._parameters:
            p = cp.parameter
            try:
                if p.location == "query":
                    present, value = self._query_value(cp, multi, query_pairs)
                else:
                    source = sources[p.location]
                    present = cp.key in source
                    value = (
                        deserialise(source[cp.key], p.style, p.explode, cp.schema, p.name)
                        if present
                        else None
                    )
            except _Duplicate:
                violations.append(RequestViolation(p.location, p.name, "", "duplicate"))
                continue
            except _StyleError:
                violations.append(RequestViolation(p.location, p.name, "", "style"))
                continue
            if not present:
                if p.required:
                    violations.append(RequestViolation(p.location, p.name, "", "required"))
                continue
            values[p.location][p.name] = value
            if cp.validator is not None and not cp.validator.is_valid(value):
                violations.extend(_from_schema(p.location, p.name, cp.validator.violations(value)))
        return ParameterResult(values, tuple(violations))

    def _query_value(
        self,
        cp: _CompiledParameter,
        multi: Mapping[str, list[str]],
        pairs: Sequence[tuple[str, str]],
    ) -> tuple[bool, Any]:
        p = cp.parameter
        if cp.shape == "object" and p.style == "deepObject":
            prefix = p.name + "["
            members = [
                (k[len(prefix) : -1], v) for k, v in pairs if k.startswith(prefix) and k[-1] == "]"
            ]
            if not members:
                return False, None
            if len({k for k, _ in members}) != len(members):
                raise _Duplicate
            return True, _object_from_pairs(members, cp.schema)
        if cp.shape == "object" and p.style == "form" and p.explode:
            props = cp.schema.get("properties") if cp.schema else None
            names = set(props) if isinstance(props, Mapping) else set()
            members = [(k, v) for k, v in pairs if k in names]
            if not members:
                return False, None
            if len({k for k, _ in members}) != len(members):
                raise _Duplicate
            return True, _object_from_pairs(members, cp.schema)
        given = multi.get(p.name)
        if not given:
            return False, None
        if cp.shape == "array" and p.explode and p.style == "form":
            return True, _array(given, cp.schema)
        if len(given) > 1:
            raise _Duplicate
        return True, deserialise(given[0], p.style, p.explode, cp.schema, p.name)

    # -- body ---------------------------------------------------------------

    def accepts(self, content_type: str) -> bool:
        """Whether the media type is declared for the body (else: 415)."""
        return self._match(_media_type(content_type)) is not None

    def _match(self, media: str) -> str | None:
        if media in self._bodies:
            return media
        major = media.split("/", 1)[0]
        for candidate in (major + "/*", "*/*"):
            if candidate in self._bodies:
                return candidate
        return None

    def validate_body(self, content_type: str | None, parsed: Any) -> list[RequestViolation]:
        """Check the body (``parsed``: the ``parse_json`` result, ``None`` when absent)."""
        if content_type is None:
            if self.body_required:
                return [RequestViolation("body", None, "", "required")]
            return []
        media = _media_type(content_type)
        key = self._match(media)
        if key is None:
            return [RequestViolation("body", None, "", "content-type")]
        validator = self._bodies[key]
        if validator is None or validator.is_valid(parsed):
            return []
        return _from_schema("body", None, validator.violations(parsed))


class _Duplicate(Exception):
    pass


def _query_pairs(
    query: Sequence[tuple[str, str]] | Mapping[str, str | Sequence[str]],
) -> list[tuple[str, str]]:
    if not isinstance(query, Mapping):
        return list(query)
    out: list[tuple[str, str]] = []
    for k, v in query.items():
        if isinstance(v, str):
            out.append((k, v))
        else:
            out.extend((k, item) for item in v)
    return out


def _from_schema(
    location: str, name: str | None, found: Iterable[SchemaViolation]
) -> list[RequestViolation]:
    return [RequestViolation(location, name, v.pointer, v.keyword) for v in found]


def compile_operation(
    op: Operation,
    openapi_version: str = "3.0",
    *,
    strict: bool = True,
    resolver: RefResolver | None = None,
) -> OperationValidator:
    """Compile ``op``'s parameter and JSON body validators (once, at load time).

    ``openapi_version`` and ``resolver`` come from the ``LoadedSpec`` (the resolver is
    needed only for schemas with cycles); ``strict`` refuses undeclared body members.
    Raises ``SchemaCompileError`` on a schema the engine cannot compile.
    """
    return OperationValidator(op, openapi_version, strict=strict, resolver=resolver)


def compile_spec(spec: LoadedSpec, *, strict: bool = True) -> dict[Operation, OperationValidator]:
    """Every operation of ``spec`` compiled (operations are hashable: key a cache by them)."""
    return {
        op: compile_operation(op, spec.openapi_version, strict=strict, resolver=spec.resolver)
        for op in spec.operations
    }
