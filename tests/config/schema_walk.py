"""Walk schema.json: every key path, as docs/configuration.md writes it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def deref(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str):
        resolved: Mapping[str, Any] = schema["$defs"][ref.removeprefix("#/$defs/")]
        return resolved
    return node


def key_paths(
    schema: Mapping[str, Any], node: Mapping[str, Any] | None = None, prefix: str = ""
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yield (path, property schema): `listen.tls.cert`, `upstreams.<name>.url`, `apis[].spec`."""
    node = deref(schema, schema if node is None else node)
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        child = deref(schema, child)
        yield path, child
        yield from key_paths(schema, child, path)
        if isinstance(child.get("additionalProperties"), Mapping):
            yield from key_paths(schema, child["additionalProperties"], f"{path}.<name>")
        if isinstance(child.get("items"), Mapping):
            yield from key_paths(schema, child["items"], f"{path}[]")
