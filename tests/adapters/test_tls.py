"""TLS termination and client certificates with real certificates and real handshakes."""

from __future__ import annotations

import dataclasses
import ipaddress
import ssl
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import trustme
from cryptography import x509

from finward.config.model import ListenConfig, ProxyConfig, TlsListenConfig
from finward.core.pipeline import Context, Pipeline
from finward.decision import Decision
from finward.events import RequestEvent
from finward.http import RequestView
from tests.harness import Gateway, Upstream, make_config, raw_exchange, start_gateway, status_of

GET = b"GET /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    rogue = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.cert_chain_pems[0].write_to_path(str(d / "server.pem"))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(d / "server.pem"), append=True)
    server.private_key_pem.write_to_path(str(d / "server.key"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    client = ca.issue_cert(
        "tpp.example", common_name="Example TPP", organization_name="Example TPP Ltd"
    )
    bad_client = rogue.issue_cert("evil.example")
    yield {"dir": d, "ca": ca, "client": client, "bad_client": bad_client}


def _tls_config(upstream: Upstream, pki: dict[str, object], mode: str, **kw: object) -> object:
    d = pki["dir"]
    assert isinstance(d, Path)
    tls = TlsListenConfig(
        cert=d / "server.pem",
        key=d / "server.key",
        client_ca=d / "ca.pem" if mode != "none" else None,
        client_cert=mode,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return make_config(upstream.url, listen=ListenConfig(host="127.0.0.1", port=0, tls=tls))


def _client_ctx(pki: dict[str, object], cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca = pki["ca"]
    assert isinstance(ca, trustme.CA)
    ca.configure_trust(ctx)
    if cert is not None:
        cert.configure_cert(ctx)
    return ctx


class _CapturePolicy:
    name = "capture"

    def __init__(self) -> None:
        self.seen: list[RequestView] = []

    def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        self.seen.append(request)
        return None


def _capture(gw: Gateway) -> _CapturePolicy:
    cap = _CapturePolicy()
    state = gw.worker.state
    policies = [cap, *state.gateway.pipeline._policies]
    state.gateway = dataclasses.replace(state.gateway, pipeline=Pipeline(policies))
    return cap


@pytest.fixture
async def tls_gw(
    upstream: Upstream, pki: dict[str, object], request: pytest.FixtureRequest
) -> AsyncIterator[Gateway]:
    gw = await start_gateway(_tls_config(upstream, pki, request.param))  # type: ignore[arg-type]
    yield gw
    await gw.stop()


@pytest.mark.parametrize("tls_gw", ["optional"], indirect=True)
async def test_tls13_with_verified_client_cert_reaches_policies(
    tls_gw: Gateway, pki: dict[str, object]
) -> None:
    cap = _capture(tls_gw)
    client = pki["client"]
    assert isinstance(client, trustme.LeafCert)
    resp = await raw_exchange(tls_gw.port, GET, ssl_ctx=_client_ctx(pki, client))
    assert status_of(resp) == 200
    tls = cap.seen[0].tls
    assert tls is not None and tls.version == "TLSv1.3" and tls.client_cert_source == "tls"
    assert tls.client_cert_der is not None
    cert = x509.load_der_x509_certificate(tls.client_cert_der)
    assert cert.subject.rfc4514_string().find("Example TPP Ltd") != -1
    assert cap.seen[0].scheme == "https"


@pytest.mark.parametrize("tls_gw", ["optional"], indirect=True)
async def test_optional_client_cert_may_be_absent(tls_gw: Gateway, pki: dict[str, object]) -> None:
    cap = _capture(tls_gw)
    resp = await raw_exchange(tls_gw.port, GET, ssl_ctx=_client_ctx(pki))
    assert status_of(resp) == 200
    assert cap.seen[0].tls is not None and cap.seen[0].tls.client_cert_der is None


@pytest.mark.parametrize("tls_gw", ["required"], indirect=True)
async def test_required_client_cert(tls_gw: Gateway, pki: dict[str, object]) -> None:
    client, bad = pki["client"], pki["bad_client"]
    assert isinstance(client, trustme.LeafCert) and isinstance(bad, trustme.LeafCert)
    assert status_of(await raw_exchange(tls_gw.port, GET, ssl_ctx=_client_ctx(pki, client))) == 200
    for ctx in (_client_ctx(pki), _client_ctx(pki, bad)):
        try:
            resp = await raw_exchange(tls_gw.port, GET, ssl_ctx=ctx)
        except (ssl.SSLError, ConnectionError):
            resp = b""
        assert resp == b"", "a client without a trusted certificate must not get a response"
    assert [e.status for e in tls_gw.events if isinstance(e, RequestEvent)] == [200]


@pytest.mark.parametrize("tls_gw", ["none"], indirect=True)
async def test_tls12_uses_only_fapi_suites(tls_gw: Gateway, pki: dict[str, object]) -> None:
    ok = _client_ctx(pki)
    ok.maximum_version = ssl.TLSVersion.TLSv1_2
    cap = _capture(tls_gw)
    assert status_of(await raw_exchange(tls_gw.port, GET, ssl_ctx=ok)) == 200
    assert cap.seen[0].tls is not None and cap.seen[0].tls.version == "TLSv1.2"
    assert cap.seen[0].tls.cipher in {
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    }
    weak = _client_ctx(pki)
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:AES128-GCM-SHA256")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await raw_exchange(tls_gw.port, GET, ssl_ctx=weak)


@pytest.mark.parametrize("tls_gw", ["none"], indirect=True)
async def test_tls11_is_refused(tls_gw: Gateway, pki: dict[str, object]) -> None:
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1_1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await raw_exchange(tls_gw.port, GET, ssl_ctx=old)


@pytest.mark.parametrize("tls_gw", ["none"], indirect=True)
async def test_plain_http_to_tls_port_gets_nothing(tls_gw: Gateway, upstream: Upstream) -> None:
    resp = await raw_exchange(tls_gw.port, GET, timeout=2.0)
    assert not resp.startswith(b"HTTP/1.1 200")
    assert upstream.seen == []


async def _start_header_gateway(
    upstream: Upstream, pki: dict[str, object], trusted: str
) -> Gateway:
    """finward without TLS behind a terminator that passes the certificate in a header."""
    d = pki["dir"]
    assert isinstance(d, Path)
    proxy = ProxyConfig(
        trusted_proxies=(ipaddress.ip_network(trusted),),
        client_cert_header="X-SSL-Client-Cert",
        client_cert_ca=d / "ca.pem",
    )
    return await start_gateway(make_config(upstream.url, proxy=proxy))


def _escaped(cert: trustme.LeafCert) -> bytes:
    return quote(cert.cert_chain_pems[0].bytes().decode(), safe="").encode()


async def test_client_cert_header_from_trusted_terminator(
    upstream: Upstream, pki: dict[str, object]
) -> None:
    client, bad = pki["client"], pki["bad_client"]
    assert isinstance(client, trustme.LeafCert) and isinstance(bad, trustme.LeafCert)
    gw = await _start_header_gateway(upstream, pki, "127.0.0.0/8")
    cap = _capture(gw)
    try:
        resp = await raw_exchange(
            gw.port,
            b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-SSL-Client-Cert: "
            + _escaped(client)
            + b"\r\n\r\n",
        )
        assert status_of(resp) == 200
        assert b"x-ssl-client-cert" not in resp.lower()  # stripped before the upstream
        tls = cap.seen[0].tls
        assert tls is not None and tls.client_cert_source == "header" and tls.client_cert_der
        xfcc = b'By=spiffe://gw;Hash=abc;Cert="' + _escaped(client) + b'";Subject="CN=x"'
        resp = await raw_exchange(
            gw.port,
            b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-SSL-Client-Cert: "
            + xfcc
            + b"\r\n\r\n",
        )
        assert status_of(resp) == 200
        for value in (_escaped(bad), b"not-a-cert"):
            resp = await raw_exchange(
                gw.port,
                b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-SSL-Client-Cert: "
                + value
                + b"\r\n\r\n",
            )
            assert status_of(resp) == 400
            assert b"client_cert_invalid" in resp
        assert len(upstream.seen) == 2
    finally:
        await gw.stop()


async def test_client_cert_header_from_untrusted_peer_is_ignored(
    upstream: Upstream, pki: dict[str, object]
) -> None:
    client = pki["client"]
    assert isinstance(client, trustme.LeafCert)
    gw = await _start_header_gateway(upstream, pki, "10.99.0.0/16")
    cap = _capture(gw)
    try:
        resp = await raw_exchange(
            gw.port,
            b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-SSL-Client-Cert: "
            + _escaped(client)
            + b"\r\n\r\n",
        )
        assert status_of(resp) == 200
        assert b"x-ssl-client-cert" not in resp.lower()
        assert cap.seen[0].tls is None
    finally:
        await gw.stop()
