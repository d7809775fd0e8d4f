"""End-to-end authentication fixtures: a JWKS server, a QTSP with QWACs, a gateway.

Everything is real: keys from ``cryptography``, tokens signed by PyJWT, certificates
signed by a test CA with ETSI TS 119 495 QCStatements, an aiohttp JWKS endpoint and
upstream on loopback, and finward on a loopback socket. Time is a FakeClock at
``jwt_factory.NOW`` so token lifetimes are exact; certificates are valid around the real
time because the TLS layer and the terminator-header reader check them against it.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import itertools
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from cryptography.x509.oid import NameOID

from finward.auth.dpop import access_token_hash
from finward.auth.mtls import certificate_thumbprint
from finward.clock import FakeClock
from finward.config.model import (
    ApiAuthConfig,
    ApiConfig,
    AuthConfig,
    GatewayConfig,
    IssuerConfig,
    ProxyConfig,
)
from tests.auth import certs, jwt_factory
from tests.auth.dpop_client import Signer
from tests.harness import VECTORS, Gateway, Upstream, make_config, start_gateway

AUTH_SPEC = VECTORS / "gateway" / "auth-api.yaml"
PUBLIC_BASE_URL = "https://api.bank.example"
CERT_HEADER = "X-SSL-Client-Cert"
_jti = itertools.count(1)


@dataclass(frozen=True)
class Leaf:
    """A client certificate (a QWAC when it has roles) with its key on disk."""

    der: bytes
    pem: bytes
    cert_path: Path
    key_path: Path

    @property
    def thumbprint(self) -> str:
        return certificate_thumbprint(self.der)

    @property
    def header(self) -> str:
        """As nginx's $ssl_client_escaped_cert sends it."""
        return quote(self.pem.decode(), safe="")


@dataclass
class Pki:
    dir: Path
    key: ec.EllipticCurvePrivateKey
    name: x509.Name
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def ca_path(self) -> Path:
        return self.dir / "qtsp-ca.pem"

    def leaf(
        self,
        *roles: str,
        organization_id: str = "PSDDE-BAFIN-123456",
        qwac: bool = True,
        server: bool = False,
    ) -> Leaf:
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example TPP GmbH"),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, organization_id),
            x509.NameAttribute(NameOID.COMMON_NAME, "localhost" if server else "tpp.example"),
        ]
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        if qwac:
            statements = certs.psd2_statements(*roles)
            builder = builder.add_extension(
                x509.UnrecognizedExtension(certs.QC_STATEMENTS, statements), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        n = next(self._serial)
        cert_path, key_path = self.dir / f"leaf-{n}.pem", self.dir / f"leaf-{n}.key"
        pem = cert.public_bytes(Encoding.PEM)
        cert_path.write_bytes(pem)
        key_path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
        return Leaf(cert.public_bytes(Encoding.DER), pem, cert_path, key_path)


def make_pki(directory: Path) -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "finward test QTSP CA")])
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pki = Pki(directory, key, name)
    pki.ca_path.write_bytes(ca.public_bytes(Encoding.PEM))
    return pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("qtsp"))


@dataclass
class JwksServer:
    runner: web.AppRunner
    port: int
    fetches: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks"


@pytest.fixture
async def jwks_server() -> AsyncIterator[JwksServer]:
    fetches: list[str] = []

    async def jwks(request: web.Request) -> web.Response:
        fetches.append(request.path)
        return web.json_response(jwt_factory.issuer_jwks())

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield JwksServer(runner, runner.addresses[0][1], fetches)
    await runner.cleanup()


def auth_config(
    upstream: Upstream,
    jwks_url: str,
    pki: Pki,
    api_auth: ApiAuthConfig | None = None,
    *,
    issuer: IssuerConfig | None = None,
    **auth: Any,
) -> GatewayConfig:
    """The auth test API behind finward, trusting a loopback terminator's cert header."""
    issuers = (
        (issuer,)
        if issuer
        else (
            IssuerConfig(
                issuer=jwt_factory.ISSUER, jwks_uri=jwks_url, allow_insecure_loopback=True
            ),
        )
    )
    settings: dict[str, Any] = {
        "issuers": issuers,
        "audiences": (jwt_factory.AUDIENCE,),
        "public_base_url": PUBLIC_BASE_URL,
    }
    settings.update(auth)
    api = ApiConfig(
        name="bank",
        spec=AUTH_SPEC,
        upstream="test",
        upstream_path_prefix="/e",
        auth=api_auth or ApiAuthConfig(),
    )
    proxy = ProxyConfig(
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        client_cert_header=CERT_HEADER,
        client_cert_ca=pki.ca_path,
    )
    return make_config(upstream.url, apis=(api,), auth=AuthConfig(**settings), proxy=proxy)


async def start_auth_gateway(config: GatewayConfig) -> tuple[Gateway, FakeClock]:
    clock = FakeClock(jwt_factory.NOW)
    return await start_gateway(config, clock), clock


def token(alg: str = "ES256", **claims: Any) -> str:
    """A valid RFC 9068 access token from the test issuer; claims override (None removes)."""
    claims.setdefault("jti", f"jti-{next(_jti)}")
    return jwt_factory.sign(jwt_factory.claims(**claims), alg)


def proof(signer: Signer, access_token: str, method: str, path: str, **claims: Any) -> str:
    """A fresh DPoP proof for ``method`` ``PUBLIC_BASE_URL + path``."""
    claims.setdefault("jti", f"proof-{next(_jti)}")
    return signer.proof(
        htm=method, htu=PUBLIC_BASE_URL + path, ath=access_token_hash(access_token), **claims
    )


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    challenges: list[str]
    body: dict[str, Any]

    @property
    def reason(self) -> str | None:
        return self.body.get("reason")

    def upstream_headers(self) -> dict[str, list[str]]:
        """The request headers the upstream echo saw (name -> values)."""
        out: dict[str, list[str]] = {}
        for name, value in self.body["headers"]:
            out.setdefault(name, []).append(value)
        return out


async def call(
    gw: Gateway,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    data: bytes | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Reply:
    """One request on a fresh connection; the JSON body (problem or upstream echo)."""
    connector = aiohttp.TCPConnector(force_close=True, ssl=ssl_context or False)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.request(
            method,
            gw.url + path,
            headers=list(headers.items()) if isinstance(headers, Mapping) else headers,
            data=data,
            skip_auto_headers=("Content-Type",) if data is None else (),
        ) as response,
    ):
        raw = await response.read()
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = {"raw": raw.decode("latin-1")}
        return Reply(
            response.status,
            response.headers,
            response.headers.getall("WWW-Authenticate", []),
            body if isinstance(body, dict) else {"json": body},
        )


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def with_cert(leaf: Leaf, headers: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**(headers or {}), CERT_HEADER: leaf.header}


def replace(config: GatewayConfig, **auth: Any) -> GatewayConfig:
    return dataclasses.replace(config, auth=dataclasses.replace(config.auth, **auth))
