"""Request validation compiled from OpenAPI specs (issue 6, item 1)."""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from finward.openapi.loader import load_spec
from finward.openapi.model import LoadedSpec, Operation
from finward.validation.json_guard import parse_json
from finward.validation.request import (
    OperationValidator,
    RequestViolation,
    compile_operation,
    compile_spec,
    deserialise,
)
from finward.validation.schema import (
    SchemaViolation,
    compile_schema,
    to_json_schema,
)
from tests.harness import VECTORS, shared_specs_dir

SHARED_SPECS = sorted(shared_specs_dir().glob("*.yaml"))
BERLIN = shared_specs_dir() / "berlin-group-nextgenpsd2-1.3.6.yaml"

PAYMENT: dict[str, Any] = {
    "endToEndIdentification": "E2E-2024-00000042",
    "debtorAccount": {"iban": "DE02120300000000202051", "currency": "EUR"},
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorAccount": {"iban": "DE89370400440532013000"},
    "creditorAgent": "COBADEFFXXX",
    "creditorName": "Müller & Söhne GmbH",
    "creditorAddress": {"townName": "Berlin", "country": "DE"},
    "remittanceInformationUnstructured": "Invoice 2024-00042",
}


def op_of(spec: LoadedSpec, method: str, path: str) -> Operation:
    (op,) = [o for o in spec.operations if o.method == method and o.path_template == path]
    return op


@pytest.fixture(scope="module")
def berlin() -> LoadedSpec:
    return load_spec(BERLIN, api="bg")


@pytest.fixture(scope="module")
def payment(berlin: LoadedSpec) -> OperationValidator:
    op = op_of(berlin, "POST", "/{payment-service}/{payment-product}")
    return compile_operation(op, berlin.openapi_version, resolver=berlin.resolver)


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str], LoadedSpec]:
    def write(text: str) -> LoadedSpec:
        path = tmp_path / "openapi.yaml"
        path.write_text(textwrap.dedent(text))
        return load_spec(path, api="t")

    return write


# -- every shared spec compiles ----------------------------------------------


@pytest.mark.parametrize("path", SHARED_SPECS, ids=lambda p: p.name)
def test_every_operation_of_the_shared_specs_compiles(path: Path) -> None:
    spec = load_spec(path, api=path.stem)
    assert spec.openapi_version == "3.0"
    validators = compile_spec(spec)
    assert len(validators) == len(spec.operations) > 0


def test_shared_specs_are_all_there() -> None:
    assert len(SHARED_SPECS) == 5


# -- Berlin Group payment initiation -------------------------------------------


def test_valid_payment_body(payment: OperationValidator) -> None:
    assert payment.validate_body("application/json", PAYMENT) == []
    # As parse_json hands it over (orjson path), and with a charset parameter.
    body = parse_json(
        b'{"debtorAccount": {"iban": "DE02120300000000202051"},'
        b'"instructedAmount": {"currency": "EUR", "amount": "1.00"},'
        b'"creditorAccount": {"iban": "DE89370400440532013000"},'
        b'"creditorName": "A"}'
    )
    assert payment.validate_body("Application/JSON; charset=utf-8", body) == []


def test_mass_assignment_is_refused_in_strict_mode(
    berlin: LoadedSpec, payment: OperationValidator
) -> None:
    body = {**PAYMENT, "transactionStatus": "ACSC"}
    assert payment.validate_body("application/json", body) == [
        RequestViolation("body", None, "/transactionStatus", "additionalProperties")
    ]
    nested = copy.deepcopy(PAYMENT)
    nested["creditorAccount"]["admin"] = True
    assert payment.validate_body("application/json", nested) == [
        RequestViolation("body", None, "/creditorAccount/admin", "additionalProperties")
    ]
    lax = compile_operation(payment.operation, "3.0", strict=False, resolver=berlin.resolver)
    assert lax.validate_body("application/json", body) == []


def test_wrong_iban_points_at_the_field_and_never_echoes_it(payment: OperationValidator) -> None:
    body = copy.deepcopy(PAYMENT)
    body["creditorAccount"]["iban"] = "not an iban, secret 4111111111111111"
    (violation,) = payment.validate_body("application/json", body)
    assert violation == RequestViolation("body", None, "/creditorAccount/iban", "pattern")
    assert "4111" not in repr(violation)


def test_missing_required_field_gives_its_pointer(payment: OperationValidator) -> None:
    body = {k: v for k, v in PAYMENT.items() if k != "creditorName"}
    assert payment.validate_body("application/json", body) == [
        RequestViolation("body", None, "/creditorName", "required")
    ]
    body = copy.deepcopy(PAYMENT)
    del body["instructedAmount"]["currency"]
    assert payment.validate_body("application/json", body) == [
        RequestViolation("body", None, "/instructedAmount/currency", "required")
    ]


