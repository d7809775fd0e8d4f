"""X-Request-ID and x-fapi-interaction-id: echo a client's value or mint a UUID4.

The inbound values are attacker input that ends up in logs, audit events and
the upstream request, so only short, plain tokens are echoed (log injection,
header injection). FAPI 1.0 Part 1 §6.2.1-11: the resource server echoes
x-fapi-interaction-id, or sets one.
"""

from __future__ import annotations

import os

# Long enough for every id format seen in practice (UUIDs, ULIDs, trace ids).
MAX_REQUEST_ID_CHARS = 128
_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")


def is_safe_id(value: str | None) -> bool:
    return (
        value is not None
        and 0 < len(value) <= MAX_REQUEST_ID_CHARS
        and all(c in _ALLOWED for c in value)
    )


def new_id() -> str:
    """A random UUID4 (RFC 9562 §5.4), formatted without uuid.UUID's overhead."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def pick_ids(request_id: str | None, interaction_id: str | None) -> tuple[str, str]:
    """Return (request id, interaction id): each inbound value if safe, else a UUID4.

    When both are missing they share one fresh UUID, so a log line correlates
    with what the client sees in either header.
    """
    rid = request_id if is_safe_id(request_id) else None
    iid = interaction_id if is_safe_id(interaction_id) else None
    if rid is None and iid is None:
        fresh = new_id()
        return fresh, fresh
    return (rid or new_id(), iid or new_id())
