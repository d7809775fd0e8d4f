"""OpenAPI loading: multi-file $refs, cycles, 3.0/3.1, and clear refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import finward.openapi.resolver as resolver_module
from finward.errors import FinwardError
from finward.openapi.loader import SpecError, load_spec
from finward.openapi.model import LoadedSpec, Operation

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors" / "openapi"
SHARED_SPECS = REPO / ".." / "shared" / "specs"


def by_id(spec: LoadedSpec, operation_id: str) -> Operation:
    return next(op for op in spec.operations if op.operation_id == operation_id)


@pytest.fixture(scope="module")
def multi() -> LoadedSpec:
    return load_spec(VECTORS / "multi" / "openapi.yaml", api="bank")


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(text: str, name: str = "openapi.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


# --- the multi-file spec -----------------------------------------------------------


def test_multi_file_spec_lists_every_operation(multi: LoadedSpec) -> None:
    assert {(op.method, op.path_template) for op in multi.operations} == {
        ("GET", "/accounts"),
        ("POST", "/accounts"),
        ("GET", "/accounts/{accountId}"),
        ("DELETE", "/accounts/{accountId}"),
        ("GET", "/files/{name}.json"),
        ("GET", "/health"),
    }
    assert all(op.api == "bank" for op in multi.operations)
    assert multi.openapi_version == "3.0"
    assert multi.title == "Multi-file bank"
    assert multi.version == "2024-01-01"  # a YAML date becomes text again
    assert multi.servers == ("/bank/v1",)


def test_refs_nested_in_other_files_resolve_relative_to_that_file(multi: LoadedSpec) -> None:
    list_accounts = by_id(multi, "listAccounts")
    request_id, limit = list_accounts.parameters
    # ../../common.yaml from paths/, and its own '#/components/schemas/Uuid' from common.yaml.
    assert (request_id.name, request_id.location, request_id.required) == (
        "X-Request-ID",
        "header",
        True,
    )
    assert request_id.schema == {"type": "string", "format": "uuid"}
    assert (limit.name, limit.style, limit.explode) == ("limit", "form", False)
    account = list_accounts.responses["200"]["content"]["application/json"]["schema"]["items"]
    assert account["properties"]["id"]["pattern"] == "^[A-Za-z0-9-]{1,40}$"
    assert account["properties"]["iban"] == {"type": "string", "minLength": 15, "maxLength": 34}
    money = account["properties"]["balance"]
    assert money["properties"]["currency"]["pattern"] == "^[A-Z]{3}$"  # via ../../common.yaml


def test_names_and_instance_data_are_not_mistaken_for_refs(multi: LoadedSpec) -> None:
    body = by_id(multi, "createAccount").request_body
    assert body is not None and body["required"] is True
    account = body["content"]["application/json"]["schema"]
    assert account["properties"]["$ref"] == {"type": "string"}  # a property called "$ref"
    assert account["properties"]["balance"]["example"]["$ref"] == "not-a-reference"


def test_one_resolved_object_per_target(multi: LoadedSpec) -> None:
    body = by_id(multi, "createAccount").request_body
    assert body is not None
    from_body = body["content"]["application/json"]["schema"]
    listed = by_id(multi, "listAccounts").responses["200"]["content"]["application/json"]
    assert listed["schema"]["items"] is from_body


def test_operation_parameters_override_path_parameters(multi: LoadedSpec) -> None:
    get_account = by_id(multi, "getAccount")
    assert [(p.name, p.location, p.required) for p in get_account.parameters] == [
        ("accountId", "path", True),  # path params are required even when the spec forgets
        ("x-request-id", "header", False),  # overrides X-Request-ID: case-insensitive name
    ]  # and the Authorization header parameter is ignored, as OpenAPI says
    delete = by_id(multi, "deleteAccount")
    assert [p.name for p in delete.parameters] == ["accountId", "X-Request-ID"]
    assert get_account.responses["200"]["description"] == "one account"


def test_escaped_pointers_and_default_styles(multi: LoadedSpec) -> None:
    get_file = by_id(multi, "getFile")
    styles = {p.name: (p.location, p.style, p.explode) for p in get_file.parameters}
    assert styles == {
        "name": ("path", "simple", False),  # via '#/components/parameters/a~1b~0c'
        "q": ("query", "form", True),  # via '#/components/parameters/with%20space'
        "session": ("cookie", "form", True),
    }
    assert list(get_file.responses) == ["200"]  # YAML int key 200 -> "200"


def test_security_is_the_operations_own_else_the_roots(multi: LoadedSpec) -> None:
    assert by_id(multi, "listAccounts").security == ({"oauth": ("accounts",)},)
    assert by_id(multi, "getFile").security == ()  # `security: []` means public
    cyclic = load_spec(VECTORS / "cyclic.yaml")
    assert cyclic.operations[0].security is None  # declared nowhere


def test_extensions_and_tags(multi: LoadedSpec) -> None:
    health = next(op for op in multi.operations if op.path_template == "/health")
    assert health.extensions == {"x-internal": True, "x-rate-limit": {"per-minute": 5}}
    assert health.operation_id is None
    assert by_id(multi, "listAccounts").tags == ("accounts", "read")
    assert list(health.responses) == ["default"]


def test_operations_are_hashable_so_they_can_key_caches(multi: LoadedSpec) -> None:
    compiled = {op: op.operation_id for op in multi.operations}
    assert compiled[by_id(multi, "getAccount")] == "getAccount"


# --- cycles ------------------------------------------------------------------------


def test_cyclic_schemas_keep_a_resolvable_back_edge() -> None:
    spec = load_spec(VECTORS / "cyclic.yaml")
    (trees,) = spec.operations
    assert trees.request_body is not None
    node = trees.request_body["content"]["application/json"]["schema"]
    back_edge = node["properties"]["children"]["items"]
    assert back_edge["$ref"].endswith("cyclic.yaml#/components/schemas/Node")
    assert spec.resolver.resolve_uri(back_edge["$ref"]) is node
    json.dumps([trees.request_body, trees.responses])  # acyclic: serialisable


def test_cycles_across_files() -> None:
    (trees,) = load_spec(VECTORS / "cyclic.yaml").operations
    person = trees.responses["200"]["content"]["application/json"]["schema"]
    ceo = person["properties"]["employer"]["properties"]["ceo"]
    assert ceo["$ref"].startswith("file://")
    assert ceo["$ref"].endswith("cyclic_other.yaml#/Person")


def test_a_ref_that_only_refers_to_itself_is_refused(write_spec: Callable[..., Path]) -> None:
    path = write_spec(
        """
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /a:
    get:
      parameters: [{$ref: "#/components/parameters/Loop"}]
      responses: {"200": {description: ok}}