def test_undeclared_content_type_and_missing_body(payment: OperationValidator) -> None:
    assert payment.validate_body("text/plain", "x") == [
        RequestViolation("body", None, "", "content-type")
    ]
    assert not payment.accepts("text/plain")
    assert payment.accepts("application/xml")
    assert payment.validate_body(None, None) == [RequestViolation("body", None, "", "required")]


def test_berlin_group_path_and_header_parameters(payment: OperationValidator) -> None:
    headers = {
        "X-Request-ID": "99391c7e-ad88-49ec-a2ad-99ddcb1f7721",
        "PSU-IP-Address": "192.168.8.78",
    }
    path = {"payment-service": "payments", "payment-product": "sepa-credit-transfers"}
    result = payment.validate_parameters(path, [], headers, {})
    assert result.ok, result.violations
    assert result.values["path"]["payment-service"] == "payments"
    bad = payment.validate_parameters(
        {**path, "payment-service": "loans"}, [], {**headers, "x-request-id": "nope"}, {}
    )
    assert set(bad.violations) == {
        RequestViolation("path", "payment-service", "", "enum"),
        RequestViolation("header", "X-Request-ID", "", "format"),
    }
    missing = payment.validate_parameters(path, [], {}, {})
    assert RequestViolation("header", "X-Request-ID", "", "required") in missing.violations


# -- parameters: style / explode ---------------------------------------------

PARAMS_SPEC = """\
openapi: 3.0.3
info: {title: params, version: "1"}
paths:
  /items/{ids}/{label}/{matrix}:
    get:
      parameters:
        - {name: ids, in: path, schema: {type: array, items: {type: integer}}}
        - {name: label, in: path, style: label, explode: true,
           schema: {type: array, items: {type: string}}}
        - {name: matrix, in: path, style: matrix, schema: {type: integer, minimum: 1}}
        - {name: tag, in: query, schema: {type: array, items: {type: string, maxLength: 3}}}
        - {name: csv, in: query, explode: false, schema: {type: array, items: {type: number}}}
        - {name: pipes, in: query, style: pipeDelimited, explode: false,
           schema: {type: array, items: {type: boolean}}}
        - {name: limit, in: query, required: true,
           schema: {type: integer, minimum: 1, maximum: 100}}
        - {name: since, in: query, schema: {type: string, format: date, nullable: true}}
        - {name: filter, in: query, style: deepObject, explode: true,
           schema: {type: object, properties: {min: {type: integer}, cur: {type: string}}}}
        - {name: point, in: query, explode: false,
           schema: {type: object, properties: {x: {type: integer}, y: {type: integer}}}}
        - {name: X-Rate, in: header, schema: {type: number, exclusiveMinimum: true, minimum: 0}}
        - {name: session, in: cookie, schema: {type: string, format: uuid}}
      responses:
        "200": {description: ok}
"""

PATH = {"ids": "1,2,3", "label": ".a.b", "matrix": ";matrix=5"}


@pytest.fixture
def params(write_spec: Callable[[str], LoadedSpec]) -> OperationValidator:
    (op,) = write_spec(PARAMS_SPEC).operations
    return compile_operation(op)


def test_parameters_are_deserialised_and_coerced(params: OperationValidator) -> None:
    query = [
        ("tag", "a"),
        ("tag", "bc"),
        ("csv", "1,2.5"),
        ("pipes", "true|false"),
        ("limit", "10"),
        ("since", "2024-02-29"),
        ("filter[min]", "3"),
        ("filter[cur]", "EUR"),
        ("point", "x,1,y,2"),
    ]
    result = params.validate_parameters(
        PATH, query, {"x-rate": "0.5"}, {"session": "99391c7e-ad88-49ec-a2ad-99ddcb1f7721"}
    )
    assert result.ok, result.violations
    assert result.values["path"] == {"ids": [1, 2, 3], "label": ["a", "b"], "matrix": 5}
    assert result.values["query"] == {
        "tag": ["a", "bc"],
        "csv": [1, 2.5],
        "pipes": [True, False],
        "limit": 10,
        "since": "2024-02-29",
        "filter": {"min": 3, "cur": "EUR"},
        "point": {"x": 1, "y": 2},
    }
    assert result.values["header"] == {"X-Rate": 0.5}


