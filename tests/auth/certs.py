"""Real eIDAS-style test certificates: QWAC/QSealC with ETSI TS 119 495 QCStatements.

The QCStatements are encoded here with pyasn1 from schemas written independently of
``finward.auth.eidas`` (so a schema mistake there is not mirrored here), and the
certificates are built and signed with ``cryptography``.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import encoder
from pyasn1.type import char, namedtype, univ

QC_STATEMENTS = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")
QC_COMPLIANCE = "0.4.0.1862.1.1"
QC_TYPE = "0.4.0.1862.1.6"
QC_TYPE_WEB = "0.4.0.1862.1.6.3"
QC_TYPE_ESEAL = "0.4.0.1862.1.6.2"
PSD2 = "0.4.0.19495.2"
ROLE_OIDS = {
    "PSP_AS": "0.4.0.19495.1.1",
    "PSP_PI": "0.4.0.19495.1.2",
    "PSP_AI": "0.4.0.19495.1.3",
    "PSP_IC": "0.4.0.19495.1.4",
}
BAFIN = "Federal Financial Supervisory Authority"

# Hand-assembled DER (X.690) of a QCStatements value: QcCompliance plus a PSD2 statement
# with role PSP_AI (0.4.0.19495.1.3 -> 06 07 04 00 81 98 27 01 03), NCAName "BaFin" and
# NCAId "DE-BAFIN". An encoder-independent vector for the decoder.
HANDMADE_QC_STATEMENTS = bytes.fromhex(
    "303c"  # QCStatements ::= SEQUENCE OF (60 bytes)
    "3008060604008e460101"  # { QcCompliance 0.4.0.1862.1.1 }
    "30300606040081982702"  # { id-etsi-psd2-qcStatement 0.4.0.19495.2,
    "3026"  #   PSD2QcType (38 bytes) {
    "30133011060704008198270103"  #     rolesOfPSP { { 0.4.0.19495.1.3,
    "0c065053505f4149"  #       "PSP_AI" } },
    "0c05426146696e"  #     nCAName "BaFin",
    "0c0844452d424146494e"  #     nCAId "DE-BAFIN" } }
)


def _statement(oid: str, info: bytes | None = None) -> univ.Sequence:
    spec = univ.Sequence(
        componentType=namedtype.NamedTypes(
            namedtype.NamedType("statementId", univ.ObjectIdentifier()),
            namedtype.OptionalNamedType("statementInfo", univ.Any()),
        )
    )
    value = spec.clone()
    value["statementId"] = univ.ObjectIdentifier(oid)
    if info is not None:
        value["statementInfo"] = univ.Any(info)
    return value


def encode_psd2_statement(
    roles: Iterable[tuple[str, str]], nca_name: str = BAFIN, nca_id: str = "DE-BAFIN"
) -> bytes:
    """DER of PSD2QcType (TS 119 495 Annex A) for (role OID, role name) pairs."""
    role_spec = univ.Sequence(
        componentType=namedtype.NamedTypes(
            namedtype.NamedType("roleOfPspOid", univ.ObjectIdentifier()),
            namedtype.NamedType("roleOfPspName", char.UTF8String()),
        )
    )
    roles_value = univ.SequenceOf(componentType=role_spec)
    for oid, name in roles:
        role = role_spec.clone()
        role["roleOfPspOid"] = univ.ObjectIdentifier(oid)
        role["roleOfPspName"] = char.UTF8String(name)
        roles_value.append(role)
    value = univ.Sequence(
        componentType=namedtype.NamedTypes(
            namedtype.NamedType("rolesOfPSP", univ.SequenceOf(componentType=role_spec)),
            namedtype.NamedType("nCAName", char.UTF8String()),
            namedtype.NamedType("nCAId", char.UTF8String()),
        )
    )
    value["rolesOfPSP"] = roles_value
    value["nCAName"] = char.UTF8String(nca_name)
    value["nCAId"] = char.UTF8String(nca_id)
    return bytes(encoder.encode(value))


def encode_qc_type(*oids: str) -> bytes:
    value = univ.SequenceOf(componentType=univ.ObjectIdentifier())
    for oid in oids:
        value.append(univ.ObjectIdentifier(oid))
    return bytes(encoder.encode(value))


def encode_qc_statements(statements: Sequence[tuple[str, bytes | None]]) -> bytes:
    """DER of RFC 3739 QCStatements from (statementId, statementInfo DER) pairs."""
    value = univ.SequenceOf(componentType=_statement("1.2").clone())
    for oid, info in statements:
        value.append(_statement(oid, info))
    return bytes(encoder.encode(value))


def roles(*names: str) -> list[tuple[str, str]]:
    return [(ROLE_OIDS[n], n) for n in names]


def psd2_statements(
    *role_names: str,
    nca_id: str = "DE-BAFIN",
    nca_name: str = BAFIN,
    qc_compliance: bool = True,
    qc_type: str | None = QC_TYPE_WEB,
) -> bytes:
    """A typical QWAC QCStatements value with the given PSD2 roles."""
    statements: list[tuple[str, bytes | None]] = []
    if qc_compliance:
        statements.append((QC_COMPLIANCE, None))
    if qc_type is not None:
        statements.append((QC_TYPE, encode_qc_type(qc_type)))
    statements.append((PSD2, encode_psd2_statement(roles(*role_names), nca_name, nca_id)))
    return encode_qc_statements(statements)


@dataclass(frozen=True)
class Issuer:
    key: ec.EllipticCurvePrivateKey
    name: x509.Name


@cache
def issuer() -> Issuer:
    """A test 'QTSP' CA key (one per test session: key generation is the slow part)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "finward test QTSP")])
    return Issuer(ec.generate_private_key(ec.SECP256R1()), name)


@cache
def subject_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def build_certificate(
    *,
    qc_statements: bytes | None,
    organization_id: str | None = "PSDDE-BAFIN-123456",
    common_name: str | None = "tpp.example.com",
    extra_org_ids: Sequence[str] = (),
) -> bytes:
    """DER of a certificate signed by the test issuer, with a raw QCStatements extension."""
    ca = issuer()
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "DE")]
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example TPP GmbH"))
    for org_id in ([organization_id] if organization_id else []) + list(extra_org_ids):
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, org_id))
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca.name)
        .public_key(subject_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
    )
    if qc_statements is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(QC_STATEMENTS, qc_statements), critical=False
        )
    cert = builder.sign(ca.key, hashes.SHA256())
    return cert.public_bytes(Encoding.DER)


def qwac(
    *role_names: str,
    organization_id: str = "PSDDE-BAFIN-123456",
    nca_id: str = "DE-BAFIN",
    qc_compliance: bool = True,
    qc_type: str | None = QC_TYPE_WEB,
) -> bytes:
    """A QWAC (QcType web) for ``organization_id`` with the given PSD2 roles."""
    statements = psd2_statements(
        *role_names, nca_id=nca_id, qc_compliance=qc_compliance, qc_type=qc_type
    )
    return build_certificate(qc_statements=statements, organization_id=organization_id)
