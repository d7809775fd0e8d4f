"""TPP identity from eIDAS certificates (PSD2 RTS Art. 34, ETSI TS 119 495).

A third-party provider identifies itself with a qualified website certificate (QWAC,
on the TLS connection) or a qualified seal certificate (QSealC). Both carry:

- the RFC 3739 ``QCStatements`` extension (OID 1.3.6.1.5.5.7.1.3) with
  ``QcCompliance`` (ETSI EN 319 412-5 §4.2.1: the certificate is qualified, RTS-15) and
  the PSD2 statement ``0.4.0.19495.2`` = ``PSD2QcType {rolesOfPSP, nCAName, nCAId}``
  (TS 119 495 §5.1-5.2, Annex A; RTS-16/17);
- the subject ``organizationIdentifier`` (2.5.4.97), ``PSD<CC>-<NCA>-<id>``
  (TS 119 495 §5.2.1, EN 319 412-1 §5.1.4).

``cryptography`` parses the certificate; pyasn1 decodes the extension's inner DER
against the ASN.1 of TS 119 495 Annex A, and re-encodes it to insist on DER. Chain,
validity and revocation were checked by the TLS layer (MTLS-04), not here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, namedtype, univ

from finward.auth.mtls import certificate_thumbprint
from finward.errors import FinwardError
from finward.http import TlsInfo

# Size limits, checked before parsing. A QWAC is 1-3 KB; 16 KiB is far beyond any real one.
MAX_CERT_BYTES = 16 * 1024
# A real QCStatements extension is ~100-400 bytes (5-6 statements).
MAX_QC_EXTENSION_BYTES = 4096
MAX_QC_STATEMENTS = 16
# TS 119 495 defines four roles; a certificate listing more is malformed or hostile.
MAX_PSP_ROLES = 8
# TS 119 495 Annex A: RoleOfPspName, NCAName, NCAId are UTF8String (SIZE (256)).
MAX_PSD2_STRING_CHARS = 256
MAX_PSP_ID_CHARS = 128

QC_STATEMENTS_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")  # RFC 3739 §3.2.6
QC_COMPLIANCE_OID = "0.4.0.1862.1.1"  # EN 319 412-5 §4.2.1 id-etsi-qcs-QcCompliance
QC_TYPE_OID = "0.4.0.1862.1.6"  # EN 319 412-5 §4.2.3 id-etsi-qcs-QcType
PSD2_STATEMENT_OID = "0.4.0.19495.2"  # TS 119 495 §5.1 id-etsi-psd2-qcStatement
# TS 119 495 §5.1: role OIDs (id-psd2-role-psp-*) and their fixed names.
PSP_ROLES: Mapping[str, str] = {
    "0.4.0.19495.1.1": "PSP_AS",  # account servicing
    "0.4.0.19495.1.2": "PSP_PI",  # payment initiation
    "0.4.0.19495.1.3": "PSP_AI",  # account information
    "0.4.0.19495.1.4": "PSP_IC",  # issuing of card-based payment instruments
}
# EN 319 412-5 §4.2.3: QcType values.
QC_TYPES: Mapping[str, str] = {
    "0.4.0.1862.1.6.1": "esign",
    "0.4.0.1862.1.6.2": "eseal",
    "0.4.0.1862.1.6.3": "web",
}

# ASN.1 schemas (read-only templates: the decoder clones them).
# RFC 3739 §3.2.6: QCStatements ::= SEQUENCE OF QCStatement
_QC_STATEMENTS = univ.SequenceOf(
    componentType=univ.Sequence(
        componentType=namedtype.NamedTypes(
            namedtype.NamedType("statementId", univ.ObjectIdentifier()),
            namedtype.OptionalNamedType("statementInfo", univ.Any()),
        )
    )
)
# TS 119 495 Annex A: PSD2QcType ::= SEQUENCE { rolesOfPSP, nCAName, nCAId }
_PSD2_QC_TYPE = univ.Sequence(
    componentType=namedtype.NamedTypes(
        namedtype.NamedType(
            "rolesOfPSP",
            univ.SequenceOf(
                componentType=univ.Sequence(
                    componentType=namedtype.NamedTypes(
                        namedtype.NamedType("roleOfPspOid", univ.ObjectIdentifier()),
                        namedtype.NamedType("roleOfPspName", char.UTF8String()),
                    )
                )
            ),
        ),
        namedtype.NamedType("nCAName", char.UTF8String()),
        namedtype.NamedType("nCAId", char.UTF8String()),
    )
)
# EN 319 412-5 §4.2.3: QcType ::= SEQUENCE OF OBJECT IDENTIFIER
_QC_TYPE = univ.SequenceOf(componentType=univ.ObjectIdentifier())

_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class TppCertificateError(FinwardError):
    """TPP identification failed; ``reason`` is a catalogued code, ``detail`` is fixed text."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TppIdentity:
    """Who the TPP is, as its NCA registered it (RTS-16), and what it may do (RTS-17)."""

    organization_id: str  # "PSDDE-BAFIN-123456"
    country: str  # "DE"
    nca_id: str  # "DE-BAFIN" (NCAId; equals the orgId's country and NCA parts)
    nca_name: str  # "Federal Financial Supervisory Authority"
    roles: frozenset[str]  # {"PSP_AI", "PSP_PI"}
    subject_cn: str | None
    cert_thumbprint: str  # x5t#S256 of the certificate (RFC 8705 §3.1)
    authorization_number: str = ""  # "123456": the PSP identifier within the NCA
    qc_types: frozenset[str] = frozenset()  # {"web"} for a QWAC, {"eseal"} for a QSealC