def test_query_mapping_form_is_accepted(params: OperationValidator) -> None:
    result = params.validate_parameters(PATH, {"limit": "5", "tag": ["a", "b"]}, {}, {})
    assert result.ok, result.violations
    assert result.values["query"] == {"limit": 5, "tag": ["a", "b"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ([], RequestViolation("query", "limit", "", "required")),
        ([("limit", "0")], RequestViolation("query", "limit", "", "minimum")),
        ([("limit", "ten")], RequestViolation("query", "limit", "", "type")),
        ([("limit", "1"), ("limit", "2")], RequestViolation("query", "limit", "", "duplicate")),
        (
            [("limit", "1"), ("tag", "a"), ("tag", "long")],
            RequestViolation("query", "tag", "/1", "maxLength"),
        ),
        ([("limit", "1"), ("csv", "1,x")], RequestViolation("query", "csv", "/1", "type")),
        (
            [("limit", "1"), ("since", "2023-02-29")],
            RequestViolation("query", "since", "", "format"),
        ),
        ([("limit", "1"), ("point", "x,1,y")], RequestViolation("query", "point", "", "style")),
        (
            [("limit", "1"), ("filter[min]", "1"), ("filter[min]", "2")],
            RequestViolation("query", "filter", "", "duplicate"),
        ),
        (
            [("limit", "1"), ("filter[min]", "1"), ("filter[role]", "admin")],
            RequestViolation("query", "filter", "/role", "additionalProperties"),
        ),
    ],
)
def test_query_violations(
    params: OperationValidator, query: list[tuple[str, str]], expected: RequestViolation
) -> None:
    assert params.validate_parameters(PATH, query, {}, {}).violations == (expected,)


def test_nullable_query_value(params: OperationValidator) -> None:
    result = params.validate_parameters(PATH, [("limit", "1"), ("since", "")], {}, {})
    assert result.ok, result.violations
    assert result.values["query"]["since"] is None


def test_path_header_and_cookie_violations(params: OperationValidator) -> None:
    result = params.validate_parameters(
        {**PATH, "matrix": "5", "ids": "1,x"},
        [("limit", "1")],
        {"X-Rate": "0"},
        {"session": "nope"},
    )
    assert set(result.violations) == {
        RequestViolation("path", "matrix", "", "style"),
        RequestViolation("path", "ids", "/1", "type"),
        RequestViolation("header", "X-Rate", "", "exclusiveMinimum"),
        RequestViolation("cookie", "session", "", "format"),
    }


@pytest.mark.parametrize(
    ("raw", "style", "explode", "schema", "expected"),
    [
        ("5", "simple", False, {"type": "integer"}, 5),
        ("a,b", "simple", False, {"type": "array"}, ["a", "b"]),
        ("", "simple", False, {"type": "array"}, []),
        ("a,1,b,2", "simple", False, {"type": "object"}, {"a": "1", "b": "2"}),
        ("a=1,b=2", "simple", True, {"type": "object"}, {"a": "1", "b": "2"}),
        (".5", "label", False, {"type": "integer"}, 5),
        (".a,b", "label", False, {"type": "array"}, ["a", "b"]),
        (";id=1;id=2", "matrix", True, {"type": "array"}, ["1", "2"]),
        (";id=1,2", "matrix", False, {"type": "array"}, ["1", "2"]),
        (";a=1;b=2", "matrix", True, {"type": "object"}, {"a": "1", "b": "2"}),
        ("a b", "spaceDelimited", False, {"type": "array"}, ["a", "b"]),
        ("true", "simple", False, {"type": ["boolean", "null"]}, True),
        ("1e3", "simple", False, {"type": "number"}, 1000.0),
        ("007", "simple", False, {"type": "integer"}, "007"),  # left for the type rule
    ],
)
def test_deserialise(
    raw: str, style: str, explode: bool, schema: dict[str, Any], expected: Any
) -> None:
    assert deserialise(raw, style, explode, schema, "id") == expected


# -- schema conversion -----------------------------------------------------------


def test_openapi_30_conversion() -> None:
    schema = {
        "type": "object",
        "required": ["id", "kind"],
        "discriminator": {"propertyName": "kind"},
        "example": {"id": 1},
        "x-internal": True,
        "properties": {
            "id": {"type": "integer", "readOnly": True},
            "kind": {"type": "string", "enum": ["a", "b"], "nullable": True},
            "amount": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            "when": {"type": "string", "format": "date-time"},
            "link": {"type": "string", "format": "uri"},
            "description": {"type": "string", "description": "a property, not a keyword"},
        },
    }
    assert to_json_schema(schema, "3.0") == {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["kind"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": ["string", "null"], "enum": ["a", "b", None]},
            "amount": {"type": "number", "exclusiveMinimum": 0},
            "when": {"type": "string", "format": "date-time"},
            "link": {"type": "string"},
            "description": {"type": "string"},
        },
    }
    response = to_json_schema(schema, "3.0", direction="response", strict=False)
    assert response["required"] == ["id", "kind"]
    assert "additionalProperties" not in response


