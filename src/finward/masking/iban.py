"""IBAN detection (ISO 13616) and mask.

Rules:

1. Candidate shapes (regex): two upper-case letters, two digits, then 11-30 upper-case
   letters or digits — contiguous (electronic format) or in space-separated groups of
   four (paper format, ISO 13616-1 §6.3: one space every four characters).
2. The country must be in the SWIFT IBAN registry and the length must be that
   country's; where the BBAN layout is listed below, letters and digits must sit where
   the registry puts them (this rejects SEPA creditor ids such as ``NL98ZZZ…``, which
   share the IBAN check scheme).
3. ISO 7064 mod 97-10 over the rearranged IBAN must be 1.
4. Edges: no ASCII letter or digit right before or after (a longer token).
   A spaced candidate longer than its country's length is cut at a group boundary
   (``BE68 5390 0754 7034 EUR``).

Lower-case IBANs are not matched: ISO 13616 prints them in capitals and a lower-case
pattern would scan every word of free text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

from finward.masking.engine import WORD_START, EngineName, Pattern, compile_pattern
from finward.masking.model import MASK_CHAR, REDACTED, IbanRule, MaskMode
from finward.validation.formats import iban_mod97
from finward.validation.iso_data import IBAN_LENGTHS

IBAN_CANDIDATE_SOURCE = (
    WORD_START + "("
    r"[A-Z]{2}[0-9]{2}(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?"
    r"|[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}"
    ")"
)


# SWIFT IBAN registry BBAN layouts for the SEPA countries: n digits, a letters,
# c letters or digits. Countries not listed are checked on length and mod-97 only.
_BBAN_LAYOUTS: Mapping[str, str] = MappingProxyType(
    {
        "AD": "8n12c", "AT": "16n", "BE": "12n", "BG": "4a6n8c", "CH": "5n12c",
        "CY": "8n16c", "CZ": "20n", "DE": "18n", "DK": "14n", "EE": "16n", "ES": "20n",
        "FI": "14n", "FR": "10n11c2n", "GB": "4a14n", "GI": "4a15c", "GR": "7n16c",
        "HR": "17n", "HU": "24n", "IE": "4a14n", "IS": "22n", "IT": "1a10n12c",
        "LI": "5n12c", "LT": "16n", "LU": "3n13c", "LV": "4a13c", "MC": "10n11c2n",
        "MT": "4a5n18c", "NL": "4a10n", "NO": "11n", "PL": "24n", "PT": "21n",
        "RO": "4a16c", "SE": "20n", "SI": "15n", "SK": "20n", "SM": "1a10n12c",
        "VA": "18n",
    }
)  # fmt: skip


def _expand(layout: str) -> str:
    """'4a14n' -> 'aaaannnnnnnnnnnnnn'."""
    out: list[str] = []
    count = ""
    for ch in layout:
        if ch.isdigit():
            count += ch
        else:
            out.append(ch * int(count))
            count = ""
    return "".join(out)


_BBAN_KINDS: Mapping[str, str] = MappingProxyType(
    {country: _expand(layout) for country, layout in _BBAN_LAYOUTS.items()}
)


def compile_iban_pattern(engine: EngineName | None = None) -> Pattern:
    return compile_pattern(IBAN_CANDIDATE_SOURCE, engine, group=1)


# ISO 7064 letter expansion, A=10 … Z=35, as one str.translate table.
def is_iban(compact: str) -> bool:
    """Registry country and length, BBAN layout where known, ISO 7064 mod 97-10."""
    if not (compact.isascii() and compact.isalnum() and compact.isupper()):
        return False
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    kinds = _BBAN_KINDS.get(compact[:2])
    if kinds is not None:
        for kind, ch in zip(kinds, compact[4:], strict=True):
            if (kind == "n" and not ch.isdigit()) or (kind == "a" and not ch.isalpha()):
                return False
    return iban_mod97(compact) == 1


def find_ibans(pattern: Pattern, text: str) -> Iterator[tuple[int, int]]:
    for start, end in pattern.spans(text):
        # A candidate can start early on a lookalike ("BC12DE89…"): try each inner
        # position that has the country + check-digit shape before giving up.
        for p in range(start, end - 3):
            if p == start or _looks_like_start(text, p):
                found = _iban_end(text, p, end)
                if found is not None:
                    yield p, found
                    break


def _looks_like_start(text: str, p: int) -> bool:
    return (
        "A" <= text[p] <= "Z"
        and "A" <= text[p + 1] <= "Z"
        and "0" <= text[p + 2] <= "9"
        and "0" <= text[p + 3] <= "9"
    )


def _iban_end(text: str, start: int, end: int) -> int | None:
    """End of the IBAN that starts at `start` inside candidate [start, end), or None."""
    if start > 0 and text[start - 1].isascii() and text[start - 1].isalnum():
        return None
    expected = IBAN_LENGTHS.get(text[start : start + 2])
    if expected is None:
        return None
    if " " in text[start:end]:
        end = _cut_spaced(text, start, end, expected)
    else:
        end = min(end, start + expected)
    if end < len(text) and text[end].isascii() and text[end].isalnum():
        return None
    return end if is_iban(text[start:end].replace(" ", "")) else None


def _cut_spaced(text: str, start: int, end: int, expected: int) -> int:
    """End of the first `expected` characters of a spaced IBAN, if that is a group end."""
    seen = 0
    for i in range(start, end):
        if text[i] != " ":
            seen += 1
            if seen == expected:
                return i + 1 if i + 1 == end or text[i + 1] == " " else end
    return end


def mask_iban(value: str, rule: IbanRule) -> str:
    """Keep country code, check digits and the last `keep_last` characters; keep spaces."""
    if rule.mode is MaskMode.FULL:
        return REDACTED
    total = sum(1 for ch in value if ch != " ")
    out: list[str] = []
    seen = 0
    for ch in value:
        if ch == " ":
            out.append(ch)
            continue
        out.append(ch if seen < 4 or seen >= total - rule.keep_last else MASK_CHAR)
        seen += 1
    return "".join(out)
