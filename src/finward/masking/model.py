"""Vocabulary of the masking package: categories, rules, configuration and findings.

A finding names *what* was found and *where* (a JSON pointer or a text offset), never
the value: findings go to audit events and logs, which must stay free of the data they
report on (DESIGN.md: one redaction module for every output path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Category(StrEnum):
    """Built-in detector categories; JSON-path rules may name their own category."""

    PAN = "pan"
    IBAN = "iban"
    EMAIL = "email"
    PHONE = "phone"
    PATH = "path"


class MaskMode(StrEnum):
    PARTIAL = "partial"  # keep the parts the rule allows (BIN, last digits, domain, …)
    FULL = "full"  # replace the whole value with REDACTED


#: What a fully redacted value becomes. It contains no digit, letter or '@', so masking
#: an already masked document finds nothing new (masking is idempotent).
REDACTED = "***"
#: The character that replaces each hidden digit or letter in partial masks.
MASK_CHAR = "*"


def is_ascii_digit(ch: str) -> bool:
    return "0" <= ch <= "9"


def mask_digits(value: str, keep_first: int, keep_last: int) -> str:
    """Hide every ASCII digit but the first ``keep_first`` and the last ``keep_last``;
    every other character (separators, '+', brackets) stays where it is."""
    total = sum(1 for ch in value if is_ascii_digit(ch))
    out: list[str] = []
    seen = 0
    for ch in value:
        if is_ascii_digit(ch):
            keep = seen < keep_first or seen >= total - keep_last
            out.append(ch if keep else MASK_CHAR)
            seen += 1
        else:
            out.append(ch)
    return "".join(out)


class MaskingConfigError(ValueError):
    """A masking rule asks for more clear text than its standard allows."""


@dataclass(frozen=True, slots=True)
class PanRule:
    """PCI DSS 4.0 req. 3.4.1: at most the BIN (first six) and the last four are shown."""

    keep_first: int = 6
    keep_last: int = 4
    mode: MaskMode = MaskMode.PARTIAL

    def __post_init__(self) -> None:
        # PCI DSS 3.4.1 allows up to the BIN (first 6, or 8 for 8-digit BINs) + last 4.
        if not (0 <= self.keep_first <= 8 and 0 <= self.keep_last <= 4):
            raise MaskingConfigError("a PAN mask may keep at most 8 leading and 4 trailing digits")


@dataclass(frozen=True, slots=True)
class IbanRule:
    """Keeps the country code and check digits (not personal) and the last few characters."""

    keep_last: int = 4
    mode: MaskMode = MaskMode.PARTIAL

    def __post_init__(self) -> None:
        if not 0 <= self.keep_last <= 4:
            raise MaskingConfigError("an IBAN mask may keep at most the last 4 characters")


@dataclass(frozen=True, slots=True)
class EmailRule:
    """Keeps the first character of the local part and the whole domain."""

    keep_first: int = 1
    mode: MaskMode = MaskMode.PARTIAL

    def __post_init__(self) -> None:
        if not 0 <= self.keep_first <= 1:
            raise MaskingConfigError("an e-mail mask may keep at most the first character")


@dataclass(frozen=True, slots=True)
class PhoneRule:
    """Keeps the last few digits (and the layout: '+', spaces, dashes, parentheses)."""

    keep_last: int = 3
    mode: MaskMode = MaskMode.PARTIAL

    def __post_init__(self) -> None:
        if not 0 <= self.keep_last <= 3:
            raise MaskingConfigError("a phone mask may keep at most the last 3 digits")


@dataclass(frozen=True, slots=True)
class PathRule:
    """Fully redact whatever sits at `path` (the JSONPath subset of `jsonpath.py`)."""

    path: str
    category: str = Category.PATH


@dataclass(frozen=True, slots=True)
class MaskingConfig:
    """Which detectors run and how each masks; `None` switches a detector off."""

    pan: PanRule | None = field(default_factory=PanRule)
    iban: IbanRule | None = field(default_factory=IbanRule)
    email: EmailRule | None = field(default_factory=EmailRule)
    phone: PhoneRule | None = field(default_factory=PhoneRule)
    paths: tuple[PathRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Detection:
    """A validated sensitive span in one string (code-point offsets)."""

    start: int
    end: int
    category: Category


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive value in a JSON document. `masked` is False when a permission
    (the `allowed` categories) let the clear value through; `in_key` marks an object
    member name rather than a value."""

    category: str
    pointer: str
    masked: bool = True
    in_key: bool = False


@dataclass(frozen=True, slots=True)
class TextFinding:
    """One sensitive value in plain text, by its code-point span in the *input*."""

    category: str
    start: int
    end: int
    masked: bool = True
