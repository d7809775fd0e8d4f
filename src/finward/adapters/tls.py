"""Server TLS: TLS 1.2+ (1.3 preferred) with only the FAPI / BCP 195 suites on 1.2.

FAPI 1.0 Part 2 §8.5 and RFC 9325 (BCP 195) §4.2 allow, on TLS 1.2, only
ECDHE key exchange with AES-GCM; TLS 1.3 suites are all AEAD and allowed.
No compression (CRIME), no renegotiation, no session tickets keyed forever.
"""

from __future__ import annotations

import ssl

from finward.config.model import TlsListenConfig

TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
    )
)


def server_context(cfg: TlsListenConfig) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if cfg.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    ctx.set_alpn_protocols(["http/1.1"])
    load_certificates(ctx, cfg)
    if cfg.client_cert == "none":
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.verify_mode = ssl.CERT_REQUIRED if cfg.client_cert == "required" else ssl.CERT_OPTIONAL
    return ctx


def load_certificates(ctx: ssl.SSLContext, cfg: TlsListenConfig) -> None:
    """(Re)load the server certificate and client CAs into ``ctx``.

    Loading into the live context makes a reload rotate certificates for new
    handshakes without restarting the listener.
    """
    ctx.load_cert_chain(str(cfg.cert), str(cfg.key))
    if cfg.client_ca is not None:
        ctx.load_verify_locations(cafile=str(cfg.client_ca))


def describe(ssl_object: ssl.SSLObject | None) -> tuple[str | None, str | None, bytes | None]:
    """(protocol version, cipher, verified client certificate DER) of a connection."""
    if ssl_object is None:
        return None, None, None
    cipher = ssl_object.cipher()
    der = ssl_object.getpeercert(binary_form=True)
    return ssl_object.version(), cipher[0] if cipher else None, der or None
