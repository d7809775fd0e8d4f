"""The JSON side of the redactor: copy a document, collect its strings, write masks back.

The walk is iterative (an explicit stack), so a deeply nested document cannot exhaust
the interpreter's recursion limit — masking must never raise on an output path.
Value rules:

- strings and member names are scanned by the detectors;
- integers of 13-19 digits that are PANs are replaced by the masked PAN *as a string*
  (a card number sent as a JSON number still leaks); other numbers, booleans and null
  are copied;
- a configured JSON path redacts its whole subtree: every scalar below becomes ``***``
  (null stays null), containers and member names keep their shape;
- a member name that holds sensitive data is masked; if the masked name collides with
  another member, ``#2``, ``#3``… is appended so no member is lost;
- tuples are copied as lists; any other object is copied by reference, unscanned.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Set
from typing import TYPE_CHECKING, Any

from finward.masking.cards import is_pan
from finward.masking.model import REDACTED, Category, Detection, Finding

if TYPE_CHECKING:
    from finward.masking.redactor import Redactor

_SEPARATOR = "\x00"
#: No detector matches fewer characters ("a@b.co" is the shortest e-mail address).
MIN_SENSITIVE_LENGTH = 6

# A pointer is built lazily from these links: (parent link, container, member or index).
Link = tuple[Any, Any, str | int] | None
# Where a collected string lives: (container, slot, link of the container, is member name).
_Site = tuple[Any, Any, Link, bool]
# A container being copied: (its (key, child) iterator, its copy, its link, live path
# states, redacted?, is an object).
_Frame = tuple[Iterator[tuple[Any, Any]], Any, "Link", "_States", bool, bool]
# Live JSON-path states: (index of the path rule, next segment position).
_States = tuple[tuple[int, int], ...]


def render_pointer(link: Link, renames: dict[tuple[int, str], str]) -> str:
    """RFC 6901 JSON pointer of `link`, with member names as they are *after* masking."""
    tokens: list[str] = []
    while link is not None:
        parent, container, token = link
        if isinstance(token, str):
            token = renames.get((id(container), token), token)
            tokens.append(token.replace("~", "~0").replace("/", "~1"))
        else:
            tokens.append(str(token))
        link = parent
    return "".join("/" + t for t in reversed(tokens))


class JsonWalk:
    def __init__(self, redactor: Redactor, allowed: Set[str]) -> None:
        self._redactor = redactor
        self._allowed = allowed
        self._paths = redactor._paths
        self._path_categories = redactor._path_categories
        self._texts: list[str] = []
        self._sites: list[_Site] = []
        # Path and integer findings, with the number of strings collected before them.
        self._early: list[tuple[int, Link, Finding]] = []
        self._holder: list[Any] = [None]  # the root's parent; its link is None

    # --- copy -------------------------------------------------------------------------

    def run(self, value: Any) -> tuple[Any, tuple[Finding, ...]]:
        """The masked copy of `value` and the findings, in document order."""
        self._copy(value)
        findings = self._scan()
        return self._holder[0], findings

    def _copy(self, value: Any) -> None:
        holder = self._holder
        states: _States = tuple((i, 0) for i in range(len(self._paths)))
        redact = self._matched(states, None) if states else False
        # Only containers go on the stack, each with its own iterator, so the walk is in
        # document order (a child container is finished before its next sibling).
        stack: list[_Frame] = []
        holder[0] = self._child(value, holder, 0, None, states, redact, stack)
        texts, sites = self._texts, self._sites
        while stack:
            children, out, link, states, redact, is_object = stack[-1]
            depth = len(stack)
            for key, child in children:
                if not is_object:
                    token: str | int = key
                elif isinstance(key, str):
                    token = key
                    if len(key) >= MIN_SENSITIVE_LENGTH:
                        texts.append(key)
                        sites.append((out, key, link, True))
                else:
                    token = str(key)
                child_states, child_redact = states, redact
                if states:
                    child_states = self._advance(states, token)
                    child_redact = redact or self._matched(child_states, (link, out, token))
                if type(child) is str and not child_redact:  # the common leaf, inlined
                    out[key] = child
                    if len(child) >= MIN_SENSITIVE_LENGTH:
                        texts.append(child)
                        sites.append((out, key, link, False))
                    continue
                out[key] = self._child(child, out, key, link, child_states, child_redact, stack)
                if len(stack) > depth:
                    break  # descend first; this iterator resumes afterwards
            else:
                stack.pop()

    def _child(
        self,
        src: Any,
        parent: Any,
        slot: Any,
        parent_link: Link,
        states: _States,
        redact: bool,
        stack: list[_Frame],
    ) -> Any:
        """The copy of `src` (which sits at parent[slot]); containers are queued."""
        if isinstance(src, str):
            if redact:
                return REDACTED
            if len(src) >= MIN_SENSITIVE_LENGTH:
                self._texts.append(src)
                self._sites.append((parent, slot, parent_link, False))
            return src
        token = slot if isinstance(slot, str | int) and not isinstance(slot, bool) else str(slot)
        link: Link = None if parent is self._holder else (parent_link, parent, token)
        if isinstance(src, dict):
            out: dict[Any, Any] = dict.fromkeys(src)  # keeps member order
            stack.append((iter(src.items()), out, link, states, redact, True))
            return out
        if isinstance(src, list | tuple):
            items: list[Any] = [None] * len(src)
            stack.append((enumerate(src), items, link, states, redact, False))
            return items
        if isinstance(src, bool) or src is None:
            return REDACTED if redact and src is not None else src
        if isinstance(src, int):
            return REDACTED if redact else self._integer(src, link)
        if isinstance(src, float):
            return REDACTED if redact else src
        return src

    def _advance(self, states: _States, token: str | int) -> _States:
        paths = self._paths
        return tuple(
            (rule, position + 1)
            for rule, position in states
            if position < len(paths[rule].segments) and paths[rule].step(position, token)
        )

    def _matched(self, states: _States, link: Link) -> bool:
        """Record path findings where a rule ends here; True if the subtree is redacted."""
        redact = False
        for rule, position in states:
            if position == len(self._paths[rule].segments):
                category = self._path_categories[rule]
                clear = category in self._allowed
                self._early.append(
                    (len(self._sites), link, Finding(category, "", masked=not clear))
                )
                redact = redact or not clear
        return redact

    def _integer(self, number: int, link: Link) -> int | str:
        if number < 10**12 or number >= 10**19:
            return number
        digits = str(number)
        if not is_pan(digits):
            return number
        if Category.PAN not in self._redactor._maskers:  # the PAN detector is off
            return number
        clear = Category.PAN in self._allowed
        self._early.append((len(self._sites), link, Finding(Category.PAN, "", masked=not clear)))
        return number if clear else self._redactor._mask_span(digits, Category.PAN)

    # --- scan and write back ----------------------------------------------------------

    def _scan(self) -> tuple[Finding, ...]:
        texts = self._texts
        joined = _SEPARATOR.join(texts)
        starts: list[int] = []
        position = 0
        for text in texts:
            starts.append(position)
            position += len(text) + 1
        per_text: dict[int, list[Detection]] = {}
        for d in self._redactor.detect(joined):
            per_text.setdefault(bisect_right(starts, d.start) - 1, []).append(d)

        renames: dict[tuple[int, str], str] = {}
        renamed: dict[int, dict[Any, Any]] = {}
        ordered: list[tuple[int, int, Link, Finding]] = [
            (order, -1, link, finding) for order, link, finding in self._early
        ]
        for index in sorted(per_text):
            container, slot, container_link, is_key = self._sites[index]
            link: Link = None if container is self._holder else (container_link, container, slot)
            masked, spans = self._redactor._apply(
                texts[index], per_text[index], starts[index], self._allowed
            )
            for d, was_masked in spans:
                ordered.append((index, 0, link, Finding(d.category, "", was_masked, is_key)))
            if masked == texts[index]:
                continue
            if is_key:
                renames[(id(container), slot)] = masked
                renamed[id(container)] = container
            else:
                container[slot] = masked
        for container in renamed.values():
            _rename_members(container, renames)
        return tuple(
            Finding(f.category, render_pointer(link, renames), f.masked, f.in_key)
            for _, _, link, f in sorted(ordered, key=lambda item: item[:2])
        )


def _rename_members(container: dict[Any, Any], renames: dict[tuple[int, str], str]) -> None:
    items = list(container.items())
    container.clear()
    for key, value in items:
        new = renames.get((id(container), key), key) if isinstance(key, str) else key
        if new in container:
            n = 2
            while f"{new}#{n}" in container:
                n += 1
            new = f"{new}#{n}"
            renames[(id(container), key)] = new
        container[new] = value
