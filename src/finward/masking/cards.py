"""PAN detection (ISO/IEC 7812) and the PCI DSS 3.4.1 mask.

Rules, in the order they are applied (each one cuts false positives on the digit strings
banking JSON is full of: dates, amounts, references, timestamps, long ids, IBANs):

1. Candidate shapes (regex): 13-19 contiguous digits; or 4-digit groups separated by
   one space or one dash (4-4-4-1 … 4-4-4-4-3, the printed card layouts); or the
   4-6-5 / 4-6-4 layouts of Amex and Diners. One kind of separator per number.
2. Never inside a longer token: a contiguous run of 20+ digits is not a PAN, nor a run
   with an ASCII letter or digit right before or after it (hex ids such as
   ``cdfbd7c67cf8e64a42d5``, the digits of an IBAN, ``ref4111…``). A number in a
   decimal context (``0.4111…`` or ``…1111,50``) is not a PAN. Punctuation is fine:
   ``PAN:4111…``, ``(4111 1111 1111 1111)``.
3. Plausible IIN: first digit 3, 4, 5 or 6 (Amex/Diners/JCB, Visa, Mastercard,
   Discover/UnionPay/Maestro), or a first four digits in Mastercard's 2221-2720 or
   Mir's 2200-2204. This excludes 1… (epoch-millisecond timestamps), 7/8/9/0… and
   date-led references such as ``20250501000000`` (years 2025… are outside 2221-2720).
4. Luhn (ISO/IEC 7812-1) holds.

A grouped candidate that fails as a whole (``2024 4111 1111 1111 1111``) is retried on
its sub-runs of whole groups, so a leading number cannot hide a PAN from the redactor.
"""

from __future__ import annotations

from collections.abc import Iterator

from finward.masking.engine import WORD_START, EngineName, Pattern, compile_pattern
from finward.masking.model import REDACTED, MaskMode, PanRule, is_ascii_digit, mask_digits

MIN_PAN_DIGITS = 13  # ISO/IEC 7812-1: 8-digit IIN + account + check digit, shortest in use
MAX_PAN_DIGITS = 19  # ISO/IEC 7812-1 maximum

_IIN4 = r"(?:[3-6][0-9]{3}|2[2-7][0-9]{2})"  # rule 3, coarse; `is_plausible_iin` is exact
PAN_CANDIDATE_SOURCE = (
    WORD_START + "("
    rf"{_IIN4}[0-9]{{9,15}}"
    rf"|{_IIN4}(?:[ \-][0-9]{{4}}){{2,3}}(?:[ \-][0-9]{{1,4}})?"
    rf"|{_IIN4}[ \-][0-9]{{6}}[ \-][0-9]{{4,5}}"
    ")"
)


def compile_pan_pattern(engine: EngineName | None = None) -> Pattern:
    return compile_pattern(PAN_CANDIDATE_SOURCE, engine, group=1)


def is_luhn_valid(digits: str) -> bool:
    """ISO/IEC 7812-1 Luhn check over a string of ASCII digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def is_plausible_iin(digits: str) -> bool:
    first = digits[0]
    if first in "3456":
        return True
    if first == "2":
        prefix = int(digits[:4])
        return 2221 <= prefix <= 2720 or 2200 <= prefix <= 2204
    return False


def is_pan(digits: str) -> bool:
    """True for an ASCII digit string that passes the length, IIN and Luhn rules."""
    return (
        MIN_PAN_DIGITS <= len(digits) <= MAX_PAN_DIGITS
        and digits.isascii()
        and digits.isdigit()
        and is_plausible_iin(digits)
        and is_luhn_valid(digits)
    )


def _is_word(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _has_clear_edges(text: str, start: int, end: int) -> bool:
    """Rule 2: no letter, digit or decimal context on either side of [start, end)."""
    if start > 0:
        before = text[start - 1]
        if _is_word(before):
            return False
        if before in ".," and start > 1 and is_ascii_digit(text[start - 2]):
            return False
    if end < len(text):
        after = text[end]
        if _is_word(after):
            return False
        if after in ".," and end + 1 < len(text) and is_ascii_digit(text[end + 1]):
            return False
    return True


def _groups(text: str, start: int, end: int) -> list[tuple[int, int]] | None:
    """Digit groups of a separated candidate, or None when separators are mixed."""
    groups: list[tuple[int, int]] = []
    separator = ""
    group_start = start
    for i in range(start, end):
        ch = text[i]
        if not is_ascii_digit(ch):
            if separator and ch != separator:
                return None
            separator = ch
            groups.append((group_start, i))
            group_start = i + 1
    groups.append((group_start, end))
    return groups


def _digits(text: str, start: int, end: int) -> str:
    return "".join(ch for ch in text[start:end] if is_ascii_digit(ch))


def find_pans(pattern: Pattern, text: str) -> Iterator[tuple[int, int]]:
    """Spans of the PANs in `text`, separators included."""
    for start, end in pattern.spans(text):
        if not _has_clear_edges(text, start, end):
            continue
        if end - start <= MAX_PAN_DIGITS and is_ascii_digit(text[start + 4]):  # contiguous
            if is_pan(text[start:end]):
                yield start, end
            continue
        groups = _groups(text, start, end)
        if groups is None:
            continue
        yield from _grouped_pans(text, groups)


def _grouped_pans(text: str, groups: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """The whole candidate, else its sub-runs of whole groups (longest first, left to
    right). A sub-run is bounded by separators, so its edges are clear by construction."""
    n = len(groups)
    i = 0
    while i < n:
        for j in range(n, i, -1):
            start, end = groups[i][0], groups[j - 1][1]
            if is_pan(_digits(text, start, end)):
                yield start, end
                i = j
                break
        else:
            i += 1


def mask_pan(value: str, rule: PanRule) -> str:
    """Hide every digit but the first `keep_first` and last `keep_last`, keep separators."""
    if rule.mode is MaskMode.FULL:
        return REDACTED
    return mask_digits(value, rule.keep_first, rule.keep_last)
