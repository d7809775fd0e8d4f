"""The ``htu`` comparison of DPoP (RFC 9449 §4.3 (9)): RFC 3986 URI normalisation.

Both the proof's ``htu`` and the request URI (built from the configured public base
URL) go through :func:`normalize_htu`; the results must be equal strings. Query and
fragment are ignored. Pure functions over ASCII, no regular expressions.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

# Longer than any sane request URI (cf. limits.max_uri_bytes); longer htu never matches.
DPOP_MAX_HTU_CHARS = 4096
_DEFAULT_PORTS: Mapping[str, int] = {"http": 80, "https": 443}
_UNRESERVED = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)  # RFC 3986 §2.3
_URI_CHARS = _UNRESERVED | frozenset(":/?#[]@!$&'()*+,;=%")  # §2.2 reserved, §2.1 "%"
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")


# Pure and called for the configured URL and each proof's htu: cache the normal forms.
# Bounded, so attacker-chosen htu values only evict entries, never grow memory.
HTU_CACHE_ENTRIES = 4096


@lru_cache(maxsize=HTU_CACHE_ENTRIES)
def normalize_htu(uri: str) -> str | None:
    """RFC 3986 §6.2.2-6.2.3 normal form of an http(s) URI without query and fragment.

    RFC 9449 §4.3 (9) compares ``htu`` this way. Returns None for anything that is
    not an absolute http(s) URI of plain ASCII: such a proof cannot match.
    """
    if len(uri) > DPOP_MAX_HTU_CHARS or not all(c in _URI_CHARS for c in uri):
        return None
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        return None
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=-1)
    authority, rest = (rest, "") if end < 0 else (rest[:end], rest[end:])
    path = rest.split("#", 1)[0].split("?", 1)[0]
    if "@" in authority or "%" in authority:
        return None  # userinfo has no place in an htu; encoded hosts are not accepted
    if authority.startswith("["):  # IP-literal (§3.2.2)
        close = authority.find("]")
        host, port = authority[: close + 1], authority[close + 1 :]
        if close < 0 or (port and not port.startswith(":")):
            return None
        port = port[1:]
    else:
        host, _, port = authority.partition(":")
    if not host or (port and not (port.isdigit() and len(port) <= 5 and int(port) <= 65535)):
        return None
    # §6.2.2.1 case, §6.2.3 default and empty port.
    if port and int(port) != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{int(port)}"
    normal_path = _remove_dot_segments(_normalize_percent(path)) if path else "/"
    if normal_path is None:
        return None
    return f"{scheme}://{host.lower()}{normal_path}"


def _normalize_percent(path: str) -> str | None:
    """§6.2.2.1-6.2.2.2: upper-case hex digits, decode unreserved characters."""
    pieces = path.split("%")
    out = [pieces[0]]
    for piece in pieces[1:]:
        hexdigits = piece[:2]
        if len(hexdigits) != 2 or not all(c in _HEXDIGITS for c in hexdigits):
            return None
        char = chr(int(hexdigits, 16))
        out.append((char if char in _UNRESERVED else "%" + hexdigits.upper()) + piece[2:])
    return "".join(out)


def _remove_dot_segments(path: str | None) -> str | None:
    """§5.2.4 / §6.2.2.3 for an absolute path: resolve "." and ".." segments."""
    if path is None or not path.startswith("/"):
        return None
    kept: list[str] = []
    segments = path[1:].split("/")
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        elif segment != ".":
            kept.append(segment)
    if segments[-1] in (".", ".."):
        kept.append("")
    return "/" + "/".join(kept)
