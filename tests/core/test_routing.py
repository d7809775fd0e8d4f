"""The route table: priorities, decoding, 404/405, mounts, conflicts, and the real specs."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finward.core.routing import Mount, RouteMatch, RouteMiss, Router
from finward.errors import ConfigError
from finward.openapi.loader import load_spec
from finward.openapi.model import HTTP_METHODS, Operation

# Resolved from the repo root: CI checks the repo out with a copy of shared/ beside it.
SHARED_SPECS = Path(__file__).parents[2] / ".." / "shared" / "specs"
FILLER = "x7Qz1"  # a path parameter value no spec uses as a literal segment
METHODS = tuple(m.upper() for m in HTTP_METHODS)


def op(method: str, template: str, api: str = "t") -> Operation:
    return Operation(
        api=api,
        method=method,
        path_template=template,
        operation_id=f"{method} {template}",
        parameters=(),
        security=None,
        tags=(),
        request_body=None,
        responses={},
        extensions={},
        raw={},
    )


def mount(api: str, base: str, *ops: Operation, prefix: str = "") -> Mount:
    return Mount(api, base, "bank", prefix, ops)


def router(*ops: Operation) -> Router:
    return Router.compile([mount("t", "", *ops)])


def hit(result: RouteMatch | RouteMiss) -> RouteMatch:
    assert isinstance(result, RouteMatch), result
    return result


NOT_FOUND = RouteMiss("route_not_found", ())


# --- priorities and templates -------------------------------------------------------


def test_literal_segments_win_and_the_search_backtracks() -> None:
    literal, templated = op("GET", "/a/b/d"), op("GET", "/a/{x}/c")
    table = router(literal, templated)
    assert hit(table.match("GET", "/a/b/d")).operation is literal
    found = hit(table.match("GET", "/a/b/c"))  # the literal 'b' leads to a dead end
    assert found.operation is templated and found.path_params == {"x": "b"}
    assert table.match("GET", "/a/b/e") == NOT_FOUND


def test_mixed_segments() -> None:
    as_json, whole, pair = (
        op("GET", "/files/{name}.json"),
        op("GET", "/files/{name}"),
        op("GET", "/range/{a}-{b}"),
    )
    table = router(as_json, whole, pair)
    assert hit(table.match("GET", "/files/report.json")).path_params == {"name": "report"}
    assert hit(table.match("GET", "/files/report.json")).operation is as_json
    assert hit(table.match("GET", "/files/a.json.json")).path_params == {"name": "a.json"}
    assert hit(table.match("GET", "/files/.json")).operation is whole  # {name} can't be empty
    assert hit(table.match("GET", "/files/report.xml")).operation is whole
    assert hit(table.match("GET", "/range/1-2-3")).path_params == {"a": "1", "b": "2-3"}
    for path in ("/range/1-", "/range/-2", "/range/12", "/range/-"):
        assert table.match("GET", path) == NOT_FOUND, path


def test_more_literal_text_wins_between_mixed_segments() -> None:
    short, long = op("GET", "/f/{a}.json"), op("GET", "/f/{a}.min.json")
    found = hit(router(short, long).match("GET", "/f/app.min.json"))
    assert found.operation is long and found.path_params == {"a": "app"}


def test_values_are_percent_decoded_and_literals_compare_decoded() -> None:
    table = Router.compile([mount("t", "/psd2", op("GET", "/accounts/{id}"), prefix="/api/")])
    found = hit(table.match("GET", "/psd%32/acc%6Funts/DE89%20%C3%A9"))
    assert found.path_params == {"id": "DE89 é"}
    assert found.upstream_path == "/api/acc%6Funts/DE89%20%C3%A9"  # the client's encoding


@pytest.mark.parametrize(
    "path",
    [
        "",
        "accounts/1",
        "/accounts",
        "/accounts/",  # empty parameter value
        "/accounts/1/",
        "/accounts//1",
        "/accounts/a%2Fb",  # encoded '/' would smuggle a segment
        "/accounts/%00",
        "/accounts/a%00b",
        "/accounts/..",
        "/accounts/%2e%2E",
        "/accounts/.",
        "/accounts/%FF",  # not UTF-8 once decoded
        "/accounts/1?x=1",  # no query string is expected; '?' is not special here
        "/" * 10_000,
        "/accounts" * 1000,
    ],
)
def test_odd_paths_are_not_found(path: str) -> None:
    table = router(op("GET", "/accounts/{id}"), op("GET", "/accounts/{id}/x"))
    result = table.match("GET", path)
    if path == "/accounts/1?x=1":
        assert hit(result).path_params == {"id": "1?x=1"}  # the caller strips queries
    else:
        assert result == NOT_FOUND, path


# --- 404 and 405 ---------------------------------------------------------------------


def test_method_not_allowed_lists_every_method_of_matching_templates() -> None:
    get_b, put_x, delete_x = op("GET", "/a/b"), op("PUT", "/a/{x}"), op("DELETE", "/a/{x}")
    table = router(get_b, put_x, delete_x)
    assert hit(table.match("DELETE", "/a/b")).operation is delete_x  # the method counts
    assert table.match("POST", "/a/b") == RouteMiss("method_not_allowed", ("DELETE", "GET", "PUT"))
    assert table.match("POST", "/a/c") == RouteMiss("method_not_allowed", ("DELETE", "PUT"))
    assert table.match("POST", "/a/b/c") == NOT_FOUND


def test_head_is_not_implied_and_methods_are_case_sensitive() -> None:
    table = router(op("GET", "/a"))
    assert table.match("HEAD", "/a") == RouteMiss("method_not_allowed", ("GET",))
    assert table.match("get", "/a") == RouteMiss("method_not_allowed", ("GET",))


# --- mounts ----------------------------------------------------------------------------


def test_mounts_at_different_base_paths_share_one_trie() -> None:
    root_op, psd2_op, uk_op = op("GET", "/{x}/info"), op("GET", "/info"), op("GET", "/info")
    table = Router.compile(
        [
            mount("root", "", root_op, prefix="/r"),
            mount("psd2", "/psd2/", psd2_op, prefix="/bank/"),
            mount("uk", "/open-banking/v4.0", uk_op),
        ]
    )
    assert table.operation_count == 3
    psd2 = hit(table.match("GET", "/psd2/info"))
    assert (psd2.mount.api, psd2.operation, psd2.upstream_path) == ("psd2", psd2_op, "/bank/info")
    uk = hit(table.match("GET", "/open-banking/v4.0/info"))
    assert (uk.mount.api, uk.upstream_path) == ("uk", "/info")
    other = hit(table.match("GET", "/other/info"))
    assert (other.operation, other.path_params, other.upstream_path) == (
        root_op,
        {"x": "other"},
        "/r/other/info",
    )


def test_root_template_under_a_base_path() -> None:
    table = Router.compile([mount("t", "/api", op("GET", "/"), prefix="/v2")])
    assert hit(table.match("GET", "/api")).upstream_path == "/v2"
    table = Router.compile([mount("t", "", op("GET", "/"))])
    assert hit(table.match("GET", "/")).upstream_path == "/"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Router.compile(
            [
                mount("a", "/x", op("GET", "/items/{id}"), op("GET", "/items/{other}")),
                mount("b", "/x/", op("GET", "/items/{itemId}")),
                mount("b", "/y", op("GET", "/{a}{b}"), op("GET", "/{}"), op("GET", "/{a}/{a}")),
                mount("c", "/z", op("GET", "/a{b"), op("GET", "nope"), op("GET", "/a//b")),
                mount("d", "/bad/../base"),
            ]
        )
    problems = info.value.problems
    assert sum("ambiguous route" in p for p in problems) == 2
    assert any("'b' is mounted twice" in p for p in problems)
    assert any("adjacent parameters" in p for p in problems)
    assert any("without a name" in p for p in problems)
    assert any("appears twice" in p for p in problems)
    assert any("stray" in p for p in problems)
    assert any("must start with '/'" in p for p in problems)
    assert any("empty, '.' and '..'" in p for p in problems)
    assert any("base_path '/bad/../base'" in p for p in problems)
    assert len(problems) == 10


def test_a_large_table_still_matches_exactly() -> None:
    ops = [op("GET", f"/svc{i}/items/{{id}}") for i in range(5000)]
    table = router(*ops)
    found = hit(table.match("GET", "/svc4321/items/7"))
    assert found.operation is ops[4321] and found.path_params == {"id": "7"}
    assert table.match("GET", "/svc5000/items/7") == NOT_FOUND


# --- the five real specs, mounted together ---------------------------------------------


@pytest.fixture(scope="module")
def real_mounts() -> list[Mount]:
    files = sorted(SHARED_SPECS.glob("*.yaml"))
    assert len(files) == 5, f"expected the five open-banking specs in {SHARED_SPECS.resolve()}"
    return [
        Mount(f.stem, f"/{f.stem}", "bank", f"/up{i}", load_spec(f, api=f.stem).operations)
        for i, f in enumerate(files)
    ]


@pytest.fixture(scope="module")
def real_router(real_mounts: list[Mount]) -> Router:
    return Router.compile(real_mounts)


def template_regex(template: str) -> re.Pattern[str]:
    """The linear-scan reference the trie must agree with."""
    parts = re.split(r"\{[^{}]+\}", template)
    return re.compile("[^/]+".join(re.escape(p) for p in parts))


def test_every_operation_of_the_real_specs_is_routed(
    real_router: Router, real_mounts: list[Mount]
) -> None:
    walked = misses = 0
    for m in real_mounts:
        patterns = [(o.method, template_regex(o.path_template)) for o in m.operations]
        for operation in m.operations:
            names = re.findall(r"\{([^{}]+)\}", operation.path_template)
            values = {name: f"{FILLER}{i}" for i, name in enumerate(names)}
            concrete = operation.path_template
            for name, value in values.items():
                concrete = concrete.replace("{" + name + "}", value)
            found = hit(real_router.match(operation.method, m.base_path + concrete))
            assert found.operation is operation, (operation.method, operation.path_template)
            assert (found.mount, found.path_params) == (m, values)
            assert found.upstream_path == m.upstream_path_prefix + concrete

            allowed = sorted({meth for meth, rx in patterns if rx.fullmatch(concrete)})
            wrong = next(meth for meth in METHODS if meth not in allowed)
            assert real_router.match(wrong, m.base_path + concrete) == RouteMiss(
                "method_not_allowed", tuple(allowed)
            )
            for unknown in (concrete + "/zz-unknown", "/zz-unknown" + concrete):
                if not any(rx.fullmatch(unknown) for _, rx in patterns):  # reference says 404
                    assert real_router.match(operation.method, m.base_path + unknown) == NOT_FOUND
                    misses += 1
            assert real_router.match(operation.method, concrete) == NOT_FOUND  # no base path
            walked += 1
    assert walked == real_router.operation_count == 125
    assert walked > 100
    assert misses > 200


def test_berlin_group_payment_status_needs_backtracking(real_router: Router) -> None:
    base = "/berlin-group-nextgenpsd2-1.3.6"
    found = hit(real_router.match("GET", base + "/payments/sepa-credit-transfers/p1/status"))
    assert (
        found.operation.path_template == "/{payment-service}/{payment-product}/{paymentId}/status"
    )
    assert found.path_params == {
        "payment-service": "payments",
        "payment-product": "sepa-credit-transfers",
        "paymentId": "p1",
    }
    literal = hit(real_router.match("GET", base + "/payments/sepa-credit-transfers/p1"))
    assert literal.operation.path_template == "/payments/{payment-product}/{paymentId}"


# --- properties ------------------------------------------------------------------------

ODD_SEGMENTS = st.sampled_from(
    ["", ".", "..", "%", "%2", "%zz", "%2F", "%00", "%FF", "%C3", "{id}", FILLER, "accounts"]
)


@settings(max_examples=400, deadline=None)
@given(
    method=st.sampled_from(METHODS) | st.text(max_size=8),
    path=st.text(max_size=300)
    | st.lists(ODD_SEGMENTS | st.text(max_size=12), max_size=9).map(lambda s: "/" + "/".join(s)),
    base=st.sampled_from(["", "/berlin-group-nextgenpsd2-1.3.6", "/uk-ob-vrp-openapi-4.0.0"]),
)
def test_match_never_raises(real_router: Router, method: str, path: str, base: str) -> None:
    result = real_router.match(method, base + path)
    assert isinstance(result, RouteMatch | RouteMiss)


VALUES = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).filter(
    lambda v: "/" not in v and "\x00" not in v and v not in (".", "..")
)


@settings(max_examples=300, deadline=None)
@given(value=VALUES, tag=VALUES)
def test_any_encoded_value_round_trips(value: str, tag: str) -> None:
    table = Router.compile(
        [mount("t", "/b", op("GET", "/items/{id}"), op("GET", "/items/{id}/tags/{tag}.json"))]
    )
    raw = f"/b/items/{quote(value, safe='')}/tags/{quote(tag, safe='')}.json"
    found = hit(table.match("GET", raw))
    assert found.path_params == {"id": value, "tag": tag}
    assert found.upstream_path == raw[2:]
