"""schema.json: valid, strict, described, and in step with the typed model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from finward.config import model
from finward.config.loader import config_schema

from .schema_walk import deref, key_paths

# Which dataclass each schema object describes. Fields the file does not set
# (name is the mapping key; source and secret_locations are filled by the loader).
MODEL_OF = {
    "": (model.GatewayConfig, {"source", "secret_locations"}),
    "listen": (model.ListenConfig, set()),
    "listen.tls": (model.TlsListenConfig, set()),
    "admin": (model.AdminConfig, set()),
    "upstreams.<name>": (model.UpstreamConfig, {"name"}),
    "upstreams.<name>.timeouts": (model.TimeoutsConfig, set()),
    "upstreams.<name>.tls": (model.UpstreamTlsConfig, set()),
    "apis[]": (model.ApiConfig, set()),
    "limits": (model.LimitsConfig, set()),
    "proxy": (model.ProxyConfig, set()),
    "logging": (model.LoggingConfig, set()),
    "server": (model.ServerConfig, set()),
    "auth": (model.AuthConfig, set()),
    "auth.issuers[]": (model.IssuerConfig, set()),
    "auth.issuers[].introspection": (model.IntrospectionConfig, set()),
    "auth.dpop": (model.DPoPConfig, set()),
    "auth.tpp": (model.TppConfig, set()),
    "auth.identity_headers": (model.IdentityHeadersConfig, set()),
    "apis[].auth": (model.ApiAuthConfig, set()),
    "apis[].auth.tags.<name>": (model.AccessRule, set()),
    "apis[].auth.operations.<name>": (model.AccessRule, set()),
    "rate_limits": (model.RateLimitsConfig, set()),
    "rate_limits.limits[]": (model.RateLimitConfig, set()),
    "rate_limits.limits[].apply_to": (model.RateLimitApplyTo, set()),
}


def _objects() -> dict[str, Mapping[str, Any]]:
    schema = config_schema()
    objects: dict[str, Mapping[str, Any]] = {"": schema}
    for path, node in key_paths(schema):
        for candidate, sub in ((path, node), (f"{path}.<name>", node.get("additionalProperties"))):
            if isinstance(sub, Mapping) and "properties" in deref(schema, sub):
                objects[candidate] = deref(schema, sub)
        items = node.get("items")
        if isinstance(items, Mapping) and "properties" in deref(schema, items):
            objects[f"{path}[]"] = deref(schema, items)
    return objects


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = config_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_object_refuses_unknown_keys() -> None:
    for path, node in _objects().items():
        assert node.get("additionalProperties") is False, path or "(root)"


def test_every_property_has_a_description() -> None:
    schema = config_schema()
    for path, node in key_paths(schema):
        assert isinstance(node.get("description"), str) and node["description"], path


def test_schema_objects_match_the_model() -> None:
    objects = _objects()
    assert set(objects) == set(MODEL_OF)
    for path, (cls, unset) in MODEL_OF.items():
        fields = {f.name for f in dataclasses.fields(cls)} - unset
        properties = set(objects[path]["properties"]) - ({"version"} if path == "" else set())
        assert properties == fields, path


@pytest.mark.parametrize("path", [p for p in MODEL_OF if p])
def test_schema_defaults_equal_model_defaults(path: str) -> None:
    cls, _ = MODEL_OF[path]
    properties = _objects()[path]["properties"]
    schema = config_schema()
    for item in dataclasses.fields(cls):
        if item.name not in properties:
            continue
        prop = deref(schema, properties[item.name])
        if item.default is dataclasses.MISSING:
            if item.default_factory is dataclasses.MISSING:
                assert "default" not in prop, f"{path}.{item.name} is required"
            continue
        if dataclasses.is_dataclass(item.default):
            continue  # a section: its own leaves are compared
        default = list(item.default) if isinstance(item.default, tuple) else item.default
        assert prop.get("default", "<none>") == default, f"{path}.{item.name}"


def test_required_keys_are_the_model_fields_without_defaults() -> None:
    for path, (cls, unset) in MODEL_OF.items():
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.name not in unset
        }
        assert set(_objects()[path].get("required", [])) == required, path


def test_config_schema_returns_a_fresh_copy() -> None:
    first = config_schema()
    first["properties"].clear()
    assert config_schema()["properties"]