def identify_tpp(tls: TlsInfo | None) -> TppIdentity:
    """The TPP identity from this connection's verified client certificate (QWAC, BG-11)."""
    if tls is None or not tls.client_cert_der:
        raise TppCertificateError("client_cert_required", "TPP identification needs a QWAC")
    return parse_tpp_certificate(tls.client_cert_der)


def parse_tpp_certificate(der: bytes, *, require_qc_compliance: bool = True) -> TppIdentity:
    """Parse a QWAC/QSealC; raise ``tpp_certificate_invalid`` when anything is off."""
    if not der or len(der) > MAX_CERT_BYTES:
        raise _invalid("the certificate is empty or too large")
    try:
        with warnings.catch_warnings():
            # cryptography tolerates some RFC 5280 violations (e.g. a non-positive serial)
            # with a deprecation warning; a TPP certificate gets no such leniency.
            warnings.simplefilter("error", CryptographyDeprecationWarning)
            cert = x509.load_der_x509_certificate(der)
            extension = cert.extensions.get_extension_for_oid(QC_STATEMENTS_OID)
            org_ids = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
            common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except x509.ExtensionNotFound:
        raise _invalid("the certificate has no QCStatements extension") from None
    except (
        ValueError,
        TypeError,
        x509.InvalidVersion,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
        CryptographyDeprecationWarning,
    ):
        raise _invalid("the certificate is not a valid X.509 certificate") from None
    raw = extension.value
    if not isinstance(raw, x509.UnrecognizedExtension):
        raise _invalid("the QCStatements extension is not understood")
    statements = _parse_qc_statements(raw.value)
    if require_qc_compliance and QC_COMPLIANCE_OID not in statements:
        # RTS-15: only qualified certificates identify a TPP (RTS Art. 34(1)).
        raise _invalid("the certificate is not qualified (no QcCompliance statement)")
    if PSD2_STATEMENT_OID not in statements:
        raise _invalid("the certificate has no PSD2 QCStatement")
    roles, nca_name, nca_id = _parse_psd2_statement(statements[PSD2_STATEMENT_OID])
    qc_types: frozenset[str] = frozenset()
    if QC_TYPE_OID in statements:
        qc_types = _parse_qc_type(statements[QC_TYPE_OID])

    if len(org_ids) != 1 or not isinstance(org_ids[0].value, str):
        raise _invalid("the subject needs exactly one organizationIdentifier")
    organization_id = org_ids[0].value
    country, nca, authorization_number = _parse_organization_id(organization_id)
    # TS 119 495 §5.2.3: NCAId is "<CC>-<NCA>", the same NCA as in organizationIdentifier.
    if nca_id != f"{country}-{nca}":
        raise _invalid("the NCAId does not match the organizationIdentifier")
    cn = common_names[0].value if common_names else None
    return TppIdentity(
        organization_id=organization_id,
        country=country,
        nca_id=nca_id,
        nca_name=nca_name,
        roles=roles,
        subject_cn=cn if isinstance(cn, str) else None,
        cert_thumbprint=certificate_thumbprint(der),
        authorization_number=authorization_number,
        qc_types=qc_types,
    )


def require_roles(identity: TppIdentity, needed: frozenset[str]) -> None:
    """RTS-17: the certificate must hold every role the operation needs (e.g. PSP_PI for PIS)."""
    missing = needed - identity.roles
    if missing:
        raise TppCertificateError(
            "tpp_role_invalid", f"the TPP certificate lacks the role {', '.join(sorted(missing))}"
        )


def check_same_tpp(qwac: TppIdentity, qseal: TppIdentity) -> None:
    """BG-11: a QSealC used to sign a request must belong to the TPP of the QWAC."""
    if qwac.organization_id != qseal.organization_id:
        raise _invalid("the QSealC and the QWAC belong to different organisations")


