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
_MULTIPART_TYPE = "multipart/form-data"
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

    Names are percent- and plus-decoded and compared case-insensitively, and the spellings
    PHP folds into ``access_token`` (``access.token``, ``access token``,
    ``access_token[]``) count too: refusing a spelling the upstream would not read costs
    nothing, missing one it would read leaks the token. ``;`` separates like ``&``.
    """
    lowered = query.lower()
    if "%" not in query and ("access" not in lowered or "token" not in lowered):
        return False  # fast path: the name cannot be there, encoded or not
    for pair in _QUERY_SEPARATORS.split(query):
        name = pair.partition("=")[0]
        if _is_token_name(unquote_plus(name)):
            return True
    return False


def is_token_in_form(body: bytes, content_type: str | None) -> bool:
    """Whether a form body carries ``access_token`` (RFC 6750 §2.2); FAPI-05 refuses it.

    ``application/x-www-form-urlencoded`` is the form RFC 6750 §2.2 defines;
    ``multipart/form-data`` parts named ``access_token`` are refused as well, since most
    frameworks read both alike. The adapter bounds the body size before calling this.
    """
    if content_type is None:
        return False
    media = content_type.partition(";")[0].strip(" \t").lower()
    lowered = body.lower()
    if b"%" not in body and (b"access" not in lowered or b"token" not in lowered):
        return False
    if media == _FORM_TYPE:
        for pair in _FORM_SEPARATORS.split(body):
            name = pair.partition(b"=")[0].replace(b"+", b" ")
            if _is_token_name(unquote_to_bytes(name).decode("latin-1")):
                return True
        return False
    if media == _MULTIPART_TYPE:
        return any(_is_token_name(name) for name in _multipart_names(body))
    return False


def _is_token_name(name: str) -> bool:
    """``access_token`` as an application framework would read the parameter name."""
    name = name.lower()
    bracket = name.find("[")
    if bracket > 0 and "]" in name[bracket:]:
        name = name[:bracket]  # access_token[] / access_token[0]: PHP arrays
    return name.replace(".", "_").replace(" ", "_").replace("[", "_") == _PARAMETER


def _multipart_names(body: bytes) -> list[str]:
    """The ``name`` parameters of every Content-Disposition line (RFC 7578 §4.2).

    A line scan, not a multipart parser: it over-approximates (a body line that merely
    looks like a part header counts), which can only refuse more, never forward a token.
    """
    names = []
    for line in body.split(b"\n"):
        head, _, rest = line.strip().partition(b":")
        if head.strip().lower() != b"content-disposition":
            continue
        for param in rest.split(b";")[1:]:
            key, _, value = param.partition(b"=")
            if key.strip().lower() in (b"name", b"name*"):
                names.append(value.strip().strip(b'"').decode("latin-1"))
    return names
