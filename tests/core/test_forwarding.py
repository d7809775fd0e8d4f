from __future__ import annotations

import ipaddress

from finward.core.forwarding import (
    forwarding_headers,
    resolve_client_ip,
    strip_hop_by_hop,
)

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"),)


def test_strip_hop_by_hop_includes_connection_listed_names() -> None:
    headers = [("connection", "keep-alive, x-a"), ("x-a", "1"), ("x-b", "2"), ("te", "trailers")]
    assert strip_hop_by_hop(headers) == [("x-b", "2")]


def test_client_ip_from_untrusted_peer_ignores_xff() -> None:
    assert resolve_client_ip("203.0.113.1", ["1.2.3.4"], TRUSTED) == "203.0.113.1"


def test_client_ip_walks_right_to_left_through_trusted_hops() -> None:
    assert (
        resolve_client_ip("10.0.0.1", ["6.6.6.6, 198.51.100.7, 10.0.0.2"], TRUSTED)
        == "198.51.100.7"
    )


def test_client_ip_stops_at_garbage() -> None:
    assert resolve_client_ip("10.0.0.1", ["198.51.100.7, not-an-ip"], TRUSTED) == "10.0.0.1"


def test_forwarded_ipv6_is_quoted() -> None:
    out = dict(forwarding_headers([], peer_ip="::1", scheme="https", host=None, peer_trusted=False))
    assert out["forwarded"] == 'for="[::1]";proto=https'


def test_forwarded_host_with_delimiters_is_not_injected() -> None:
    out = dict(
        forwarding_headers(
            [], peer_ip="127.0.0.1", scheme="http", host='a";for=evil', peer_trusted=False
        )
    )
    assert out["forwarded"] == "for=127.0.0.1;proto=http"
