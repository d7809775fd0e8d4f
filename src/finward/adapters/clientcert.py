"""Client certificates: from the TLS handshake, or from a trusted terminator's header.

nginx sends ``$ssl_client_escaped_cert`` (URL-encoded PEM); Envoy sends
``x-forwarded-client-cert`` with ``Cert="<URL-encoded PEM>"`` among other
key=value pairs. The header is honoured only from configured proxy addresses
and stripped from everyone else (an attacker could otherwise claim any TPP
identity). A header certificate is verified against the configured client CA
bundle, like a handshake certificate.
"""

from __future__ import annotations

import datetime
import hashlib
import time
from collections import OrderedDict
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from finward.auth.mtls import certificate_thumbprint

# A PEM certificate chain from a terminator; real eIDAS QWACs are 2-4 KB each.
MAX_CERT_HEADER_BYTES = 16_384
# Parsed-header cache: parsing and verifying costs ~100 µs; a TPP reuses its cert.
CERT_CACHE_SIZE = 1024
# Longest chain accepted from a header (leaf, intermediates, anchor): eIDAS chains are 3-4.
MAX_CHAIN_DEPTH = 5


class ClientCertError(ValueError):
    pass


def _extract_pem(value: str) -> str:
    value = value.strip()
    if "cert=" in value.lower() and "-----begin" not in value.lower():
        # Envoy XFCC: elements separated by ',', pairs by ';'; take the first Cert.
        for pair in value.split(";"):
            key, _, val = pair.strip().partition("=")
            if key.strip().lower() == "cert":
                return unquote(val.strip().strip('"'))
        raise ClientCertError("no Cert in x-forwarded-client-cert")
    return unquote(value)


def _valid_at(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def verify_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    anchors: list[x509.Certificate],
    now: datetime.datetime,
) -> None:
    """Check what the TLS handshake would: signatures up to a trust anchor, validity, CA flags.

    Signatures are verified by ``cryptography``; this only walks the chain. It is
    deliberately no stricter than OpenSSL's handshake check, so a certificate is
    accepted or refused the same way whether it arrives by TLS or by header.
    """
    cert = leaf
    for _ in range(MAX_CHAIN_DEPTH):
        if not _valid_at(cert, now):
            raise ClientCertError("certificate expired or not yet valid")
        for anchor in anchors:
            if anchor.subject == cert.issuer and _signed_by(cert, anchor):
                if not _valid_at(anchor, now):
                    raise ClientCertError("trust anchor expired")
                return
        parent = next(
            (
                c
                for c in intermediates
                if c.subject == cert.issuer and _is_ca(c) and _signed_by(cert, c)
            ),
            None,
        )
        if parent is None:
            break
        cert = parent
    raise ClientCertError("certificate not issued by a trusted CA")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


class ClientCertReader:
    def __init__(self, client_ca: Path) -> None:
        # Trust anchors are mandatory: without them any self-made certificate would pass.
        self._anchors = x509.load_pem_x509_certificates(client_ca.read_bytes())
        # header hash -> (DER, x5t#S256, not-after as a POSIX timestamp)
        self._cache: OrderedDict[bytes, tuple[bytes, str, float]] = OrderedDict()

    def read_header(self, value: str, *, now: datetime.datetime | None = None) -> bytes:
        """Return the verified certificate as DER, or raise ClientCertError."""
        return self.read(value, now=now)[0]

    def read(self, value: str, *, now: datetime.datetime | None = None) -> tuple[bytes, str, float]:
        """The verified certificate as (DER, x5t#S256 thumbprint, not-after timestamp), or
        raise ClientCertError.

        Verified certificates are cached by the header's hash until they expire.
        """
        if len(value) > MAX_CERT_HEADER_BYTES:
            raise ClientCertError("certificate header too large")
        key = hashlib.sha256(value.encode("latin-1")).digest()
        timestamp = now.timestamp() if now is not None else time.time()
        cached = self._cache.get(key)
        if cached is not None and cached[2] >= timestamp:
            self._cache.move_to_end(key)
            return cached
        when = now or datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
        pem = _extract_pem(value)
        try:
            certs = x509.load_pem_x509_certificates(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError) as exc:
            raise ClientCertError("malformed certificate") from exc
        leaf, intermediates = certs[0], certs[1:MAX_CHAIN_DEPTH]
        verify_chain(leaf, intermediates, self._anchors, when)
        der = leaf.public_bytes(Encoding.DER)
        entry = (der, certificate_thumbprint(der), leaf.not_valid_after_utc.timestamp())
        self._cache[key] = entry
        if len(self._cache) > CERT_CACHE_SIZE:
            self._cache.popitem(last=False)
        return entry
