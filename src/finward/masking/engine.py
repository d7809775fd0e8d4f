"""The regular-expression engine behind the detectors: google-re2, or a linear fallback.

Detectors run on attacker-controlled text (request bodies echoed back, remittance
texts, log lines), so their candidate patterns must not backtrack catastrophically
(DESIGN.md). `google-re2` guarantees linear time. Every pattern in this package is also
written so that stdlib `re` stays linear on it — bounded quantifiers, no nested
quantifier over an ambiguous split, no back-references or look-arounds (RE2 has none) —
which makes `re` a safe fallback when the `re2` wheel is not installed and lets the tests
check that both engines find exactly the same spans.

RE2 works on UTF-8 and refuses strings that hold lone surrogates (JSON allows them as
``\\ud800`` escapes); such text is scanned through a copy where each surrogate becomes
U+FFFD, which keeps every code-point offset unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal, Protocol, cast

try:  # pragma: no branch - which branch runs depends on the environment
    import re2 as _re2
except ImportError:  # pragma: no cover - exercised only where google-re2 is missing
    _re2 = None

EngineName = Literal["re2", "re"]

#: The engine `compile_pattern` uses when none is asked for.
DEFAULT_ENGINE: EngineName = "re2" if _re2 is not None else "re"

_SURROGATES = re.compile("[\ud800-\udfff]")


class MatchLike(Protocol):
    def start(self, group: int = 0) -> int: ...
    def end(self, group: int = 0) -> int: ...


class _CompiledLike(Protocol):
    def finditer(self, text: str) -> Iterator[MatchLike]: ...
    def match(self, text: str, pos: int) -> MatchLike | None: ...


class Pattern:
    """One compiled pattern; `spans` and `match_end` never raise on any `str`.

    `spans` reports group `group`: detectors consume the character before a value in a
    non-capturing prefix (``(?:^|[^0-9A-Za-z])``) in place of a look-behind, which
    neither RE2 nor a linear pattern can have, and capture the value itself. That keeps
    the candidates inside longer tokens (the ``025-05-01`` of a date, the digits of a hex
    id) out of the Python layer, where each RE2 match costs microseconds.
    """

    __slots__ = ("_compiled", "engine", "group", "source")

    def __init__(self, source: str, engine: EngineName, group: int = 0) -> None:
        self.source = source
        self.engine = engine
        self.group = group
        if engine == "re2":
            if _re2 is None:
                raise ValueError("the google-re2 engine is not installed")
            self._compiled = cast(_CompiledLike, _re2.compile(source))
        else:
            self._compiled = cast(_CompiledLike, re.compile(source))

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        """Leftmost, non-overlapping (start, end) code-point spans of the matches."""
        try:
            matches = list(self._compiled.finditer(text))
        except UnicodeEncodeError:  # lone surrogates: RE2 only reads valid UTF-8
            matches = list(self._compiled.finditer(_SURROGATES.sub("\ufffd", text)))
        group = self.group
        for m in matches:
            yield m.start(group), m.end(group)

    def match_end(self, text: str, pos: int) -> int | None:
        """End of a match anchored at `pos`, or None."""
        try:
            m = self._compiled.match(text, pos)
        except UnicodeEncodeError:
            m = self._compiled.match(_SURROGATES.sub("\ufffd", text), pos)
        return None if m is None else m.end()


#: Prefix that stands for "not preceded by an ASCII letter or digit"; the value is group 1.
WORD_START = "(?:^|[^0-9A-Za-z])"


def compile_pattern(source: str, engine: EngineName | None = None, group: int = 0) -> Pattern:
    return Pattern(source, engine or DEFAULT_ENGINE, group)
