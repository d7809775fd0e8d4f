"""One redactor for every output path: JSON values (responses, events) and plain text
(log lines, error bodies).

How a JSON document is scanned: one walk copies the document and collects every string
value and member name; the strings are joined with NUL (which no detector matches, so
no detection crosses two strings) and each detector scans the joined text once. That
turns some 10^5 small regex calls into four scans of one buffer, which is what makes
RE2 — whose per-call cost is several microseconds in Python — cheap on large bodies.

Overlaps between detectors: the longest detection wins; on equal length the order is
IBAN, PAN, e-mail, phone (a GB IBAN's digit run may pass Luhn; an E.164 number with its
``+`` is longer than the PAN-like digits inside it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass
from typing import Any

from finward.masking.cards import compile_pan_pattern, find_pans, mask_pan
from finward.masking.contacts import (
    compile_domain_pattern,
    compile_phone_pattern,
    find_emails,
    find_phones,
    mask_email,
    mask_phone,
)
from finward.masking.engine import DEFAULT_ENGINE, EngineName
from finward.masking.iban import compile_iban_pattern, find_ibans, mask_iban
from finward.masking.jsonpath import CompiledPath, compile_path
from finward.masking.model import (
    Category,
    Detection,
    Finding,
    MaskingConfig,
    TextFinding,
)
from finward.masking.walk import JsonWalk

_PRIORITY = {Category.IBAN: 0, Category.PAN: 1, Category.EMAIL: 2, Category.PHONE: 3}
_NO_PERMISSIONS: frozenset[str] = frozenset()

Finder = Callable[[str], Iterator[tuple[int, int]]]
Masker = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class TextRedaction:
    text: str
    findings: tuple[TextFinding, ...]


@dataclass(frozen=True, slots=True)
class JsonRedaction:
    value: Any
    findings: tuple[Finding, ...]


class Redactor:
    """Compiled once from a `MaskingConfig`; `redact_json` / `redact_text` never raise on
    JSON-shaped input and never mutate it."""

    def __init__(self, config: MaskingConfig, engine: EngineName | None = None) -> None:
        self.engine: EngineName = engine or DEFAULT_ENGINE
        finders: list[tuple[Category, Finder]] = []
        maskers: dict[Category, Masker] = {}
        if config.iban is not None:
            iban_pattern, iban_rule = compile_iban_pattern(self.engine), config.iban
            finders.append((Category.IBAN, lambda t: find_ibans(iban_pattern, t)))
            maskers[Category.IBAN] = lambda v: mask_iban(v, iban_rule)
        if config.pan is not None:
            pan_pattern, pan_rule = compile_pan_pattern(self.engine), config.pan
            finders.append((Category.PAN, lambda t: find_pans(pan_pattern, t)))
            maskers[Category.PAN] = lambda v: mask_pan(v, pan_rule)
        if config.email is not None:
            domain_pattern, email_rule = compile_domain_pattern(self.engine), config.email
            finders.append((Category.EMAIL, lambda t: find_emails(domain_pattern, t)))
            maskers[Category.EMAIL] = lambda v: mask_email(v, email_rule)
        if config.phone is not None:
            phone_pattern, phone_rule = compile_phone_pattern(self.engine), config.phone
            finders.append((Category.PHONE, lambda t: find_phones(phone_pattern, t)))
            maskers[Category.PHONE] = lambda v: mask_phone(v, phone_rule)
        self._finders = tuple(finders)
        self._maskers = maskers
        self._paths: tuple[CompiledPath, ...] = tuple(compile_path(r.path) for r in config.paths)
        self._path_categories = tuple(r.category for r in config.paths)

    # --- detection --------------------------------------------------------------------

    def detect(self, text: str) -> list[Detection]:
        """Non-overlapping detections in `text`, in order of position."""
        candidates = [
            Detection(start, end, category)
            for category, finder in self._finders
            for start, end in finder(text)
        ]
        return _resolve_overlaps(candidates)

    def _mask_span(self, value: str, category: Category) -> str:
        return self._maskers[category](value)

    # --- plain text -------------------------------------------------------------------

    def redact_text(self, text: str, *, allowed: Set[str] = _NO_PERMISSIONS) -> TextRedaction:
        """Mask `text` (a log line, an error body); `allowed` categories stay clear."""
        detections = self.detect(text)
        masked, findings = self._apply(text, detections, 0, allowed)
        return TextRedaction(
            masked,
            tuple(TextFinding(d.category, d.start, d.end, m) for d, m in findings),
        )

    def _apply(
        self, text: str, detections: list[Detection], offset: int, allowed: Set[str]
    ) -> tuple[str, list[tuple[Detection, bool]]]:
        """Mask the detections (offsets shifted by `offset`) inside `text`."""
        pieces: list[str] = []
        findings: list[tuple[Detection, bool]] = []
        cursor = 0
        for d in detections:
            start, end = d.start - offset, d.end - offset
            clear = d.category in allowed
            pieces.append(text[cursor:start])
            span = text[start:end]
            pieces.append(span if clear else self._mask_span(span, d.category))
            cursor = end
            findings.append((Detection(start, end, d.category), not clear))
        if not detections:
            return text, findings
        pieces.append(text[cursor:])
        return "".join(pieces), findings

    # --- JSON -------------------------------------------------------------------------

    def redact_json(self, value: Any, *, allowed: Set[str] = _NO_PERMISSIONS) -> JsonRedaction:
        """A masked copy of a parsed JSON value plus findings (category + JSON pointer)."""
        out, findings = JsonWalk(self, allowed).run(value)
        return JsonRedaction(out, findings)


def _resolve_overlaps(candidates: list[Detection]) -> list[Detection]:
    if len(candidates) <= 1:
        return candidates
    candidates.sort(key=lambda d: d.start)
    result: list[Detection] = []
    cluster: list[Detection] = []
    cluster_end = -1
    for d in [*candidates, None]:
        if d is not None and d.start < cluster_end:
            cluster.append(d)
            cluster_end = max(cluster_end, d.end)
            continue
        if len(cluster) == 1:
            result.append(cluster[0])
        elif cluster:
            chosen: list[Detection] = []
            for c in sorted(cluster, key=lambda c: (c.start - c.end, _PRIORITY[c.category])):
                if all(c.end <= k.start or k.end <= c.start for k in chosen):
                    chosen.append(c)
            result.extend(sorted(chosen, key=lambda c: c.start))
        if d is not None:
            cluster, cluster_end = [d], d.end
    return result
