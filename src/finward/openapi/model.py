"""What a loaded OpenAPI document looks like to the rest of finward.

Everything here is immutable and fully resolved: parameters, request bodies and
responses have had their ``$ref``s followed (relative to the file each one lives
in), so a policy never needs to know which file a piece came from. The one
exception is a schema that refers back to itself (directly or through others):
the back-edge stays a ``{"$ref": "file:///…#/pointer"}`` with an absolute URI
that ``LoadedSpec.resolver`` resolves, because an inlined cycle would make every
consumer that walks the tree (serialisers, validator compilers) loop forever.

The mappings are shared between operations (one resolved object per target) and
must be treated as read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

PARAMETER_LOCATIONS = frozenset({"path", "query", "header", "cookie"})

# OpenAPI 3.x "Parameter Object": style defaults by location (form for query and
# cookie, simple for path and header); explode defaults to true only for form.
DEFAULT_STYLE: Mapping[str, str] = {
    "path": "simple",
    "query": "form",
    "header": "simple",
    "cookie": "form",
}

# The fixed set of operation keys in a Path Item Object (3.0 and 3.1 alike).
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class RefResolver(Protocol):
    """Resolves the absolute ``file:///…#/pointer`` refs left on schema cycles."""

    def resolve_uri(self, uri: str) -> Any:
        """Return the resolved target of an absolute ref; raise ``SpecError`` if absent."""
        ...

    def resolve(self, node: Any, base: Path, loc: Any) -> Any:
        """Return ``node`` (found in file ``base``) with every local ``$ref`` resolved;
        ``loc`` is where it sits, for error messages (``None`` for the document root)."""
        ...


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: str  # 'path' | 'query' | 'header' | 'cookie'
    required: bool
    # Mappings take no part in equality or hashing, so parameters and operations
    # can key the per-operation caches (compiled validators) of other components.
    schema: Mapping[str, Any] | None = field(repr=False, compare=False)
    style: str
    explode: bool
    content: Mapping[str, Any] | None = field(repr=False, compare=False)
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Parameter:
        """Build from an already-resolved Parameter Object (name and ``in`` checked by caller)."""
        location = str(raw["in"])
        style = raw.get("style")
        style = DEFAULT_STYLE[location] if not isinstance(style, str) else style
        explode = raw.get("explode")
        explode = style == "form" if not isinstance(explode, bool) else explode
        schema = raw.get("schema")
        content = raw.get("content")
        return cls(
            name=str(raw["name"]),
            location=location,
            # A path parameter is always required (OpenAPI 3.x, Parameter Object):
            # some specs forget to say so, and an optional path segment cannot exist.
            required=location == "path" or raw.get("required") is True,
            schema=schema if isinstance(schema, Mapping) else None,
            style=style,
            explode=explode,
            content=content if isinstance(content, Mapping) else None,
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Operation:
    api: str
    method: str  # upper case, e.g. "GET"
    path_template: str  # as written in the spec, e.g. "/v1/accounts/{account-id}"
    operation_id: str | None
    # Path-level parameters merged with operation-level ones; the operation wins
    # on (name, location). Every $ref resolved.
    parameters: tuple[Parameter, ...]
    # Effective requirement: the operation's own ``security`` if present (an empty
    # tuple means "explicitly none"), else the root-level one; None when neither.
    security: tuple[Mapping[str, tuple[str, ...]], ...] | None = field(compare=False)
    tags: tuple[str, ...]
    request_body: Mapping[str, Any] | None = field(repr=False, compare=False)
    # Status code (always a str; "default" and "2XX" kept as written) -> Response Object.
    responses: Mapping[str, Any] = field(repr=False, compare=False)
    extensions: Mapping[str, Any] = field(repr=False, compare=False)  # the x-* keys
    raw: Mapping[str, Any] = field(repr=False, compare=False)  # as written, unresolved

    def parameters_in(self, location: str) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.location == location)


@dataclass(frozen=True, slots=True)
class LoadedSpec:
    path: Path
    openapi_version: str  # '3.0' or '3.1'
    title: str
    version: str
    servers: tuple[str, ...]
    operations: tuple[Operation, ...] = field(repr=False)
    document: Mapping[str, Any] = field(repr=False, compare=False)
    resolver: RefResolver = field(repr=False, compare=False)