def _invalid(detail: str) -> TppCertificateError:
    return TppCertificateError("tpp_certificate_invalid", detail)


def _decode_der(substrate: bytes, spec: Any, what: str) -> Any:
    """Decode against ``spec``; insist on exactly one value in canonical DER (X.690 §10)."""
    try:
        value, rest = der_decoder.decode(substrate, asn1Spec=spec)
        canonical = der_encoder.encode(value)
    except (PyAsn1Error, ValueError, TypeError, IndexError, OverflowError, RecursionError):
        # pyasn1 reports hostile input in several ways (e.g. OverflowError for a length
        # beyond sys.maxsize); each one means the bytes are not the structure we need.
        raise _invalid(f"the {what} is not valid DER") from None
    if rest or canonical != substrate:
        raise _invalid(f"the {what} is not valid DER")
    return value


def _parse_qc_statements(raw: bytes) -> dict[str, bytes | None]:
    """statementId → DER of statementInfo (None when absent); duplicates are refused."""
    if len(raw) > MAX_QC_EXTENSION_BYTES:
        raise _invalid("the QCStatements extension is too large")
    decoded = _decode_der(raw, _QC_STATEMENTS, "QCStatements extension")
    if len(decoded) > MAX_QC_STATEMENTS:
        raise _invalid("the QCStatements extension has too many statements")
    statements: dict[str, bytes | None] = {}
    for statement in decoded:
        oid = str(statement["statementId"])
        if oid in statements:
            raise _invalid("a QCStatement appears twice")
        info = statement["statementInfo"]
        statements[oid] = bytes(info) if info.isValue else None
    return statements


def _parse_psd2_statement(info: bytes | None) -> tuple[frozenset[str], str, str]:
    """PSD2QcType (TS 119 495 Annex A) → (roles, NCA name, NCA id)."""
    if info is None:
        raise _invalid("the PSD2 QCStatement has no content")
    decoded = _decode_der(info, _PSD2_QC_TYPE, "PSD2 QCStatement")
    entries = decoded["rolesOfPSP"]
    if len(entries) > MAX_PSP_ROLES:
        raise _invalid("the PSD2 QCStatement lists too many roles")
    roles: set[str] = set()
    for entry in entries:
        oid = str(entry["roleOfPspOid"])
        name = _psd2_string(entry["roleOfPspName"], "role name")
        expected = PSP_ROLES.get(oid)
        if expected is not None and name != expected:
            raise _invalid("a PSD2 role name does not match its role OID")
        if expected is not None:
            roles.add(expected)
        # Unknown role OIDs grant nothing; they are ignored for forward compatibility.
    if not roles:
        raise _invalid("the PSD2 QCStatement has no known role")
    nca_name = _psd2_string(decoded["nCAName"], "NCA name")
    nca_id = _psd2_string(decoded["nCAId"], "NCA id")
    return frozenset(roles), nca_name, nca_id


def _parse_qc_type(info: bytes | None) -> frozenset[str]:
    if info is None:
        raise _invalid("the QcType statement has no content")
    decoded = _decode_der(info, _QC_TYPE, "QcType statement")
    if len(decoded) > len(QC_TYPES):
        raise _invalid("the QcType statement lists too many types")
    return frozenset(QC_TYPES[str(oid)] for oid in decoded if str(oid) in QC_TYPES)


def _psd2_string(value: Any, what: str) -> str:
    try:
        text = str(value)
    except (PyAsn1Error, UnicodeError):
        raise _invalid(f"the PSD2 {what} is not UTF-8") from None
    if not 1 <= len(text) <= MAX_PSD2_STRING_CHARS or not text.isprintable():
        raise _invalid(f"the PSD2 {what} is empty, too long or has control characters")
    return text


def _parse_organization_id(value: str) -> tuple[str, str, str]:
    """``PSD`` + ISO 3166 country + ``-`` + NCA (2-8 A-Z) + ``-`` + PSP id (TS 119 495 §5.2.1)."""
    prefix, sep1, rest = value.partition("-")
    nca, sep2, psp_id = rest.partition("-")
    country = prefix[3:]
    valid = (
        sep1
        and sep2
        and prefix.startswith("PSD")
        and len(country) == 2
        and all(c in _UPPER for c in country)
        and 2 <= len(nca) <= 8
        and all(c in _UPPER for c in nca)
        and 1 <= len(psp_id) <= MAX_PSP_ID_CHARS
        and psp_id.isascii()
        and psp_id.isprintable()
        and psp_id == psp_id.strip()
    )
    if not valid:
        raise _invalid("the organizationIdentifier is not PSD<CC>-<NCA>-<id>")
    return country, nca, psp_id