components:
  parameters:
    Loop: {$ref: "#/components/parameters/Loop"}
"""
    )
    with pytest.raises(SpecError, match="only leads back to itself"):
        load_spec(path)


def test_path_item_fields_beside_a_ref_win(write_spec: Callable[..., Path]) -> None:
    write_spec(
        "get: {operationId: sharedGet}\npost: {operationId: sharedPost}\n", "items/item.yaml"
    )
    path = write_spec(
        """
openapi: 3.0.3
paths:
  /a:
    $ref: "./items/item.yaml"
    post: {operationId: localPost}
"""
    )
    ids = {op.method: op.operation_id for op in load_spec(path).operations}
    assert ids == {"GET": "sharedGet", "POST": "localPost"}


def test_path_item_ref_loops_are_refused(write_spec: Callable[..., Path]) -> None:
    path = write_spec(
        'openapi: 3.0.3\npaths:\n  /a: {$ref: "#/paths/~1b"}\n  /b: {$ref: "#/paths/~1a"}\n'
    )
    with pytest.raises(SpecError, match="chained path item"):
        load_spec(path)


def test_a_schema_that_is_an_alias_inside_a_cycle_is_fine(
    write_spec: Callable[..., Path],
) -> None:
    path = write_spec(
        """
openapi: 3.0.3
paths:
  /a:
    get:
      responses:
        "200":
          description: ok
          content: {application/json: {schema: {$ref: "#/components/schemas/A"}}}
