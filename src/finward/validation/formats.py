"""Format validators for the schema layer (issue 6): each takes any ``str`` and returns
a bool, never raises.

Policies (strict where the upstream would see something else than we checked):

- ``date``: RFC 3339 ``full-date`` exactly (``2024-02-29``), days checked against the
  month and leap years, years 0000-9999.
- ``date-time``: RFC 3339 ``date-time`` exactly: ``T`` separator, seconds required, an
  offset required (``Z`` or ``+hh:mm``/``-hh:mm``, hours 00-23). ``t`` and ``z`` are
  accepted in lower case (RFC 3339 §5.6 allows it; so does the JSON Schema test suite).
  A fraction has 1 to 9 digits (what java.time and most upstreams parse; more is
  refused). **Leap seconds**: second ``60`` is accepted only where a leap second can be
  inserted, i.e. when the time, moved to UTC by its offset, is 23:59:60 on the last day of
  a month (ITU-R TF.460-6); no table of past leap seconds is consulted.
- ``uuid``: the RFC 9562 hex-and-hyphen form ``8-4-4-4-12``, any case, any version and
  variant (nil and max included); no braces, no ``urn:uuid:`` prefix.
- ``iban``: the ISO 13616 electronic format only: no spaces, country code and check
  digits as ``AA00``, then letters and digits; the length must be the registry's length
  for the country (``iso_data.IBAN_LENGTHS``) and the mod-97 remainder 1; check digits
  ``00``, ``01`` and ``99`` are never issued and refused. The print format
  (``DE89 3704 ...``) and a lower-case country code are **refused**: the gateway
  validates the value the upstream receives and does not rewrite it. Lower-case letters
  in the BBAN part are accepted (the registry's ``c`` type and the Berlin Group pattern
  allow them); ``normalise_iban`` is there for callers that want to canonicalise first.
- ``bic``: ISO 9362 as the Berlin Group pattern writes it: 4-letter party prefix, an
  ISO 3166 country code (or ``XK``), a location code (first character not ``0``/``1``,
  second not ``O``), optional 3-character branch code; upper case only; 8 or 11 long.
- ``currency``: an ISO 4217 List One code, upper case (``iso_data``).
- ``country``: an ISO 3166-1 alpha-2 code, upper case (``iso_data``).
"""

from __future__ import annotations

import re

from finward.validation.iso_data import (
    BIC_COUNTRIES,
    IBAN_LENGTHS,
    ISO_3166_ALPHA2,
    ISO_4217_CURRENCIES,
)

__all__ = [
    "FORMAT_CHECKERS",
    "is_bic",
    "is_country",
    "is_currency",
    "is_date",
    "is_date_time",
    "is_iban",
    "is_uuid",
    "normalise_iban",
]

_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]{1,9})?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_IBAN = re.compile(r"([A-Z]{2})([0-9]{2})[A-Za-z0-9]{1,30}", re.ASCII)
_BIC = re.compile(r"[A-Z]{4}([A-Z]{2})[A-Z2-9][A-NP-Z0-9](?:[A-Z0-9]{3})?", re.ASCII)
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    return 29 if month == 2 and _is_leap(year) else _DAYS[month - 1]


def _valid_date(year: int, month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)


def is_date(value: str) -> bool:
    """RFC 3339 full-date."""
    if not isinstance(value, str):
        return False
    match = _DATE.fullmatch(value)
    return match is not None and _valid_date(*map(int, match.groups()))


def is_date_time(value: str) -> bool:
    """RFC 3339 date-time; leap seconds only at 23:59:60 UTC on a month's last day."""
    if not isinstance(value, str):
        return False
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    zulu, sign, off_h, off_m = match.groups()[6:]
    if not _valid_date(year, month, day) or hour > 23 or minute > 59 or second > 60:
        return False
    offset = 0
    if not zulu:
        if int(off_h) > 23 or int(off_m) > 59:
            return False
        offset = (int(off_h) * 60 + int(off_m)) * (1 if sign == "+" else -1)
    if second == 60:
        return _is_leap_second_slot(year, month, day, hour * 60 + minute - offset)
    return True


def _is_leap_second_slot(year: int, month: int, day: int, utc_minutes: int) -> bool:
    """Whether local date + minutes-of-day shifted to UTC is 23:59 on a month's last day."""
    if utc_minutes < 0:
        utc_minutes += 1440
        day -= 1
        if day == 0:
            month -= 1
            if month == 0:
                month, year = 12, year - 1
            day = _days_in_month(year, month)
    elif utc_minutes >= 1440:
        utc_minutes -= 1440
        day += 1
        if day > _days_in_month(year, month):
            day, month = 1, month + 1
            if month == 13:
                month, year = 1, year + 1
    return utc_minutes == 23 * 60 + 59 and day == _days_in_month(year, month)


def is_uuid(value: str) -> bool:
    """RFC 9562 string form, any version."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def iban_mod97(compact: str) -> int:
    """ISO 7064 mod 97-10 of an IBAN in electronic format (1 when valid)."""
    return _mod97(compact[4:] + compact[:4])


def _mod97(text: str) -> int:
    remainder = 0
    for char in text:
        digit = int(char, 36)  # '0'-'9' -> 0-9, 'A'/'a'-'Z'/'z' -> 10-35
        remainder = (remainder * (100 if digit > 9 else 10) + digit) % 97
    return remainder


def is_iban(value: str) -> bool:
    """ISO 13616 IBAN, electronic format, registry length and mod-97."""
    if not isinstance(value, str):
        return False
    match = _IBAN.fullmatch(value)
    if match is None:
        return False
    country, check = match.groups()
    if IBAN_LENGTHS.get(country) != len(value) or check in ("00", "01", "99"):
        return False
    return iban_mod97(value) == 1


def normalise_iban(value: str) -> str | None:
    """The electronic format of a print-format IBAN (spaces removed, upper case), or None
    when the result is not a valid IBAN. Only for callers that rewrite the value."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    candidate = value.replace(" ", "").upper()
    return candidate if is_iban(candidate) else None


def is_bic(value: str) -> bool:
    """ISO 9362 BIC (8 or 11 characters) with a valid country code."""
    if not isinstance(value, str):
        return False
    match = _BIC.fullmatch(value)
    return match is not None and match.group(1) in BIC_COUNTRIES


def is_currency(value: str) -> bool:
    """ISO 4217 List One alphabetic code."""
    return isinstance(value, str) and value in ISO_4217_CURRENCIES


def is_country(value: str) -> bool:
    """ISO 3166-1 alpha-2 code."""
    return isinstance(value, str) and value in ISO_3166_ALPHA2


# OpenAPI/JSON Schema ``format`` names (and the names the open-banking specs use).
FORMAT_CHECKERS = {
    "date": is_date,
    "date-time": is_date_time,
    "uuid": is_uuid,
    "iban": is_iban,
    "bic": is_bic,
    "iso-4217": is_currency,
    "currency": is_currency,
    "iso-3166-alpha-2": is_country,
    "country": is_country,
}
