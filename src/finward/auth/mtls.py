"""Certificate-bound access tokens (RFC 8705 §3, MTLS-01/02).

A token bound to a client certificate carries ``cnf: {"x5t#S256": <thumbprint>}``
(from the JWT or from the introspection response, §3.1/§3.2). The resource server
accepts it only over a TLS connection whose verified client certificate has that
thumbprint. Chain validation (MTLS-04) happened in the TLS layer: ``TlsInfo``
carries a client certificate only when it was verified, and a terminator's header
only when the adapter trusts that terminator (MTLS-03).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import TypeGuard

from finward.errors import FinwardError
from finward.http import TlsInfo

# Confirmation method member for certificate-bound tokens (RFC 8705 §3.1).
X5T_S256 = "x5t#S256"
# base64url without padding of a 32-byte SHA-256 digest.
_THUMBPRINT_CHARS = 43
# 42 base64url characters, then one that carries the last 4 data bits and 2 zero bits of
# a 32-byte value.
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")


class MtlsError(FinwardError):
    """A certificate binding check failed; ``reason`` is a catalogued reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def certificate_thumbprint(der: bytes) -> str:
    """``x5t#S256``: base64url (no padding) of SHA-256 over the DER certificate (§3.1)."""
    digest = hashlib.sha256(der).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def tls_thumbprint(tls: TlsInfo) -> str | None:
    """The thumbprint of the connection's verified certificate, computed once per TlsInfo."""
    if tls.client_cert_thumbprint is None and tls.client_cert_der:
        tls.client_cert_thumbprint = certificate_thumbprint(tls.client_cert_der)
    return tls.client_cert_thumbprint


def is_thumbprint(value: object) -> TypeGuard[str]:
    """True for a syntactically valid base64url SHA-256 thumbprint."""
    return (
        isinstance(value, str)
        and len(value) == _THUMBPRINT_CHARS
        and _THUMBPRINT.fullmatch(value) is not None
    )


def check_mtls_binding(cnf: Mapping[str, object] | None, tls: TlsInfo | None) -> None:
    """Raise :class:`MtlsError` unless the token is bound to this connection's certificate.

    - no ``cnf.x5t#S256`` → ``token_binding_missing`` (the caller requires binding);
    - no verified client certificate on the connection → ``client_cert_required``;
    - a different certificate → ``mtls_binding_mismatch`` (RFC 8705 §3, MTLS-01).
    """
    expected = cnf.get(X5T_S256) if cnf is not None else None
    if expected is None:
        raise MtlsError("token_binding_missing", "the access token is not certificate-bound")
    if tls is None or not tls.client_cert_der:
        raise MtlsError(
            "client_cert_required", "a certificate-bound token needs a TLS client certificate"
        )
    if not is_thumbprint(expected):
        raise MtlsError("mtls_binding_mismatch", "the token's x5t#S256 is not a SHA-256 thumbprint")
    actual = tls_thumbprint(tls) or ""
    # Constant time: the comparison must not leak how much of a guessed thumbprint matched.
    if not hmac.compare_digest(actual.encode("ascii"), expected.encode("ascii")):
        raise MtlsError(
            "mtls_binding_mismatch", "the client certificate is not the one the token is bound to"
        )