components:
  schemas:
    A: {type: object, properties: {b: {$ref: "#/components/schemas/B"}}}
    B: {$ref: "#/components/schemas/A"}
"""
    )
    spec = load_spec(path)
    a = spec.operations[0].responses["200"]["content"]["application/json"]["schema"]
    assert spec.resolver.resolve_uri(a["properties"]["b"]["$ref"]) is a


# --- OpenAPI 3.1 -------------------------------------------------------------------


def test_openapi_31() -> None:
    spec = load_spec(VECTORS / "v31.yaml")
    assert spec.openapi_version == "3.1"
    assert spec.version == "1.0"  # YAML float -> text
    get_pet = by_id(spec, "getPet")
    (pet_id,) = get_pet.parameters
    assert pet_id.raw["description"] == "overridden"  # 3.1 Reference Object sibling
    assert spec.document["components"]["parameters"]["PetId"]["description"] == "original"
    schema = get_pet.responses["200"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["name"]  # a 3.1 schema $ref applies with its siblings
    assert schema["allOf"][0]["properties"]["name"]["type"] == ["string", "null"]
    put_photo = by_id(spec, "putPhoto")  # path item $ref into components/pathItems
    assert (put_photo.method, put_photo.path_template) == ("PUT", "/pets/{petId}/photo")
    assert [p.name for p in put_photo.parameters] == ["petId"]
    assert len(spec.operations) == 2  # webhooks are not routes


def test_31_document_without_paths(write_spec: Callable[..., Path]) -> None:
    path = write_spec('openapi: 3.1.0\ninfo: {title: hooks, version: "1"}\nwebhooks: {}\n')
    assert load_spec(path).operations == ()


def test_json_spec() -> None:
    spec = load_spec(VECTORS / "minimal.json", api="json")
    assert [(op.method, op.path_template, op.operation_id) for op in spec.operations] == [
        ("GET", "/ping", "ping")
    ]


# --- refusals ----------------------------------------------------------------------


def test_swagger_2_is_refused_with_a_hint() -> None:
    with pytest.raises(SpecError) as info:
        load_spec(VECTORS / "swagger2.yaml")
    assert isinstance(info.value, FinwardError)
    message = str(info.value)
    assert "swagger2.yaml" in message and "Swagger 2.0" in message
    assert "convert it to OpenAPI 3" in message


def test_remote_refs_are_refused_and_never_fetched() -> None:
    with pytest.raises(SpecError) as info:
        load_spec(VECTORS / "remote_ref.yaml")
    error = info.value
    assert error.file.name == "remote_ref.yaml"
    assert error.pointer == "/paths/~1accounts/get/parameters/0/$ref"
    assert "never fetches" in str(error) and "https://example.com/params.yaml" in str(error)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("file:///etc/passwd", "is a URL"),
        ("//example.com/x.yaml", "is a URL"),
        ("/etc/openapi.yaml#/X", "not a relative file reference"),
        ("#Anchor", "not a JSON pointer"),
        ("#/components/parameters/Missing", "points to nothing"),
        ("./missing.yaml#/X", "cannot be loaded"),
    ],
)
def test_bad_refs_name_the_file_and_location(
    write_spec: Callable[..., Path], ref: str, expected: str
) -> None:
    path = write_spec(
        f"""
openapi: 3.0.3
info: {{title: t, version: "1"}}
paths:
  /a:
    get:
      parameters: [{{$ref: "{ref}"}}]
      responses: {{"200": {{description: ok}}}}
