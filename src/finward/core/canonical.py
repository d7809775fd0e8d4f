"""Reject request targets that are not in canonical form, before routing.

Path confusion is how shadow endpoints get reached through a gateway: the
gateway routes ``/v1/accounts/..%2f..%2fadmin`` as an account id while the
upstream normalises it to ``/admin`` (CVE-2021-22053-style traversal, Tomcat
``..;/``, double encoding). finward routes and forwards the exact bytes it
received, so it refuses anything an upstream might normalise differently.
"""

from __future__ import annotations

from finward.decision import Decision
from finward.http import RequestView

from .pipeline import Context

_HEX = frozenset("0123456789abcdefABCDEF")
# Bytes that must never appear raw in a path (RFC 3986 §3.3 pchar excludes them).
_FORBIDDEN_RAW = frozenset('\\"<>^`{|}') | {chr(c) for c in range(0x21)} | {chr(0x7F)}
# Percent-encoded octets that decode to separators, dots, NUL or control bytes:
# each is a known path-confusion vector (encoded slash/backslash/dot, NUL truncation).
_FORBIDDEN_ENCODED = frozenset({"2f", "5c", "2e", "00", "25"}) | {f"{c:02x}" for c in range(0x20)}


def check_path(path: str) -> str | None:
    """Return a short reason detail when ``path`` is not canonical, else None."""
    if not path.startswith("/"):
        return "path must start with '/'"
    if any(c in _FORBIDDEN_RAW or ord(c) > 0x7E for c in path):
        return "path contains a character that must be percent-encoded"
    if "//" in path:
        return "path contains an empty segment"
    i = path.find("%")
    while i != -1:
        pair = path[i + 1 : i + 3]
        if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
            return "path contains an invalid percent-encoding"
        if pair.lower() in _FORBIDDEN_ENCODED:
            return "path contains an encoded separator, dot, percent or control byte"
        i = path.find("%", i + 3)
    for segment in path.split("/"):
        # "..;" is Tomcat's dot segment with an empty path parameter.
        if segment.split(";", 1)[0] in (".", ".."):
            return "path contains a dot segment"
    return None


class CanonicalPathPolicy:
    name = "canonical_path"

    def evaluate(self, request: RequestView, ctx: Context) -> Decision | None:
        problem = check_path(request.path)
        if problem is not None:
            return Decision.deny("path_not_canonical", problem)
        return None
