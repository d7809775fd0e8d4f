"""Where a resource server may find an access token: the Authorization header only.

FAPI 2.0 §5.3.4 (FAPI-05): tokens are accepted only in the ``Authorization`` header, as
``Bearer`` (RFC 6750 §2.1) or ``DPoP`` (RFC 9449 §7.1). A token in the query string
(RFC 6750 §2.3) leaks into access logs, browser history and Referer headers; one in a form
body (§2.2) is refused by the adapter, which owns the body (``is_token_in_form``).
Re-exported by ``finward.auth.tokens``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote_plus, unquote_to_bytes

from finward.auth.token_policy import MAX_TOKEN_BYTES, TokenError
from finward.http import Headers

# RFC 6750 §2.1 b64token / RFC 7235 token68. No nested quantifier: linear on any input.
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# Authorization schemes are case-insensitive (RFC 7235 §2.1); normalised spelling.
_SCHEMES = MappingProxyType({"bearer": "Bearer", "dpop": "DPoP"})
# RFC 6750 §2.2/§2.3 parameter name.
_PARAMETER = "access_token"
_FORM_TYPE = "application/x-www-form-urlencoded"
_QUERY_SEPARATORS = re.compile(r"[&;]")
_FORM_SEPARATORS = re.compile(rb"[&;]")


@dataclass(frozen=True, slots=True)
class PresentedToken:
    """The token a client offered and the scheme it used. ``repr`` never shows the token."""

    scheme: str  # "Bearer" or "DPoP"
    token: str = field(repr=False)


def extract_bearer(headers: Headers, query: str) -> PresentedToken:
    """Return the access token from ``Authorization: Bearer|DPoP <token>``, or raise.

    Raises ``TokenError`` with ``token_in_query`` (FAPI-05) when the query string also
    carries ``access_token`` - checked first, so a token in the URL is always refused -
    ``token_missing`` when there is no Authorization header or it uses another scheme,
    ``token_malformed`` for a repeated header or a value that is not ``scheme SP token68``,
    and ``token_too_large`` beyond ``MAX_TOKEN_BYTES``.
    """
    if is_token_in_query(query):
        raise TokenError("token_in_query", "access tokens are accepted only in Authorization")
    values = headers.get_all("authorization")
    if not values:
        raise TokenError("token_missing", "no Authorization header")
    if len(values) > 1:
        # Two credentials: which one would the upstream see? Refuse (RFC 6750 §3.1).
        raise TokenError(
            "token_malformed", "more than one Authorization header", oauth_error="invalid_request"
        )
    value = values[0].strip(" \t")
    scheme, _, rest = value.partition(" ")
    normalised = _SCHEMES.get(scheme.lower())
    if normalised is None:
        raise TokenError("token_missing", "Authorization scheme is not Bearer or DPoP")
    token = rest.lstrip(" ")  # RFC 7235 §2.1: 1*SP between scheme and token68
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenError("token_too_large", f"access token exceeds {MAX_TOKEN_BYTES} bytes")
    if _TOKEN68.fullmatch(token) is None:
        raise TokenError(
            "token_malformed",
            "Authorization value is not one token68",
            oauth_error="invalid_request",
        )
    return PresentedToken(normalised, token)


def is_token_in_query(query: str) -> bool:
    """Whether the raw query string has an ``access_token`` parameter (RFC 6750 §2.3).

    Names are percent- and plus-decoded and compared case-insensitively, so
    ``ACCESS%5Ftoken=`` counts too: refusing a spelling the upstream would not read costs
    nothing, missing one it would read leaks the token. ``;`` separates like ``&``.
    """
    if "%" not in query and _PARAMETER not in query.lower():
        return False  # fast path: the name cannot be there, encoded or not
    for pair in _QUERY_SEPARATORS.split(query):
        name = pair.partition("=")[0]
        if unquote_plus(name).lower() == _PARAMETER:
            return True
    return False


def is_token_in_form(body: bytes, content_type: str | None) -> bool:
    """Whether a form body carries ``access_token`` (RFC 6750 §2.2); FAPI-05 refuses it.

    Only ``application/x-www-form-urlencoded`` bodies are forms (RFC 6750 §2.2 requires
    that media type). The adapter bounds the body size before calling this.
    """
    if content_type is None:
        return False
    if content_type.partition(";")[0].strip(" \t").lower() != _FORM_TYPE:
        return False
    if b"%" not in body and _PARAMETER.encode() not in body.lower():
        return False
    for pair in _FORM_SEPARATORS.split(body):
        name = pair.partition(b"=")[0].replace(b"+", b" ")
        if unquote_to_bytes(name).lower() == _PARAMETER.encode():
            return True
    return False
