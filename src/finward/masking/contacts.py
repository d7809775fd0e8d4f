"""E-mail address and phone number detection, and their masks.

E-mail (RFC 5322 addr-spec, RFC 6531 internationalised):

- the local part is up to 64 characters (RFC 5321 §4.5.3.1.1) of RFC 5322 ``atext``, dots
  and any non-ASCII, non-space character, found by walking left from each ``@``; a
  longer run is not an address;
- the domain is two or more dot-separated labels of 1-63 letters, digits, hyphens or
  non-ASCII characters (IDN U-labels), not starting or ending with a hyphen; the last
  label is alphabetic (``com``, ``广告``) or an A-label (``xn--…``); trailing labels that
  break that rule are dropped (``bob@example.com.2024`` -> ``bob@example.com``).

Quoted local parts and IP-literal domains are not detected.

Phone numbers (document-level rules; no per-country numbering plan):

- international: ``+`` or ``00``, a country code not starting with 0, then digit groups
  separated by one space or dash, optionally an area code in parentheses; 8-15 digits
  in all (ITU-T E.164 maximum 15): ``+44 20 7946 0958``, ``+4915112345678``,
  ``+1 (415) 555-2671``, ``0049 30 1234567``;
- national with a trunk ``0``: a 3-6 digit trunk + area code, then 1-4 groups of 2-8
  digits separated by one space or dash, or ``(030) 1234567``; 9-12 digits in all
  (``020 7946 0958``, ``030-1234567``, ``07700 900123``); the French layout of five
  pairs (``01 23 45 67 89``, ``01.23.45.67.89``);
- North American: ``(415) 555-2671``, ``415-555-2671``, ``415 555 2671``.

Not covered, on purpose: unseparated national numbers (``01511234567``), which cannot be
told from account numbers and references, and dot-separated groups outside the French
layout, which look like amounts and versions. A number adjacent to a letter, digit or
a further digit group is not a phone number (it is part of a longer token).
"""

from __future__ import annotations

from collections.abc import Iterator

from finward.masking.engine import EngineName, Pattern, compile_pattern
from finward.masking.model import (
    REDACTED,
    EmailRule,
    MaskMode,
    PhoneRule,
    is_ascii_digit,
    mask_digits,
)

MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2
MAX_LABEL = 63  # RFC 1035 §2.3.4

_ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~."
)
# Any code point from U+0080 up (IDN labels); the engine module maps surrogates to U+FFFD.
_NON_ASCII = f"{chr(0x80)}-{chr(0x10FFFF)}"
# Labels are split and checked in Python: RE2 refuses nested counted repetitions this big.
DOMAIN_SOURCE = rf"[A-Za-z0-9.\-{_NON_ASCII}]{{1,{MAX_DOMAIN}}}"

PHONE_CANDIDATE_SOURCE = (
    r"(?:^|[^0-9A-Za-z+])("
    # international: + or 00, country code and subscriber digits
    r"(?:\+|00)[1-9][0-9]{0,14}(?:[ \-]?\([0-9]{1,5}\))?(?:[ \-][0-9]{1,14}){0,6}"
    # French five pairs
    r"|0[1-9](?: [0-9]{2}){4}|0[1-9](?:\.[0-9]{2}){4}"
    # national with trunk 0
    r"|0[1-9][0-9]{1,4}(?:[ \-][0-9]{2,8}){1,4}"
    r"|\(0[1-9][0-9]{1,4}\) ?[0-9]{2,8}(?:[ \-][0-9]{2,8}){0,3}"
    # North American Numbering Plan
    r"|(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}[ \-])[2-9][0-9]{2}[ \-][0-9]{4}"
    ")"
)


def compile_domain_pattern(engine: EngineName | None = None) -> Pattern:
    return compile_pattern(DOMAIN_SOURCE, engine)


def compile_phone_pattern(engine: EngineName | None = None) -> Pattern:
    return compile_pattern(PHONE_CANDIDATE_SOURCE, engine, group=1)


# --- e-mail ---------------------------------------------------------------------------


def _is_local_char(ch: str) -> bool:
    return ch in _ATEXT or (ch >= "\x80" and not ch.isspace())


def _is_tld(label: str) -> bool:
    return (len(label) >= 2 and label.isalpha()) or (len(label) > 4 and label[:4].lower() == "xn--")


def find_emails(domain_pattern: Pattern, text: str) -> Iterator[tuple[int, int]]:
    at = text.find("@")
    while at != -1:
        span = _email_at(domain_pattern, text, at)
        if span is not None:
            yield span
        at = text.find("@", at + 1)


def _email_at(domain_pattern: Pattern, text: str, at: int) -> tuple[int, int] | None:
    start = at
    while start > 0 and at - start <= MAX_LOCAL_PART and _is_local_char(text[start - 1]):
        start -= 1
    if at - start > MAX_LOCAL_PART:
        return None
    while start < at and text[start] == ".":  # a local part never starts with a dot
        start += 1
    if start == at:
        return None
    window = text[at + 1 : at + 1 + MAX_DOMAIN]  # RE2 encodes its whole input: slice first
    length = domain_pattern.match_end(window, 0)
    if length is None:
        return None
    labels = window[:length].split(".")
    if "" in labels:  # "a..b", or the full stop that ends a sentence
        labels = labels[: labels.index("")]
    while len(labels) >= 2 and not _is_tld(labels[-1]):
        labels.pop()
    if len(labels) < 2 or any(
        len(lb) > MAX_LABEL or lb.startswith("-") or lb.endswith("-") for lb in labels
    ):
        return None
    return start, at + 1 + sum(len(lb) for lb in labels) + len(labels) - 1


def mask_email(value: str, rule: EmailRule) -> str:
    """``john.doe@example.com`` -> ``j***@example.com``: the length of the local part
    is not kept, so the mask does not narrow down the name."""
    if rule.mode is MaskMode.FULL:
        return REDACTED
    local, _, domain = value.rpartition("@")
    return local[: rule.keep_first] + REDACTED + "@" + domain


# --- phone ----------------------------------------------------------------------------


def find_phones(pattern: Pattern, text: str) -> Iterator[tuple[int, int]]:
    for start, end in pattern.spans(text):
        if _is_phone(text, start, end):
            yield start, end


def _is_phone(text: str, start: int, end: int) -> bool:
    if start > 0:
        before = text[start - 1]
        if before.isalnum() or before == "+":
            return False
    if end < len(text):
        after = text[end]
        if after.isalnum():
            return False
        following = text[end + 1 : end + 2]
        if after in " -.,/" and following and is_ascii_digit(following):
            return False  # a longer number, an amount or a date continues here
    candidate = text[start:end]
    digits = sum(1 for ch in candidate if is_ascii_digit(ch))
    first = candidate[0]
    if first == "+":
        return 8 <= digits <= 15
    if candidate.startswith("00"):
        return 8 <= digits - 2 <= 15
    if first == "0" or candidate.startswith("(0"):
        return 9 <= digits <= 12
    return digits == 10  # NANP


def mask_phone(value: str, rule: PhoneRule) -> str:
    """Hide every digit but the last `keep_last`; keep '+', spaces, dashes, brackets."""
    if rule.mode is MaskMode.FULL:
        return REDACTED
    return mask_digits(value, 0, rule.keep_last)
