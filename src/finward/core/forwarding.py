"""Header rewriting between client and upstream (RFC 9110 §7.6, RFC 7239).

Pure functions on header lists: the adapter calls them, tests call them directly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 9110 §7.6.1 plus the de-facto ones; each is connection-specific and must
# not be forwarded (Proxy-Connection and Keep-Alive from RFC 2068 era clients).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Inbound headers the gateway owns: a client may not set them for the upstream.
FORWARDING_HEADERS = frozenset(
    {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "forwarded"}
)


def connection_tokens(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """Header names listed in Connection, which become hop-by-hop too (§7.6.1)."""
    tokens: set[str] = set()
    for name, value in headers:
        if name == "connection":
            tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return frozenset(tokens)


def strip_hop_by_hop(
    headers: Sequence[tuple[str, str]], extra: frozenset[str] = frozenset()
) -> list[tuple[str, str]]:
    listed = connection_tokens(headers)
    drop = HOP_BY_HOP | listed | extra
    return [(n, v) for n, v in headers if n not in drop]


def is_trusted(ip: str, trusted: Sequence[IPNetwork]) -> bool:
    if not trusted:
        return False
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in trusted)


def resolve_client_ip(peer_ip: str, xff_values: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The first untrusted hop, walking X-Forwarded-For right to left.

    Only a trusted peer's X-Forwarded-For counts; the left-most entries are
    client-controlled, so stop at the first address that is not a trusted proxy.
    """
    if not is_trusted(peer_ip, trusted):
        return peer_ip
    hops = [h.strip() for v in xff_values for h in v.split(",") if h.strip()]
    client = peer_ip
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage: do not trust anything further left
        client = hop
        if not is_trusted(hop, trusted):
            break
    return client


def _forwarded_node(ip: str) -> str:
    # RFC 7239 §6: IPv6 addresses are bracketed and the value quoted.
    return f'"[{ip}]"' if ":" in ip else ip


def forwarding_headers(
    inbound: Sequence[tuple[str, str]],
    *,
    peer_ip: str,
    scheme: str,
    host: str | None,
    peer_trusted: bool,
) -> list[tuple[str, str]]:
    """X-Forwarded-For/-Proto/-Host and Forwarded for the upstream request.

    A trusted peer's values are extended; anyone else's are replaced, so an
    attacker cannot forge their origin address (CWE-348).
    """
    out: list[tuple[str, str]] = []
    xff = [v for n, v in inbound if n == "x-forwarded-for"] if peer_trusted else []
    out.append(("x-forwarded-for", ", ".join([*xff, peer_ip])))
    proto = None
    if peer_trusted:
        proto = next((v for n, v in inbound if n == "x-forwarded-proto"), None)
    out.append(("x-forwarded-proto", proto or scheme))
    fhost = next((v for n, v in inbound if n == "x-forwarded-host"), None) if peer_trusted else None
    if fhost or host:
        out.append(("x-forwarded-host", fhost or host or ""))
    element = f"for={_forwarded_node(peer_ip)};proto={scheme}"
    if host and all(c not in host for c in '";, '):
        element += f';host="{host}"'
    prior = [v for n, v in inbound if n == "forwarded"] if peer_trusted else []
    out.append(("forwarded", ", ".join([*prior, element])))
    return out
