"""The effective configuration as a document, with secrets masked.

Used by ``finward config show``: what the gateway will actually run with, after
defaults, ``${ENV}`` substitution and path resolution, in the shape of finward.yaml.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from finward.config.model import GatewayConfig
from finward.config.problems import MASK, Location, format_location, is_secret_location

_INTERNAL_FIELDS = frozenset({"source", "secret_locations"})


def effective_document(config: GatewayConfig) -> dict[str, Any]:
    """The config as plain data in finward.yaml's shape, every secret replaced by ***."""
    document: dict[str, Any] = {"version": 1}
    for item in dataclasses.fields(config):
        if item.name not in _INTERNAL_FIELDS:
            document[item.name] = _plain(getattr(config, item.name))
    for upstream in document["upstreams"].values():
        upstream.pop("name", None)  # it is the mapping key in the file
    return {key: _mask(value, (key,), config.secret_locations) for key, value in document.items()}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)  # Path, IPv4Network, IPv6Network


def _mask(node: Any, location: Location, secret_locations: frozenset[str]) -> Any:
    if isinstance(node, dict):
        return {k: _mask(v, (*location, k), secret_locations) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask(v, (*location, i), secret_locations) for i, v in enumerate(node)]
    if node is None:
        return None
    if format_location(location) in secret_locations or is_secret_location(location):
        return MASK
    return node
