"""Where a token may come from: the Authorization header only (FAPI-05, RFC 6750, RFC 9449)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finward.auth.tokens import (
    MAX_TOKEN_BYTES,
    PresentedToken,
    TokenError,
    extract_bearer,
    is_token_in_form,
    is_token_in_query,
)
from finward.http import Headers
from tests.auth.jwt_factory import sign

TOKEN = sign()


def extracted(*headers: tuple[str, str], query: str = "") -> PresentedToken:
    return extract_bearer(Headers(headers), query)


def refused(*headers: tuple[str, str], query: str = "", reason: str) -> TokenError:
    with pytest.raises(TokenError) as caught:
        extract_bearer(Headers(headers), query)
    assert caught.value.reason == reason
    return caught.value


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_rfc6750_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    presented = extracted(("Authorization", f"{scheme} {TOKEN}"))
    assert presented == PresentedToken("Bearer", TOKEN)
    assert TOKEN not in repr(presented)


@pytest.mark.parametrize("scheme", ["DPoP", "dpop"])
def test_rfc9449_dpop_scheme_is_recognised(scheme: str) -> None:
    assert extracted(("authorization", f"{scheme} {TOKEN}")) == PresentedToken("DPoP", TOKEN)


def test_several_spaces_and_token68_padding_are_accepted() -> None:
    assert extracted(("Authorization", "Bearer   abc.def~+/==")).token == "abc.def~+/=="


def test_no_authorization_header_is_token_missing_without_error_code() -> None:
    error = refused(("Accept", "application/json"), reason="token_missing")
    assert error.oauth_error is None and error.challenge() == "Bearer"


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Token abc", "Bearerabc", "abc"])
def test_other_schemes_are_token_missing(value: str) -> None:
    refused(("Authorization", value), reason="token_missing")


def test_two_authorization_headers_are_refused() -> None:
    error = refused(
        ("Authorization", f"Bearer {TOKEN}"),
        ("Authorization", f"Bearer {sign(alg='PS256')}"),
        reason="token_malformed",
    )
    assert error.oauth_error == "invalid_request"


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        f"Bearer {TOKEN}, Bearer {TOKEN}",  # comma-joined credentials
        f"Bearer {TOKEN} extra",
        'Bearer "quoted"',
        "Bearer abc=def",  # '=' only as trailing padding
        "Bearer abc\x00",
        "Bearer tök",
    ],
)
def test_value_must_be_scheme_and_one_token68(value: str) -> None:
    refused(("Authorization", value), reason="token_malformed")


def test_oversized_header_token_is_too_large() -> None:
    refused(("Authorization", "Bearer " + "a" * (MAX_TOKEN_BYTES + 1)), reason="token_too_large")


@pytest.mark.parametrize(
    "query",
    [
        f"access_token={TOKEN}",
        f"page=2&access_token={TOKEN}",
        f"a=1;access_token={TOKEN}",
        f"access%5Ftoken={TOKEN}",
        f"%61ccess_token={TOKEN}",
        f"ACCESS_TOKEN={TOKEN}",
        "access_token",
        "access_token=",
    ],
)
def test_fapi05_token_in_query_is_refused_even_with_a_good_header(query: str) -> None:
    error = refused(("Authorization", f"Bearer {TOKEN}"), query=query, reason="token_in_query")
    assert error.oauth_error == "invalid_request" and TOKEN not in str(error)


@pytest.mark.parametrize("query", ["", "page=2", "my_access_token=1", "x=access_token", "%zz=1"])
def test_other_query_parameters_are_fine(query: str) -> None:
    assert not is_token_in_query(query)
    assert extracted(("Authorization", f"Bearer {TOKEN}"), query=query).token == TOKEN


@pytest.mark.parametrize(
    ("body", "content_type", "found"),
    [
        (b"access_token=abc", "application/x-www-form-urlencoded", True),
        (b"a=1&access_token=abc", "Application/X-WWW-Form-Urlencoded; charset=UTF-8", True),
        (b"access%5Ftoken=abc", "application/x-www-form-urlencoded", True),
        (b"a=1&b=2", "application/x-www-form-urlencoded", False),
        (b"access_token=abc", "application/json", False),
        (b'{"access_token": "abc"}', "application/json", False),
        (b"access_token=abc", None, False),
    ],
)
def test_fapi05_rfc6750_form_body_token_detection(
    body: bytes, content_type: str | None, found: bool
) -> None:
    assert is_token_in_form(body, content_type) is found


@given(st.text(max_size=200), st.text(max_size=200))
def test_extraction_never_raises_anything_but_token_error(value: str, query: str) -> None:
    try:
        presented = extract_bearer(Headers([("authorization", value)]), query)
    except TokenError:
        return
    assert presented.scheme in {"Bearer", "DPoP"} and presented.token in value


@given(st.binary(max_size=300), st.text(max_size=60))
def test_form_detection_never_raises(body: bytes, content_type: str) -> None:
    assert isinstance(is_token_in_form(body, content_type), bool)
