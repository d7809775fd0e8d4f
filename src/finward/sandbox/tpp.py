"""Berlin Group error responses (`tppMessages`) and the PSU header the sandbox trusts."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from finward.sandbox.model import Bank, Psu

# Set by the gateway from the authenticated token; the sandbox believes it blindly.
# Reaching the sandbox directly with this header is impersonation: that is the point
# the demo makes about why the sandbox must only be reachable through the gateway.
PSU_HEADER = "X-Finward-PSU-ID"
REQUEST_ID_HEADER = "X-Request-ID"

BANK_KEY = web.AppKey("finward_sandbox_bank", Bank)

_PSU_ID_SHAPE = re.compile(r"[A-Za-z0-9._-]{1,64}")


class TppError(Exception):
    """Raised by handlers; the error middleware renders it in BG `tppMessages` shape."""

    def __init__(self, status: int, code: str, text: str, path: str | None = None) -> None:
        super().__init__(f"{status} {code}: {text}")
        self.status = status
        self.code = code
        self.text = text
        self.path = path


def tpp_body(code: str, text: str, path: str | None = None) -> dict[str, Any]:
    message = {"category": "ERROR", "code": code, "text": text}
    if path:
        message["path"] = path
    return {"tppMessages": [message]}


def tpp_response(error: TppError) -> web.Response:
    return web.json_response(tpp_body(error.code, error.text, error.path), status=error.status)


def format_error(text: str, path: str | None = None) -> TppError:
    return TppError(400, "FORMAT_ERROR", text, path)


def resource_unknown(what: str) -> TppError:
    return TppError(404, "RESOURCE_UNKNOWN", f"{what} is unknown to this PSU")


def require_psu(request: web.Request) -> Psu:
    """The PSU named by the gateway-set header: missing → 401, unknown → 404."""
    values = request.headers.getall(PSU_HEADER, [])
    if not values:
        raise TppError(401, "PSU_CREDENTIALS_INVALID", f"{PSU_HEADER} header is missing")
    # Two copies of the header would let a client smuggle an identity past a proxy that
    # only rewrites the first one; refuse rather than pick one.
    if len(values) > 1 or not _PSU_ID_SHAPE.fullmatch(values[0]):
        raise TppError(401, "PSU_CREDENTIALS_INVALID", f"{PSU_HEADER} header is malformed")
    psu = request.app[BANK_KEY].psus.get(values[0])
    if psu is None:
        raise TppError(404, "RESOURCE_UNKNOWN", "The PSU is unknown to this ASPSP")
    return psu


def single_query(request: web.Request, name: str) -> str | None:
    """One query parameter; a repeated one is refused (HTTP parameter pollution)."""
    values = request.query.getall(name, [])
    if len(values) > 1:
        raise format_error(f"Query parameter {name} is repeated", name)
    return values[0] if values else None


def parse_bool_query(request: web.Request, name: str) -> bool:
    value = single_query(request, name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise format_error(f"{name} must be true or false", name)
    return value == "true"
