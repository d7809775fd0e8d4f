"""OAuth 2.0 plumbing shared by the endpoints: errors, form parsing, client authentication.

The sandbox trusts its caller for one thing: the client certificate. It has no TLS of its
own, so a TLS terminator (or the test) passes the verified certificate as URL-encoded PEM
in ``X-Client-Cert``, as nginx does with ``$ssl_client_escaped_cert``. Whoever can reach
the AS directly can therefore claim any certificate; that is acceptable for a loopback
sandbox and the reason it must never face a network.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote, unquote_plus

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from finward.auth.eidas import TppCertificateError, parse_tpp_certificate
from finward.sandbox.authserver.clients import (
    SCOPES,
    TLS_CLIENT_AUTH,
    ClientRegistration,
    ClientRegistry,
)
from finward.sandbox.authserver.state import AuthServer

AUTHSERVER_KEY = web.AppKey("finward_authserver", AuthServer)

CLIENT_CERT_HEADER = "X-Client-Cert"
# A URL-encoded PEM certificate with a long chain of names stays well below 16 KiB;
# checked before decoding (DESIGN.md: sizes before parsing).
MAX_CLIENT_CERT_HEADER_BYTES = 16 * 1024
# Form bodies of /token, /introspect and /revoke are a few hundred bytes; a token and a
# DPoP-bound request still fit easily.
MAX_FORM_BYTES = 32 * 1024
MAX_FORM_FIELDS = 32
# RFC 6749 §3.3 scope-token characters; bounded, no backtracking.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,64}")
# RFC 7617 credentials are short; a huge Authorization header is refused before decoding.
MAX_BASIC_CREDENTIALS_CHARS = 1024
BASIC_CHALLENGE = 'Basic realm="finward-sandbox-as"'
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response. ``description`` is fixed text, never client input."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body = {"error": self.error, "error_description": self.description}
        return web.json_response(body, status=self.status, headers={**NO_STORE, **self.headers})


def invalid_client(description: str, *, basic_attempted: bool = True) -> OAuthError:
    # RFC 6749 §5.2: 401 with a challenge when the client tried the Authorization header.
    headers = {"WWW-Authenticate": BASIC_CHALLENGE} if basic_attempted else {}
    return OAuthError("invalid_client", description, 401, headers)


async def read_form(request: web.Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict.

    RFC 6749 §3.1/§3.2: parameters must not repeat (a repeated one is refused rather
    than resolved, which would let two components read different values).
    """
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    try:
        # The application's client_max_size is MAX_FORM_BYTES: aiohttp stops reading there.
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise OAuthError("invalid_request", "the request body is too large", 413) from None
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError included
        raise OAuthError("invalid_request", "the request body is not a valid form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", "a request parameter is repeated")
        form[name] = value
    return form


def single_query(request: web.Request) -> dict[str, str]:
    """The query parameters, each at most once (RFC 6749 §3.1)."""
    query: dict[str, str] = {}
    for name, value in request.query.items():
        if name in query:
            raise OAuthError("invalid_request", "a request parameter is repeated")
        query[name] = value
    return query


def parse_scope(value: str | None, client: ClientRegistration) -> str:
    """The requested scope, checked against the client's registration.

    Absent or empty: the client's registered scopes (RFC 6749 §3.3 lets the AS default).
    """
    if not value:
        if not client.scopes:
            raise OAuthError("invalid_scope", "the client has no scopes")
        known = [s for s in SCOPES if s in client.scopes]
        return " ".join(known + sorted(client.scopes.difference(SCOPES)))
    tokens = value.split(" ")
    if not all(_SCOPE_TOKEN.fullmatch(token) for token in tokens):
        raise OAuthError("invalid_scope", "the scope is malformed")
    if not client.allows_scopes(tokens):
        raise OAuthError("invalid_scope", "the scope is not allowed for this client")
    return " ".join(dict.fromkeys(tokens))


def client_certificate(request: web.Request) -> bytes | None:
    """DER of the certificate in ``X-Client-Cert`` (URL-encoded PEM), or None without one."""
    values = request.headers.getall(CLIENT_CERT_HEADER, [])
    if not values:
        return None
    if len(values) > 1:
        raise OAuthError("invalid_request", "more than one client certificate header")
    if len(values[0]) > MAX_CLIENT_CERT_HEADER_BYTES:
        raise OAuthError("invalid_request", "the client certificate header is too large")
    try:
        pem = unquote(values[0], errors="strict").encode("ascii")
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:  # UnicodeError included
        raise OAuthError(
            "invalid_request", "the client certificate is not a PEM certificate"
        ) from None
    return certificate.public_bytes(Encoding.DER)


def authenticate_client(
    clients: ClientRegistry,
    request: web.Request,
    form: Mapping[str, str],
    cert_der: bytes | None,
) -> ClientRegistration:
    """``client_secret_basic`` (RFC 6749 §2.3.1) or ``tls_client_auth`` (RFC 8705 §2.1).

    For ``tls_client_auth`` the certificate must be an eIDAS certificate whose
    organizationIdentifier is the one registered for the client in ``client_id``.
    """
    if "client_secret" in form or "client_assertion" in form:
        raise invalid_client("only client_secret_basic and tls_client_auth are supported")
    authorization = request.headers.getall("Authorization", [])
    if len(authorization) > 1:
        raise OAuthError("invalid_request", "more than one Authorization header")
    if authorization:
        client_id, secret = _basic_credentials(authorization[0])
        if "client_id" in form and form["client_id"] != client_id:
            raise OAuthError("invalid_request", "client_id does not match the authenticated client")
        client = clients.authenticate_secret(client_id, secret)
        if client is None:
            raise invalid_client("client authentication failed")
        return client
    if cert_der is None:
        raise invalid_client("client authentication is required")
    client = clients.get(form.get("client_id", ""))
    if client is None or TLS_CLIENT_AUTH not in client.auth_methods:
        raise invalid_client("client authentication failed", basic_attempted=False)
    try:
        identity = parse_tpp_certificate(cert_der)
    except TppCertificateError:
        raise invalid_client("client authentication failed", basic_attempted=False) from None
    if identity.organization_id != client.organisation_id:
        raise invalid_client("client authentication failed", basic_attempted=False)
    return client


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic" or not credentials:
        raise invalid_client("the Authorization header is not Basic credentials")
    if len(credentials) > MAX_BASIC_CREDENTIALS_CHARS:
        raise invalid_client("the Basic credentials are too long")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise invalid_client("the Basic credentials are malformed") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise invalid_client("the Basic credentials are malformed")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined.
    return unquote_plus(client_id), unquote_plus(secret)
