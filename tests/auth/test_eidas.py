"""TPP identity from eIDAS QWAC/QSealC (PSD2 RTS Art. 34: RTS-15..17; Berlin Group BG-11)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finward.auth.eidas import (
    TppCertificateError,
    TppIdentity,
    check_same_tpp,
    identify_tpp,
    parse_tpp_certificate,
    require_roles,
)
from finward.auth.mtls import certificate_thumbprint
from finward.http import TlsInfo

from . import certs
from .certs import (
    BAFIN,
    HANDMADE_QC_STATEMENTS,
    PSD2,
    QC_COMPLIANCE,
    QC_TYPE,
    QC_TYPE_ESEAL,
    ROLE_OIDS,
    build_certificate,
    encode_psd2_statement,
    encode_qc_statements,
    encode_qc_type,
    psd2_statements,
    qwac,
)


def invalid(der: bytes, **kwargs: bool) -> TppCertificateError:
    with pytest.raises(TppCertificateError) as info:
        parse_tpp_certificate(der, **kwargs)
    assert info.value.reason == "tpp_certificate_invalid"
    return info.value


def with_statements(statements: list[tuple[str, bytes | None]], **kwargs: str) -> bytes:
    return build_certificate(qc_statements=encode_qc_statements(statements), **kwargs)


# --- RTS-16: what a TPP certificate says ----------------------------------------------------


def test_rts16_identity_from_a_qwac() -> None:
    der = qwac("PSP_AI", "PSP_PI")
    assert parse_tpp_certificate(der) == TppIdentity(
        organization_id="PSDDE-BAFIN-123456",
        country="DE",
        nca_id="DE-BAFIN",
        nca_name=BAFIN,
        roles=frozenset({"PSP_AI", "PSP_PI"}),
        subject_cn="tpp.example.com",
        cert_thumbprint=certificate_thumbprint(der),
        authorization_number="123456",
        qc_types=frozenset({"web"}),
    )


def test_rts16_encoder_independent_der_vector() -> None:
    """A hand-assembled QCStatements DER decodes; our test encoder produces the same bytes."""
    assert psd2_statements("PSP_AI", qc_type=None, nca_name="BaFin") == HANDMADE_QC_STATEMENTS
    identity = parse_tpp_certificate(build_certificate(qc_statements=HANDMADE_QC_STATEMENTS))
    assert (identity.roles, identity.nca_name, identity.nca_id) == (
        frozenset({"PSP_AI"}),
        "BaFin",
        "DE-BAFIN",
    )


def test_rts16_belgian_example_organization_identifier() -> None:
    der = qwac("PSP_PI", organization_id="PSDBE-NBB-1234.567.890", nca_id="BE-NBB")
    identity = parse_tpp_certificate(der)
    assert (identity.country, identity.nca_id, identity.authorization_number) == (
        "BE",
        "BE-NBB",
        "1234.567.890",
    )


@pytest.mark.parametrize(
    "org_id",
    [
        "PSDDE-BAFIN",  # no PSP identifier
        "PSDDE-BAFIN-",
        "NTRDE-HRB12345",  # a company register number, not a PSD2 authorisation
        "PSDde-BAFIN-123456",
        "PSDDEU-BAFIN-123456",
        "PSDDE-B-123456",  # NCA id too short
        "PSDDE-BAFINBAFIN-123456",  # NCA id too long
        "PSDDE-BaFin-123456",
        "PSDDE-BAFIN- 123456",
        "PSDDE-BAFIN-12345\u00e9",
        "PSDDE-BAFIN-" + "1" * 129,
    ],
)
def test_rts16_malformed_organization_identifier(org_id: str) -> None:
    # The NCAId is made to agree, so that only the organizationIdentifier syntax can fail.
    nca = org_id.split("-")[1] if org_id.count("-") >= 1 else "BAFIN"
    err = invalid(qwac("PSP_AI", organization_id=org_id, nca_id=f"{org_id[3:5]}-{nca}"))
    assert err.detail == "the organizationIdentifier is not PSD<CC>-<NCA>-<id>"


@pytest.mark.parametrize("nca", ["BA", "ABCDEFGH"])
def test_rts16_nca_identifier_length_bounds(nca: str) -> None:
    der = qwac("PSP_AI", organization_id=f"PSDDE-{nca}-1", nca_id=f"DE-{nca}")
    assert parse_tpp_certificate(der).nca_id == f"DE-{nca}"


def test_rts16_organization_identifier_missing_or_repeated() -> None:
    statements = psd2_statements("PSP_AI")
    invalid(build_certificate(qc_statements=statements, organization_id=None))
    invalid(
        build_certificate(qc_statements=statements, extra_org_ids=["PSDDE-BAFIN-999"]),
    )


def test_rts16_nca_id_must_match_organization_identifier() -> None:
    err = invalid(qwac("PSP_AI", nca_id="FR-ACPR"))
    assert "NCAId" in err.detail


@pytest.mark.parametrize("nca_name", ["", "x" * 257, "BaFin\x00"])
def test_rts16_nca_name_bounds(nca_name: str) -> None:
    invalid(qwac_with_nca_name(nca_name))


def qwac_with_nca_name(nca_name: str) -> bytes:
    return build_certificate(qc_statements=psd2_statements("PSP_AI", nca_name=nca_name))


def test_subject_without_common_name() -> None:
    der = build_certificate(qc_statements=psd2_statements("PSP_AI"), common_name=None)
    assert parse_tpp_certificate(der).subject_cn is None


# --- RTS-15: qualified certificates only -----------------------------------------------------


def test_rts15_non_qualified_certificate_is_rejected() -> None:
    der = qwac("PSP_AI", qc_compliance=False)
    assert "not qualified" in invalid(der).detail
    assert parse_tpp_certificate(der, require_qc_compliance=False).roles == {"PSP_AI"}


def test_rts15_qsealc_qc_type() -> None:
    assert parse_tpp_certificate(qwac("PSP_AI", qc_type=QC_TYPE_ESEAL)).qc_types == {"eseal"}


def test_rts15_certificate_without_qc_statements() -> None:
    assert "no QCStatements" in invalid(build_certificate(qc_statements=None)).detail


# --- RTS-17: roles ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(ROLE_OIDS))
def test_rts17_each_role_is_recognised(role: str) -> None:
    assert parse_tpp_certificate(qwac(role)).roles == {role}


def test_rts17_account_information_tpp_cannot_initiate_payments() -> None:
    """Cert with only PSP_AI calling POST /payments (needs PSP_PI) → rejected."""
    identity = parse_tpp_certificate(qwac("PSP_AI"))
    require_roles(identity, frozenset({"PSP_AI"}))
    with pytest.raises(TppCertificateError) as info:
        require_roles(identity, frozenset({"PSP_PI"}))
    assert info.value.reason == "tpp_role_invalid"
    assert "PSP_PI" in info.value.detail


def test_rts17_role_name_must_match_its_oid() -> None:
    mixed = encode_psd2_statement([(ROLE_OIDS["PSP_AI"], "PSP_PI")])
    err = invalid(with_statements([(QC_COMPLIANCE, None), (PSD2, mixed)]))
    assert "role name" in err.detail


def test_rts17_unknown_roles_grant_nothing() -> None:
    unknown = ("0.4.0.19495.1.9", "PSP_XX")
    only_unknown = encode_psd2_statement([unknown])
    invalid(with_statements([(QC_COMPLIANCE, None), (PSD2, only_unknown)]))
    mixed = encode_psd2_statement([unknown, (ROLE_OIDS["PSP_IC"], "PSP_IC")])
    der = with_statements([(QC_COMPLIANCE, None), (PSD2, mixed)])
    assert parse_tpp_certificate(der).roles == {"PSP_IC"}


def test_rts17_role_and_statement_count_caps() -> None:
    many_roles = encode_psd2_statement([(ROLE_OIDS["PSP_AI"], "PSP_AI")] * 9)
    err = invalid(with_statements([(QC_COMPLIANCE, None), (PSD2, many_roles)]))
    assert "too many roles" in err.detail
    filler: list[tuple[str, bytes | None]] = [(f"1.2.3.{i}", None) for i in range(16)]
    psd2 = encode_psd2_statement(certs.roles("PSP_AI"))
    assert "too many" in invalid(with_statements([*filler, (PSD2, psd2)])).detail


# --- malformed QCStatements ---------------------------------------------------------------


def test_missing_or_empty_psd2_statement() -> None:
    assert "no PSD2" in invalid(with_statements([(QC_COMPLIANCE, None)])).detail
    err = invalid(with_statements([(QC_COMPLIANCE, None), (PSD2, None)]))
    assert err.detail == "the PSD2 QCStatement has no content"
    wrong_type = invalid(with_statements([(QC_COMPLIANCE, None), (PSD2, b"\x0c\x02hi")]))
    assert wrong_type.detail == "the PSD2 QCStatement is not valid DER"


def test_duplicate_statement_is_ambiguous() -> None:
    psd2 = encode_psd2_statement(certs.roles("PSP_AI"))
    assert "twice" in invalid(with_statements([(PSD2, psd2), (PSD2, psd2)])).detail


def test_qc_type_must_decode() -> None:
    psd2 = encode_psd2_statement(certs.roles("PSP_AI"))
    for qc_type in (b"\x05\x00", None, encode_qc_type(*[QC_TYPE_ESEAL] * 4)):
        statements = [(QC_COMPLIANCE, None), (QC_TYPE, qc_type), (PSD2, psd2)]
        assert "QcType" in invalid(with_statements(statements)).detail


@pytest.mark.parametrize(
    "raw",
    [
        b"\x30\x81\x3c" + HANDMADE_QC_STATEMENTS[2:],  # BER long-form length: not DER
        HANDMADE_QC_STATEMENTS + b"\x00",  # trailing bytes
        HANDMADE_QC_STATEMENTS[:-1],  # truncated
        b"",
    ],
)
def test_non_der_or_oversized_extension(raw: bytes) -> None:
    invalid(build_certificate(qc_statements=raw))


def test_oversized_extension_is_refused_before_decoding() -> None:
    padding = bytes(encoder_octets(5000))
    statements = [(QC_COMPLIANCE, None), ("1.2.3.4", padding)]
    psd2 = encode_psd2_statement(certs.roles("PSP_AI"))
    der = with_statements([*statements, (PSD2, psd2)])
    assert invalid(der).detail == "the QCStatements extension is too large"


def encoder_octets(size: int) -> bytes:
    """DER OCTET STRING of ``size`` zero bytes (long-form length)."""
    return b"\x04\x82" + size.to_bytes(2, "big") + bytes(size)


@pytest.mark.parametrize("der", [b"", b"\x30\x00", b"garbage", b"\x30" * 20_000])
def test_not_a_certificate(der: bytes) -> None:
    invalid(der)


# --- BG-11: TPP identification on the connection ---------------------------------------------


def test_bg11_identify_from_the_tls_client_certificate() -> None:
    der = qwac("PSP_PI")
    identity = identify_tpp(TlsInfo(client_cert_der=der, client_cert_source="tls"))
    assert identity.roles == {"PSP_PI"}
    for tls in (None, TlsInfo()):
        with pytest.raises(TppCertificateError) as info:
            identify_tpp(tls)
        assert info.value.reason == "client_cert_required"


def test_bg11_qsealc_must_belong_to_the_qwac_organisation() -> None:
    web = parse_tpp_certificate(qwac("PSP_PI"))
    seal = parse_tpp_certificate(qwac("PSP_PI", qc_type=QC_TYPE_ESEAL))
    check_same_tpp(web, seal)
    other = parse_tpp_certificate(qwac("PSP_PI", organization_id="PSDDE-BAFIN-999999"))
    with pytest.raises(TppCertificateError) as info:
        check_same_tpp(web, other)
    assert info.value.reason == "tpp_certificate_invalid"


# --- properties: hostile bytes never crash the parser ------------------------------------------

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_VALID = qwac("PSP_AI", "PSP_PI")


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_as_certificate(der: bytes) -> None:
    invalid(der)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_as_qc_statements_extension(raw: bytes) -> None:
    invalid(build_certificate(qc_statements=raw))


@FUZZ
@given(st.integers(0, len(HANDMADE_QC_STATEMENTS) - 1), st.integers(0, 255))
def test_mutated_qc_statements_never_crash(position: int, byte: int) -> None:
    raw = bytearray(HANDMADE_QC_STATEMENTS)
    raw[position] = byte
    try:
        parse_tpp_certificate(build_certificate(qc_statements=bytes(raw)))
    except TppCertificateError as err:
        assert err.reason == "tpp_certificate_invalid"


@FUZZ
@given(st.integers(0, len(_VALID) - 1), st.integers(0, 255))
def test_mutated_certificates_never_crash(position: int, byte: int) -> None:
    der = bytearray(_VALID)
    der[position] = byte
    try:
        parse_tpp_certificate(bytes(der))
    except TppCertificateError as err:
        assert err.reason == "tpp_certificate_invalid"