def test_strict_mode_with_all_of_uses_unevaluated_properties() -> None:
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}},
            {"type": "object", "properties": {"b": {"type": "string"}}},
        ]
    }
    compiled = compile_schema(schema, "3.0")
    assert compiled.is_valid({"a": "x", "b": "y"})
    assert compiled.violations({"a": "x", "c": 1}) == [
        SchemaViolation("/c", "unevaluatedProperties", "/unevaluatedProperties")
    ]


def test_formats_are_checked() -> None:
    compiled = compile_schema(
        {
            "type": "object",
            "properties": {
                "iban": {"type": "string", "format": "iban"},
                "bic": {"type": "string", "format": "bic"},
                "currency": {"type": "string", "format": "iso4217"},
                "country": {"type": "string", "format": "country"},
            },
        },
        "3.0",
    )
    good = {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "currency": "EUR"}
    assert compiled.is_valid({**good, "country": "DE"})
    bad = {"iban": "DE89370400440532013001", "bic": "cobadeff", "currency": "EUX", "country": "XX"}
    assert {(v.pointer, v.keyword) for v in compiled.violations(bad)} == {
        ("/iban", "format"),
        ("/bic", "format"),
        ("/currency", "format"),
        ("/country", "format"),
    }


def test_decimal_numbers_from_the_json_guard_are_validated() -> None:
    compiled = compile_schema({"type": "number", "maximum": 10}, "3.0")
    assert compiled.is_valid(Decimal("9.99"))
    assert not compiled.is_valid(Decimal("10.01"))


def test_look_around_patterns_fall_back_to_a_bounded_backtracking_engine() -> None:
    compiled = compile_schema({"type": "string", "pattern": r"^(?!\s)(.*)(\S)$"}, "3.0")
    assert compiled.backtracking
    assert compiled.is_valid("Acme Ltd")
    assert not compiled.is_valid(" Acme")
    linear = compile_schema({"type": "string", "pattern": "^[A-Z]{2}$"}, "3.0")
    assert not linear.backtracking


def test_cyclic_schemas_compile_through_defs() -> None:
    spec = load_spec(VECTORS / "openapi" / "cyclic.yaml")
    (trees,) = spec.operations
    validator = compile_spec(spec)[trees]
    tree = {"value": "a", "children": [{"children": [{"value": "c", "children": []}]}]}
    assert validator.validate_body("application/json", tree) == []
    deep = {"children": [{"children": [{"value": 3}]}]}
    assert validator.validate_body("application/json", deep) == [
        RequestViolation("body", None, "/children/0/children/0/value", "type")
    ]
    sneaky = {"children": [{"children": [{"owner": "x"}]}]}
    assert validator.validate_body("application/json", sneaky) == [
        RequestViolation("body", None, "/children/0/children/0/owner", "additionalProperties")
    ]


# -- OpenAPI 3.1 -----------------------------------------------------------------

V31_SPEC = """\
openapi: 3.1.0
info: {title: three one, version: "1"}
paths:
  /pets/{petId}:
    post:
      parameters:
        - {name: petId, in: path, required: true, schema: {type: [integer, "null"]}}
      requestBody:
        required: true
        content:
          application/merge-patch+json:
            schema:
              type: object
              required: [name]
              properties:
                name: {type: [string, "null"], examples: [Rex]}
                tags:
                  type: array
                  prefixItems: [{const: first}]
                  items: {type: string}
                born: {type: string, format: date}
              dependentRequired: {born: [name]}
      responses:
        "204": {description: ok}
"""


def test_openapi_31_schema_passes_through(write_spec: Callable[[str], LoadedSpec]) -> None:
    spec = write_spec(V31_SPEC)
    assert spec.openapi_version == "3.1"
    (op,) = spec.operations
    validator = compile_spec(spec)[op]
    media = "application/merge-patch+json"
    assert validator.validate_body(media, {"name": None, "tags": ["first", "x"]}) == []
    assert validator.validate_body(media, {"name": "Rex", "tags": ["second"]}) == [
        RequestViolation("body", None, "/tags/0", "const")
    ]
    assert validator.validate_body(media, {"name": "Rex", "born": "2024-13-01"}) == [
        RequestViolation("body", None, "/born", "format")
    ]
    assert validator.validate_body(media, {"name": "Rex", "owner": "me"}) == [
        RequestViolation("body", None, "/owner", "additionalProperties")
    ]
    assert validator.validate_parameters({"petId": "7"}, [], {}, {}).values["path"] == {"petId": 7}


def test_the_31_vector_spec_compiles() -> None:
    spec = load_spec(VECTORS / "openapi" / "v31.yaml")
    assert len(compile_spec(spec)) == len(spec.operations)
