"""The sandbox's OpenAPI 3.1 document: well-formed, and exactly the public routes."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import jsonschema
import pytest
import referencing
from referencing.jsonschema import DRAFT202012

from finward.sandbox.app import create_app
from finward.sandbox.data import Bank
from finward.sandbox.paths import spec_path
from finward.sandbox.shadow import SHADOW_PATHS

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

# The parts of the OpenAPI 3.1 structure the gateway's route compiler relies on.
OPENAPI_31_SHAPE = {
    "type": "object",
    "required": ["openapi", "info", "paths", "components"],
    "properties": {
        "openapi": {"type": "string", "pattern": r"^3\.1\.\d+$"},
        "info": {
            "type": "object",
            "required": ["title", "version"],
            "properties": {"title": {"type": "string"}, "version": {"type": "string"}},
        },
        "paths": {
            "type": "object",
            "propertyNames": {"pattern": "^/"},
            "additionalProperties": {
                "type": "object",
                "propertyNames": {"enum": [*sorted(METHODS), "parameters", "summary"]},
                "additionalProperties": {
                    "type": "object",
                    "required": ["operationId", "responses"],
                    "properties": {
                        "responses": {
                            "type": "object",
                            "minProperties": 1,
                            "propertyNames": {"pattern": "^[1-5][0-9]{2}$"},
                        },
                        "parameters": {"type": "array"},
                    },
                },
            },
        },
        "components": {
            "type": "object",
            "properties": {"schemas": {"type": "object"}, "parameters": {"type": "object"}},
        },
    },
}


def normalise(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def spec_routes(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), normalise(path))
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def app_routes(bank: Bank, *, shadow_endpoints: bool = True) -> set[tuple[str, str]]:
    app = create_app(bank, shadow_endpoints=shadow_endpoints)
    return {
        (route.method, normalise(route.resource.canonical))
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"  # aiohttp adds HEAD to GET
    }


def test_spec_is_package_data_loaded_with_the_safe_loader(spec: dict[str, Any]) -> None:
    assert spec_path().is_file() and spec_path().parent.name == "sandbox"
    assert spec["openapi"].startswith("3.1")


def test_spec_has_the_openapi_31_structure(spec: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(OPENAPI_31_SHAPE).validate(spec)
    operation_ids = [
        op["operationId"]
        for item in spec["paths"].values()
        for m, op in item.items()
        if m in METHODS
    ]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_component_schema_is_valid_json_schema_2020_12(spec: dict[str, Any]) -> None:
    for schema in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_ref_resolves(spec: dict[str, Any]) -> None:
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(
        "urn:spec", referencing.Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    resolver = registry.resolver("urn:spec")
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert len(refs) > 100
    for ref in set(refs):
        resolver.lookup(ref)  # raises if the target is missing


def test_path_parameters_are_declared_for_every_template(spec: dict[str, Any]) -> None:
    parameters = spec["components"]["parameters"]
    for path, item in spec["paths"].items():
        in_template = set(re.findall(r"\{([^}]+)\}", path))
        for method, operation in item.items():
            declared = {
                parameters[p["$ref"].rsplit("/", 1)[1]]["name"]
                for p in operation["parameters"]
                if parameters[p["$ref"].rsplit("/", 1)[1]]["in"] == "path"
            }
            assert declared == in_template, (method, path)


def test_spec_lists_exactly_the_public_routes(spec: dict[str, Any], bank: Bank) -> None:
    public = app_routes(bank, shadow_endpoints=False)
    assert spec_routes(spec) == public
    assert len(public) == 12


def test_no_shadow_endpoint_is_in_the_spec_but_all_are_served(
    spec: dict[str, Any], bank: Bank
) -> None:
    documented = {path for _, path in spec_routes(spec)}
    served = app_routes(bank)
    for path in SHADOW_PATHS:
        assert normalise(path) not in documented
        assert ("GET", path) in served
    assert served - app_routes(bank, shadow_endpoints=False) == {("GET", p) for p in SHADOW_PATHS}


@pytest.mark.parametrize("path", SHADOW_PATHS)
async def test_shadow_endpoints_answer_anyone_reaching_the_sandbox(
    sandbox_url: str, bank: Bank, path: str
) -> None:
    async with aiohttp.ClientSession() as session, session.get(sandbox_url + path) as response:
        # No PSU header at all, and still a 200 with data: that is the vulnerability.
        assert response.status == 200
        body = await response.text()
    if path == "/admin/users":
        assert all(psu.name in body for psu in bank.psus.values())
        assert all(card.pan in body for card in bank.card_accounts.values())
    elif path == "/v0/accounts":
        assert all(account.iban in body for account in bank.accounts.values())
    else:
        assert "Traceback (most recent call last)" in body and "FAKE-" in body
