"""Limit keys: which parts of a request a limit counts separately, and the stored key.

A key is a list of parts (``rate_limits.limits[].key``). The store never sees the raw
values: the stored key is ``<limit name>:<sha256 of the joined parts, 32 hex>``, so an
attacker-chosen header or claim cannot grow key names or inject separators, and a PSU
identifier is not written to Redis in clear.

Sans-IO: pure functions over the request view and the authenticated principal.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Parts that come from the authenticated caller (ctx.principal). A request without
# them (no token; a client-credentials token has no PSU) is not counted by the limit.
IDENTITY_PARTS = frozenset({"client_id", "tpp", "psu", "consent", "token"})
PLAIN_PARTS = IDENTITY_PARTS | {"ip"}
# RFC 9110 §5.1 field-name = token.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
_CLAIM_NAME = re.compile(r"[^\x00-\x20\x7f]{1,64}")
_BITS = re.compile(r"[0-9]{1,3}")
# Digest length in the stored key: 128 bits, collision-free for any realistic key count.
KEY_DIGEST_CHARS = 32


class KeyPartError(ValueError):
    """A key part that is not one of the known forms; ``hint`` says what would be."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True, slots=True)
class KeyPart:
    kind: str  # client_id | tpp | psu | consent | token | ip | net | header | claim
    arg: str = ""  # header name (lower case) or claim name
    v4_bits: int = 32
    v6_bits: int = 128


def parse_key_part(text: str) -> KeyPart:
    """``client_id``, ``ip``, ``net:24:56``, ``header:X-Api-Key``, ``claim:acr`` …"""
    if text in PLAIN_PARTS:
        return KeyPart(text)
    kind, sep, rest = text.partition(":")
    if not sep:
        raise KeyPartError(
            f"{text[:60]!r} is not a key part",
            f"one of {', '.join(sorted(PLAIN_PARTS))}, net:<v4 bits>:<v6 bits>, "
            "header:<Name> or claim:<name>",
        )
    if kind == "net":
        v4, sep, v6 = rest.partition(":")
        if not (sep and _BITS.fullmatch(v4) and _BITS.fullmatch(v6)):
            raise KeyPartError(f"{text[:60]!r} is not net:<v4 bits>:<v6 bits>", "e.g. net:24:56")
        if not (0 <= int(v4) <= 32 and 0 <= int(v6) <= 128):
            raise KeyPartError(
                f"{text[:60]!r} has a prefix length out of range",
                "IPv4 bits are 0 to 32, IPv6 bits 0 to 128, e.g. net:24:56",
            )
        return KeyPart("net", v4_bits=int(v4), v6_bits=int(v6))
    if kind == "header":
        if not _HEADER_NAME.fullmatch(rest):
            raise KeyPartError(f"{text[:60]!r} does not name a header", "e.g. header:X-Api-Key")
        return KeyPart("header", rest.lower())
    if kind == "claim":
        if not _CLAIM_NAME.fullmatch(rest):
            raise KeyPartError(f"{text[:60]!r} does not name a claim", "e.g. claim:acr")
        return KeyPart("claim", rest)
    raise KeyPartError(
        f"{text[:60]!r} is not a key part",
        "prefixes are net:, header: and claim:",
    )


def part_value(part: KeyPart, principal: Any, client_ip: str, headers: Any) -> str | None:
    """The value of one part for a request; None when the request lacks an identity
    part (no principal, no PSU ...: the limit is then skipped). A missing *header* is
    the empty value, one bucket shared by every request without it, so leaving the
    header out does not escape the limit. ``headers`` is a ``finward.http.Headers``."""
    kind = part.kind
    if kind == "ip":
        # One IPv4 address, or one IPv6 /64 (a single host commonly holds a whole /64,
        # so counting /128s would give it 2**64 budgets); ::ffff:a.b.c.d counts as a.b.c.d.
        return network_of(client_ip, 32, IPV6_HOST_BITS)
    if kind == "net":
        return network_of(client_ip, part.v4_bits, part.v6_bits)
    if kind == "header":
        # As RFC 9110 §5.3 combines repeated field lines, and without the optional
        # whitespace around values: "k1", "k1 " and "k1\t" are one client.
        values = headers.get_all(part.arg)
        return ", ".join(v.strip(" \t") for v in values)
    if principal is None:
        return None
    if kind == "client_id":
        return _text(principal.client_id)
    if kind == "tpp":
        return _text(principal.organisation_id)
    if kind == "psu":
        return _text(principal.token.sub)
    if kind == "consent":
        return _text(principal.consent_id)
    if kind == "token":
        return _text(principal.token.token_hash)
    if kind == "claim":
        claims: Mapping[str, object] = principal.token.claims
        return _claim_text(claims.get(part.arg))
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# The IPv6 prefix that the `ip` key part counts as one client.
IPV6_HOST_BITS = 64


def network_of(client_ip: str, v4_bits: int, v6_bits: int) -> str:
    """The client's network as CIDR text (``203.0.113.0/24``); the address itself if it
    is not an IP address (a Unix socket peer)."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:a.b.c.d counts with a.b.c.d
    bits = v4_bits if address.version == 4 else v6_bits
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def stored_key(limit_name: str, values: Sequence[str]) -> str:
    """``<limit>:<digest>``: what the store sees.

    The digest covers every value whole, each prefixed with its length, so neither a
    shared prefix nor a separator inside a value can make two clients share a count.
    Values are already bounded (header and token size limits)."""
    digest = hashlib.sha256()
    for value in values:
        raw = value.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(4, "big"))
        digest.update(raw)
    return f"{limit_name}:{digest.hexdigest()[:KEY_DIGEST_CHARS]}"


def _claim_text(value: object) -> str | None:
    """A claim as key text: strings as they are, numbers and booleans as JSON, lists and
    objects as canonical JSON; None only when the claim is absent or empty."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return None