"""
    )
    with pytest.raises(SpecError, match=expected) as info:
        load_spec(path)
    assert info.value.file == path
    assert info.value.pointer == "/paths/~1a/get/parameters/0/$ref"
    assert info.value.hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('openapi: 3.2.0\ninfo: {title: t, version: "1"}\n', "3.2.0' is not supported"),
        ('openapi: "2.0"\ninfo: {title: t, version: "1"}\n', "'2.0' is not supported"),
        ('info: {title: t, version: "1"}\n', "no 'openapi' version"),
        ("- just\n- a list\n", "not a mapping"),
        ("openapi: 3.0.3\npaths: {a: [\n", "invalid YAML: line 3"),
        ("openapi: 3.0.3\npaths:\n  accounts: {}\n", "must start with '/'"),
        ("openapi: 3.0.3\npaths:\n  /a: {get: {parameters: [{name: x, in: body}]}}\n", "in: body"),
        ("openapi: 3.0.3\npaths:\n  /a: {get: {parameters: [{in: query}]}}\n", "needs a 'name'"),
        ("openapi: 3.0.3\nsecurity: {oauth: []}\n", "'security' must be a list"),
    ],
)
def test_invalid_documents(write_spec: Callable[..., Path], text: str, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        load_spec(write_spec(text))


def test_missing_file() -> None:
    with pytest.raises(SpecError, match="cannot read the file"):
        load_spec(VECTORS / "does-not-exist.yaml")


def test_size_is_checked_before_parsing(
    write_spec: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resolver_module, "MAX_SPEC_BYTES", 1000)
    path = write_spec("openapi: 3.0.3\n" + "# padding\n" * 200 + "{[ not yaml")
    with pytest.raises(SpecError, match="larger than 1000 bytes"):
        load_spec(path)


def test_alias_bombs_cost_their_size_not_their_expansion(
    write_spec: Callable[..., Path],
) -> None:
    # "Billion laughs": 10 levels of 10 aliases expand to 10^10 nodes if walked naively.
    levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        levels.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    bomb = "\n".join("  " + line for line in levels)
    path = write_spec(
        "openapi: 3.0.3\ninfo: {title: t, version: '1'}\n"
        "x-bomb:\n" + bomb + "\n"
        "paths:\n  /a:\n    get:\n      responses:\n"
        "        '200': {description: ok, x-payload: *l9}\n"
    )
    started = time.perf_counter()
    (op,) = load_spec(path).operations
    assert time.perf_counter() - started < 5
    assert op.responses["200"]["x-payload"][0] is op.responses["200"]["x-payload"][1]


def test_recursive_yaml_alias_is_refused(write_spec: Callable[..., Path]) -> None:
    path = write_spec(
        "openapi: 3.0.3\npaths:\n  /a:\n    get:\n      responses:\n"
        "        '200': &loop {description: ok, nested: [*loop]}\n"
    )
    with pytest.raises(SpecError, match="contains itself"):
        load_spec(path)


def test_deep_nesting_is_an_error_not_a_crash(write_spec: Callable[..., Path]) -> None:
    deep = "{a: " * 400 + "1" + "}" * 400
    path = write_spec(
        f"openapi: 3.0.3\npaths:\n  /a:\n    get:\n      responses:\n        '200': {deep}\n"
    )
    with pytest.raises(SpecError, match="nested deeper than"):
        load_spec(path)


# --- the real open-banking specs ---------------------------------------------------

REAL_SPECS = {
    "berlin-group-nextgenpsd2-1.3.6.yaml": 42,
    "uk-ob-account-info-openapi-4.0.0.yaml": 29,
    "uk-ob-confirmation-funds-openapi-4.0.0.yaml": 4,
    "uk-ob-payment-initiation-openapi-4.0.0.yaml": 41,
    "uk-ob-vrp-openapi-4.0.0.yaml": 9,
}


@pytest.mark.parametrize(("name", "count"), REAL_SPECS.items())
def test_real_specs_load(name: str, count: int) -> None:
    spec = load_spec(SHARED_SPECS / name, api=name)
    assert len(spec.operations) == count
    for op in spec.operations:
        assert op.responses, f"{op.method} {op.path_template} has no responses"
        assert all(isinstance(code, str) for code in op.responses)
        for param in op.parameters:
            assert param.schema is not None or param.content is not None
            assert "$ref" not in param.raw
        json.dumps([op.responses, op.request_body])  # fully resolved, acyclic
