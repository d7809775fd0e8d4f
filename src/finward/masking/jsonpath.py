"""The JSONPath subset that names fields to redact in full (RFC 9535 syntax, a subset).

Grammar::

    path     = "$" *segment
    segment  = "." name | "." "*" | "[" index "]" | "[" "*" "]" | "[" quoted "]"
    name     = 1*( ALPHA / DIGIT / "_" / "-" / "$" / "@" )
    quoted   = "'" *( char / "\\'" / "\\\\" ) "'"   ; or the same between double quotes
    index    = 1*DIGIT

``$.accounts[*].ownerName``, ``$.psu['e-mail']``, ``$.items[0].*``. ``*`` matches any
member or element; there are no filters, slices, negative indexes or descendant
(``..``) segments, so matching is a walk with a small set of live states and never
searches the document. A path that does not parse raises `MaskingConfigError` at
compile time, never at request time.
"""

from __future__ import annotations

from dataclasses import dataclass

from finward.masking.model import MaskingConfigError

MAX_PATH_LENGTH = 1024  # a configuration value, but still bounded

_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-$@")

Segment = str | int | None  # a member name, an array index, or None for the wildcard


@dataclass(frozen=True, slots=True)
class CompiledPath:
    source: str
    segments: tuple[Segment, ...]

    def step(self, position: int, token: str | int) -> bool:
        """Does segment `position` accept the member name / index `token`?"""
        segment = self.segments[position]
        if segment is None:
            return True
        # bool is never a token here; keep str/int apart so "0" is not index 0
        return type(segment) is type(token) and segment == token


def compile_path(source: str) -> CompiledPath:
    if len(source) > MAX_PATH_LENGTH or not source.startswith("$"):
        raise MaskingConfigError(f"JSON path must start with '$': {source[:80]!r}")
    segments: list[Segment] = []
    i, n = 1, len(source)
    while i < n:
        ch = source[i]
        if ch == ".":
            i += 1
            if i < n and source[i] == "*":
                segments.append(None)
                i += 1
                continue
            start = i
            while i < n and source[i] in _NAME_CHARS:
                i += 1
            if i == start:
                raise MaskingConfigError(f"empty member name at {start} in {source!r}")
            segments.append(source[start:i])
        elif ch == "[":
            segment, i = _bracket(source, i + 1)
            segments.append(segment)
        else:
            raise MaskingConfigError(f"unexpected {ch!r} at {i} in JSON path {source!r}")
    return CompiledPath(source, tuple(segments))


def _bracket(source: str, i: int) -> tuple[Segment, int]:
    n = len(source)
    if source.startswith("*]", i):
        return None, i + 2
    if i < n and source[i] in "'\"":
        quote, i = source[i], i + 1
        chars: list[str] = []
        while i < n and source[i] != quote:
            if source[i] == "\\" and i + 1 < n:
                i += 1
            chars.append(source[i])
            i += 1
        if not source.startswith(quote + "]", i):
            raise MaskingConfigError(f"unterminated quoted name in JSON path {source!r}")
        return "".join(chars), i + 2
    start = i
    while i < n and source[i].isascii() and source[i].isdigit():
        i += 1
    if i == start or not source.startswith("]", i):
        raise MaskingConfigError(f"expected an index, '*' or a quoted name in {source!r}")
    return int(source[start:i]), i + 1
