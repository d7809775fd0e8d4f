"""Path canonicalisation: the traversal and path-confusion vectors, and a property test."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finward.core.canonical import check_path

CANONICAL = [
    "/",
    "/v1/accounts",
    "/v1/accounts/DE89370400440532013000",
    "/a/b%20c",
    "/files/x.json",
    "/a;v=1",
    "/~user",
    "/a/..b",
    "/a/b..",
]
NOT_CANONICAL = [
    "",
    "v1/accounts",
    "/v1/../admin",
    "/v1/./accounts",
    "/v1/..",
    "/v1/..;/admin",
    "/v1/.;/admin",
    "/v1//accounts",
    "/v1/%2e%2e/admin",
    "/v1/%2E%2E/admin",
    "/v1/.%2e/admin",
    "/v1/..%2fadmin",
    "/v1/..%2Fadmin",
    "/v1/..%5cadmin",
    "/v1/..\\admin",
    "/v1/%252e%252e/admin",
    "/v1/a%00.json",
    "/v1/a%0d%0aSet-Cookie:x",
    "/v1/%zz",
    "/v1/%4",
    "/v1/a b",
    "/v1/a\tb",
    "/v1/\x7f",
    "/v1/é",
    "/v1/<script>",
]


@pytest.mark.parametrize("path", CANONICAL)
def test_canonical_paths_pass(path: str) -> None:
    assert check_path(path) is None


@pytest.mark.parametrize("path", NOT_CANONICAL)
def test_confusing_paths_are_refused(path: str) -> None:
    assert check_path(path) is not None


@given(st.text(max_size=200))
def test_never_raises_and_accepted_paths_have_no_dot_segments(path: str) -> None:
    if check_path(path) is None:
        segments = path.split("/")
        assert path.startswith("/")
        assert ".." not in segments and "." not in segments
        assert "%2f" not in path.lower() and "%2e" not in path.lower()
