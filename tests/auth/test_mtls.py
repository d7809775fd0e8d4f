"""Certificate-bound access tokens (RFC 8705 §3; requirement IDs MTLS-01, MTLS-02)."""

from __future__ import annotations

import base64
import hashlib
from functools import cache

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from finward.auth import mtls
from finward.auth.mtls import MtlsError, certificate_thumbprint, check_mtls_binding, is_thumbprint
from finward.http import TlsInfo


@cache
def client_cert(name: str) -> bytes:
    """DER of a real client certificate issued by a trustme CA."""
    pem = trustme.CA().issue_cert(f"{name}@tpp.example").cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def tls_with(der: bytes | None) -> TlsInfo:
    return TlsInfo(version="TLSv1.3", client_cert_der=der, client_cert_source="tls")


def refused(cnf: dict[str, object] | None, tls: TlsInfo | None) -> MtlsError:
    with pytest.raises(MtlsError) as info:
        check_mtls_binding(cnf, tls)
    return info.value


def test_thumbprint_vectors() -> None:
    # SHA-256("") = e3b0c442…b855, base64url without padding.
    assert certificate_thumbprint(b"") == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    der = client_cert("alice")
    fingerprint = x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256())
    expected = base64.urlsafe_b64encode(fingerprint).rstrip(b"=").decode()
    assert certificate_thumbprint(der) == expected
    assert len(expected) == 43 and "=" not in expected
    assert hashlib.sha256(der).digest() == fingerprint


def test_thumbprint_syntax() -> None:
    assert is_thumbprint(certificate_thumbprint(b"x"))
    # RFC 8705 §3.1's example value ends in "2": its last 2 bits are not zero, so it is
    # not the canonical base64url of any SHA-256 digest and can never match a certificate.
    assert not is_thumbprint("bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2")
    for bad in (None, 42, "", "A" * 42, "A" * 44, "+" * 43, "A" * 42 + "B"):
        assert not is_thumbprint(bad)


def test_mtls01_token_bound_to_this_connections_certificate_passes() -> None:
    der = client_cert("alice")
    check_mtls_binding({"x5t#S256": certificate_thumbprint(der)}, tls_with(der))


def test_mtls01_same_token_over_another_certificate_is_refused() -> None:
    cnf = {"x5t#S256": certificate_thumbprint(client_cert("alice"))}
    err = refused(cnf, tls_with(client_cert("mallory")))
    assert err.reason == "mtls_binding_mismatch"
    assert "not the one" in err.detail


def test_mtls02_binding_from_an_introspection_response() -> None:
    """RFC 8705 §3.2: introspection returns the same ``cnf`` member; same check applies."""
    der = client_cert("alice")
    introspection = {"active": True, "cnf": {"x5t#S256": certificate_thumbprint(der)}}
    cnf = introspection["cnf"]
    assert isinstance(cnf, dict)
    check_mtls_binding(cnf, tls_with(der))
    assert refused(cnf, tls_with(client_cert("bob"))).reason == "mtls_binding_mismatch"


@pytest.mark.parametrize("tls", [None, TlsInfo(version="TLSv1.3"), tls_with(b"")])
def test_bound_token_without_client_certificate(tls: TlsInfo | None) -> None:
    cnf = {"x5t#S256": certificate_thumbprint(client_cert("alice"))}
    assert refused(cnf, tls).reason == "client_cert_required"


@pytest.mark.parametrize("cnf", [None, {}, {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}])
def test_unbound_token_where_certificate_binding_is_required(cnf: dict[str, str] | None) -> None:
    assert refused(cnf, tls_with(client_cert("alice"))).reason == "token_binding_missing"


@pytest.mark.parametrize("value", [42, "", "not-a-thumbprint", ["x"], "A" * 43 + "="])
def test_malformed_thumbprint_in_token(value: object) -> None:
    assert refused({"x5t#S256": value}, tls_with(client_cert("alice"))).reason == (
        "mtls_binding_mismatch"
    )


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = mtls.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(mtls.hmac, "compare_digest", spy)
    der = client_cert("alice")
    check_mtls_binding({"x5t#S256": certificate_thumbprint(der)}, tls_with(der))
    assert calls == [(certificate_thumbprint(der).encode(),) * 2]
