"""Transport-neutral view of a request: what every policy sees."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


class Headers:
    """An ordered multi-map of header fields with lower-case names.

    Values are ``str`` decoded as latin-1, so every byte the client sent is kept
    and nothing is lost or normalised behind a policy's back.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = [(k.lower(), v) for k, v in items]

    @classmethod
    def from_lowered(cls, items: list[tuple[str, str]]) -> Headers:
        """Wrap a list whose names are already lower case (the adapter's fast path)."""
        h = cls.__new__(cls)
        h._items = items
        return h

    def get(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self._items:
            if k == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self._items if k == name]

    def count(self, name: str) -> int:
        name = name.lower()
        return sum(1 for k, _ in self._items if k == name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({[k for k, _ in self._items]!r})"


@dataclass(slots=True)
class TlsInfo:
    """What the TLS layer established. ``client_cert_der`` is set only when verified."""

    version: str | None = None
    cipher: str | None = None
    client_cert_der: bytes | None = None
    # "tls" for the handshake, "header" for a trusted terminator's header.
    client_cert_source: str | None = None
    # x5t#S256 of client_cert_der, filled in by whoever computes it first
    # (finward.auth.mtls.tls_thumbprint): a connection's certificate is hashed once.
    client_cert_thumbprint: str | None = None


@dataclass(slots=True)
class RequestView:
    method: str
    target: str  # raw request-target as received
    path: str  # raw (still percent-encoded) path of the target
    query: str  # raw query string without '?', "" when absent
    headers: Headers
    client_ip: str  # effective client, after trusted X-Forwarded-For / Forwarded
    peer_ip: str  # the socket peer
    scheme: str = "http"
    http_version: str = "1.1"
    tls: TlsInfo | None = None
    request_id: str = ""
    interaction_id: str = ""
    content_length: int | None = None
    chunked: bool = False
    attrs: dict[str, object] = field(default_factory=dict)
    # Per-connection memo the adapter passes along (None: no connection to remember
    # anything across requests). Policies key their entries by the policy object, so a
    # reload's new policies never read the old ones' entries.
    connection_memo: dict[object, Any] | None = None
