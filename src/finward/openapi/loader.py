"""Load an OpenAPI 3.0 / 3.1 document (one file or many) into a ``LoadedSpec``.

The loader is where a broken contract is caught: at start-up, with the file, the
JSON pointer and a hint, instead of as a confusing 404 or 500 under traffic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from finward.openapi.model import (
    HTTP_METHODS,
    PARAMETER_LOCATIONS,
    LoadedSpec,
    Operation,
    Parameter,
)
from finward.openapi.resolver import (
    MAX_REF_HOPS,
    MAX_SPEC_BYTES,
    Loc,
    SpecError,
    SpecResolver,
    format_pointer,
    key_text,
    read_document,
)

__all__ = ["MAX_SPEC_BYTES", "SpecError", "load_spec"]

# 3.0.x and 3.1.x share the Paths/Operation/Parameter shapes we rely on; 3.2 adds
# methods (QUERY) and fields we would silently ignore, so it is refused until supported.
_VERSION: Final = re.compile(r"3\.([01])(?:\.\d+)?(?:-[0-9A-Za-z.-]+)?")
# OpenAPI 3.x Parameter Object: header parameters with these names SHALL be ignored
# (they are governed by the content negotiation and security scheme instead).
_IGNORED_HEADERS: Final = frozenset({"accept", "content-type", "authorization"})


def load_spec(path: Path, api: str = "") -> LoadedSpec:
    """Read, check and resolve the spec at ``path``; ``api`` names it in each Operation.

    Raises ``SpecError`` (file, JSON pointer, hint) on anything that is not a usable
    OpenAPI 3.0/3.1 document, and on remote refs, which are never fetched.
    """
    root = Path(path).resolve()
    document = read_document(root)
    if not isinstance(document, dict):
        raise SpecError("the document is not a mapping", file=root, hint="is this an OpenAPI file?")
    version = _check_version(document, root)
    resolver = SpecResolver(root, document, version)
    info = document.get("info")
    info = info if isinstance(info, dict) else {}
    root_security = _parse_security(document.get("security"), root, (None, "security"))
    return LoadedSpec(
        path=root,
        openapi_version=version,
        title=_text(info.get("title")) or "",
        version=_text(info.get("version")) or "",
        servers=_servers(document.get("servers"), root),
        operations=tuple(_operations(document, root, resolver, api, root_security)),
        document=document,
        resolver=resolver,
    )


def _check_version(document: Mapping[Any, Any], root: Path) -> str:
    if "swagger" in document:
        raise SpecError(
            f"Swagger {_text(document['swagger'])} (OpenAPI 2.0) is not supported",
            file=root,
            pointer="/swagger",
            hint="convert it to OpenAPI 3 first, e.g. with swagger2openapi",
        )
    declared = _text(document.get("openapi"))
    if declared is None:
        raise SpecError(
            "no 'openapi' version field",
            file=root,
            hint="an OpenAPI 3 document starts with e.g. 'openapi: 3.0.3'",
        )
    match = _VERSION.fullmatch(declared)
    if match is None:
        raise SpecError(
            f"OpenAPI version {declared!r} is not supported",
            file=root,
            pointer="/openapi",
            hint="finward reads OpenAPI 3.0.x and 3.1.x",
        )
    return f"3.{match.group(1)}"


def _operations(
    document: Mapping[Any, Any],
    root: Path,
    resolver: SpecResolver,
    api: str,
    root_security: tuple[Mapping[str, tuple[str, ...]], ...] | None,
) -> list[Operation]:
    paths = document.get("paths")
    if paths is None:
        return []  # 3.1 allows a document with only webhooks or components
    if not isinstance(paths, dict):
        raise SpecError("'paths' is not a mapping", file=root, pointer="/paths")
    operations: list[Operation] = []
    for raw_template, raw_item in paths.items():
        template = key_text(raw_template)
        loc: Loc = ((None, "paths"), template)
        if template.startswith("x-"):
            continue  # Paths Object extension, not a path
        if not template.startswith("/"):
            raise SpecError("a path must start with '/'", file=root, pointer=format_pointer(loc))
        fields = _path_item_fields(raw_item, root, loc, resolver)
        shared = _parameter_list(fields.get("parameters"), resolver)
        for method in HTTP_METHODS:
            if method in fields:
                operations.append(
                    _operation(
                        api, method, template, fields[method], shared, resolver, root_security
                    )
                )
    return operations


_Field = tuple[Any, Path, Loc]  # a value, the file it was written in, where


def _path_item_fields(item: Any, base: Path, loc: Loc, resolver: SpecResolver) -> dict[str, _Field]:
    """Fields of a Path Item, following its ``$ref``; fields written beside the ref win."""
    chain: list[tuple[Mapping[Any, Any], Path, Loc]] = []
    for _ in range(MAX_REF_HOPS):
        if not isinstance(item, dict):
            raise SpecError("a path item must be a mapping", file=base, pointer=format_pointer(loc))
        chain.append((item, base, loc))
        if not isinstance(item.get("$ref"), str):
            break
        # One hop at a time: each referenced item is read relative to its own file.
        item, base, loc = resolver.step(item["$ref"], base, loc)
    else:
        raise SpecError(
            f"more than {MAX_REF_HOPS} chained path item $refs",
            file=base,
            pointer=format_pointer(loc),
            hint="do the path item $refs form a loop?",
        )
    fields: dict[str, _Field] = {}
    for node, node_base, node_loc in reversed(chain):
        for key, value in node.items():
            name = key_text(key)
            if name != "$ref":
                fields[name] = (value, node_base, (node_loc, name))
    return fields


def _parameter_list(field: _Field | None, resolver: SpecResolver) -> list[Parameter]:
    if field is None:
        return []
    raw_list, base, loc = field
    if not isinstance(raw_list, list):
        raise SpecError("'parameters' must be a list", file=base, pointer=format_pointer(loc))
    params: list[Parameter] = []
    for index, raw in enumerate(raw_list):
        item_loc: Loc = (loc, str(index))
        resolved = resolver.resolve(raw, base, item_loc)
        if not isinstance(resolved, dict) or not isinstance(resolved.get("name"), str):
            raise SpecError(
                "a parameter needs a 'name'", file=base, pointer=format_pointer(item_loc)
            )
        if resolved.get("in") not in PARAMETER_LOCATIONS:
            raise SpecError(
                f"parameter {resolved['name']!r} has 'in: {resolved.get('in')}'",
                file=base,
                pointer=format_pointer(item_loc),
                hint="'in' must be one of path, query, header, cookie",
            )
        param = Parameter.from_mapping(resolved)
        if param.location == "header" and param.name.lower() in _IGNORED_HEADERS:
            continue
        params.append(param)
    return params


def _merge_parameters(shared: list[Parameter], own: list[Parameter]) -> tuple[Parameter, ...]:
    """Operation-level parameters override path-level ones with the same (name, in)."""

    def identity(p: Parameter) -> tuple[str, str]:
        # HTTP header names are case-insensitive (RFC 9110 §5.1).
        return (p.name.lower() if p.location == "header" else p.name, p.location)

    merged = {identity(p): p for p in shared}
    merged.update((identity(p), p) for p in own)
    return tuple(merged.values())


def _operation(
    api: str,
    method: str,
    template: str,
    field: _Field,
    shared: list[Parameter],
    resolver: SpecResolver,
    root_security: tuple[Mapping[str, tuple[str, ...]], ...] | None,
) -> Operation:
    raw, base, loc = field
    if not isinstance(raw, dict):
        raise SpecError("an operation must be a mapping", file=base, pointer=format_pointer(loc))
    op = {key_text(k): v for k, v in raw.items()}
    own = _parameter_list(
        (op["parameters"], base, (loc, "parameters")) if "parameters" in op else None,
        resolver,
    )
    security = root_security
    if "security" in op:
        security = _parse_security(op["security"], base, (loc, "security"))
    body = op.get("requestBody")
    responses = resolver.resolve(op.get("responses") or {}, base, (loc, "responses"))
    tags = op.get("tags")
    return Operation(
        api=api,
        method=method.upper(),
        path_template=template,
        operation_id=_text(op.get("operationId")),
        parameters=_merge_parameters(shared, own),
        security=security,
        tags=tuple(_text(t) or "" for t in tags) if isinstance(tags, list) else (),
        request_body=None if body is None else resolver.resolve(body, base, (loc, "requestBody")),
        responses=responses if isinstance(responses, dict) else {},
        extensions={k: v for k, v in op.items() if k.startswith("x-")},
        raw=raw,
    )


def _parse_security(
    value: Any, base: Path, loc: Loc
) -> tuple[Mapping[str, tuple[str, ...]], ...] | None:
    if value is None:
        return None
    problem = SpecError(
        "'security' must be a list of {scheme: [scopes]} mappings",
        file=base,
        pointer=format_pointer(loc),
    )
    if not isinstance(value, list):
        raise problem
    requirements: list[Mapping[str, tuple[str, ...]]] = []
    for requirement in value:
        if not isinstance(requirement, dict):
            raise problem
        parsed: dict[str, tuple[str, ...]] = {}
        for scheme, scopes in requirement.items():
            if not isinstance(scopes, list):
                raise problem
            parsed[key_text(scheme)] = tuple(_text(s) or "" for s in scopes)
        requirements.append(parsed)
    return tuple(requirements)


def _servers(value: Any, root: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(s, dict) and isinstance(s.get("url"), str) for s in value
    ):
        raise SpecError(
            "'servers' must be a list of {url: ...} mappings", file=root, pointer="/servers"
        )
    return tuple(s["url"] for s in value)


def _text(value: Any) -> str | None:
    """YAML reads ``version: 1.0`` as a float and ``2024-01-01`` as a date; we want text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return key_text(value)
