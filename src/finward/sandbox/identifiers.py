"""Well-formed banking identifiers for the sandbox: IBANs, PANs, SEPA creditor ids.

The gateway's validators, maskers and detectors are tested against this data, so the
identifiers must be *real-shaped*: an IBAN that fails ISO 13616 mod-97 or a PAN that
fails Luhn would be rejected (or ignored) for the wrong reason. National BBAN check
digits are computed where the scheme is public and simple (FR RIB key, ES DC, IT CIN,
BE mod-97, NL eleven-test); German and British account checks depend on per-bank
algorithms and are not modelled.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from finward.validation.iso_data import IBAN_LENGTHS as ISO_IBAN_LENGTHS

_DIGITS = string.digits
_UPPER = string.ascii_uppercase


def _alnum_to_digits(text: str) -> str:
    """ISO 7064 letter expansion used by IBAN and SEPA creditor ids (A=10 … Z=35)."""
    return "".join(str(int(ch, 36)) for ch in text.upper())


def compute_iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616: move country + '00' to the end, expand letters, 98 - (n mod 97)."""
    remainder = int(_alnum_to_digits(bban + country + "00")) % 97
    return f"{98 - remainder:02d}"


def is_valid_iban_checksum(iban: str) -> bool:
    """True when the ISO 13616 mod-97 check of a compact IBAN holds."""
    compact = iban.replace(" ", "").upper()
    if len(compact) < 5 or not compact.isalnum():
        return False
    return int(_alnum_to_digits(compact[4:] + compact[:4])) % 97 == 1


# --- national BBAN check digits -------------------------------------------------------


def compute_fr_rib_key(bank: str, branch: str, account: str) -> str:
    """French RIB key (clé RIB) for numeric account numbers."""
    return f"{97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97:02d}"


_ES_WEIGHTS = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)


def _es_digit(ten_digits: str) -> str:
    value = 11 - sum(w * int(d) for w, d in zip(_ES_WEIGHTS, ten_digits, strict=True)) % 11
    return {11: "0", 10: "1"}.get(value, str(value))


def compute_es_control_digits(bank: str, branch: str, account: str) -> str:
    """Spanish 'dígitos de control': one over 00+bank+branch, one over the account."""
    return _es_digit("00" + bank + branch) + _es_digit(account)


# Odd-position values of the Italian CIN table, indexed by digit value or letter index.
_IT_ODD: tuple[int, ...] = (
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
)  # fmt: skip


def compute_it_cin(abi: str, cab: str, account: str) -> str:
    """Italian CIN letter over ABI + CAB + account (odd/even position tables)."""
    total = 0
    for position, ch in enumerate(abi + cab + account.upper(), start=1):
        index = int(ch) if ch.isdigit() else ord(ch) - ord("A")
        total += _IT_ODD[index] if position % 2 else index
    return _UPPER[total % 26]


def compute_be_check(ten_digits: str) -> str:
    """Belgian account check: the first ten digits mod 97, where 0 becomes 97."""
    return f"{int(ten_digits) % 97 or 97:02d}"


def is_nl_eleven_proof(account: str) -> bool:
    """Dutch 'elfproef': weighted digit sum (10 … 1) divisible by 11."""
    return sum((10 - i) * int(d) for i, d in enumerate(account)) % 11 == 0


# --- BBAN builders, one per country ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class BankCode:
    """The national routing part of a BBAN (bank code and, where used, branch code)."""

    country: str
    bank: str
    branch: str = ""


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(_DIGITS) for _ in range(count))


def _bban_de(rng: random.Random, code: BankCode) -> str:
    return code.bank + _digits(rng, 10)  # 8n Bankleitzahl + 10n Kontonummer


def _bban_fr(rng: random.Random, code: BankCode) -> str:
    account = _digits(rng, 11)
    return code.bank + code.branch + account + compute_fr_rib_key(code.bank, code.branch, account)


def _bban_nl(rng: random.Random, code: BankCode) -> str:
    while True:  # about one draw in eleven has no valid last digit; retry
        head = _digits(rng, 9)
        last = -sum((10 - i) * int(d) for i, d in enumerate(head)) % 11
        if last < 10:
            return code.bank + head + str(last)


def _bban_es(rng: random.Random, code: BankCode) -> str:
    account = _digits(rng, 10)
    dc = compute_es_control_digits(code.bank, code.branch, account)
    return code.bank + code.branch + dc + account


def _bban_it(rng: random.Random, code: BankCode) -> str:
    account = _digits(rng, 12)
    return compute_it_cin(code.bank, code.branch, account) + code.bank + code.branch + account


def _bban_be(rng: random.Random, code: BankCode) -> str:
    head = code.bank + _digits(rng, 7)
    return head + compute_be_check(head)


def _bban_gb(rng: random.Random, code: BankCode) -> str:
    return code.bank + code.branch + _digits(rng, 8)  # 4a bank + 6n sort code + 8n


def _bban_ch(rng: random.Random, code: BankCode) -> str:
    return code.bank + _digits(rng, 12)  # 5n clearing number + 12 account


def _bban_at(rng: random.Random, code: BankCode) -> str:
    return code.bank + _digits(rng, 11)  # 5n Bankleitzahl + 11n


_BBAN_BUILDERS: Mapping[str, Callable[[random.Random, BankCode], str]] = MappingProxyType(
    {
        "DE": _bban_de,
        "FR": _bban_fr,
        "NL": _bban_nl,
        "ES": _bban_es,
        "IT": _bban_it,
        "BE": _bban_be,
        "GB": _bban_gb,
        "CH": _bban_ch,
        "AT": _bban_at,
    }
)

# The SEPA countries (SWIFT IBAN registry lengths, from finward.validation.iso_data).
# The sandbox issues IBANs in a few of them but accepts payments to any.
_SEPA = (
    "AD", "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB",
    "GI", "GR", "HR", "HU", "IE", "IS", "IT", "LI", "LT", "LU", "LV", "MC", "MT", "NL",
    "NO", "PL", "PT", "RO", "SE", "SI", "SK", "SM", "VA",
)  # fmt: skip
IBAN_LENGTHS: Mapping[str, int] = MappingProxyType({c: ISO_IBAN_LENGTHS[c] for c in _SEPA})


def make_iban(rng: random.Random, code: BankCode) -> str:
    """A new IBAN at the bank `code`, passing mod-97 and the national check."""
    bban = _BBAN_BUILDERS[code.country](rng, code)
    iban = code.country + compute_iban_check_digits(code.country, bban) + bban
    if len(iban) != IBAN_LENGTHS[code.country]:  # a malformed BankCode in the catalogue
        raise ValueError(f"{code} builds IBANs of length {len(iban)}")
    return iban


def is_valid_iban(iban: str) -> bool:
    """Electronic format (no spaces, upper case), SEPA country, registry length, mod-97."""
    return (
        IBAN_LENGTHS.get(iban[:2]) == len(iban)
        and iban[2:4].isdigit()
        and all(ch in _DIGITS or ch in _UPPER for ch in iban[4:])
        and is_valid_iban_checksum(iban)
    )


# --- cards ----------------------------------------------------------------------------


def compute_luhn_digit(partial: str) -> str:
    """The check digit that makes `partial + digit` pass Luhn (ISO/IEC 7812-1)."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str(-total % 10)


def is_luhn_valid(number: str) -> bool:
    """True when the digit string passes the Luhn check."""
    return number.isdigit() and compute_luhn_digit(number[:-1]) == number[-1]


def make_pan(rng: random.Random, scheme: str) -> str:
    """A 16-digit PAN in the Visa (4…) or Mastercard (51-55, 2221-2720) range."""
    if scheme == "visa":
        prefix = "4" + _digits(rng, 5)
    elif scheme == "mastercard":
        prefix = (
            str(rng.randint(51, 55)) + _digits(rng, 4)
            if rng.random() < 0.7
            else str(rng.randint(2221, 2720)) + _digits(rng, 2)
        )
    else:
        raise ValueError(f"unknown card scheme {scheme!r}")
    partial = prefix + _digits(rng, 15 - len(prefix))
    return partial + compute_luhn_digit(partial)


def mask_pan(pan: str) -> str:
    """Berlin Group style masked PAN: first six and last four digits kept (PCI DSS 3.4.1)."""
    return pan[:6] + "x" * (len(pan) - 10) + pan[-4:]


# --- other identifiers ----------------------------------------------------------------


def make_creditor_id(rng: random.Random, country: str) -> str:
    """A SEPA creditor identifier (EPC262-08): CC + check + 'ZZZ' + national id."""
    national = _digits(rng, 11)
    check = 98 - int(_alnum_to_digits(national + country + "00")) % 97
    return f"{country}{check:02d}ZZZ{national}"


def make_resource_id(rng: random.Random) -> str:
    """An opaque UUID-shaped id drawn from `rng`, so it is stable for a seed."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_hex_id(rng: random.Random, length: int = 20) -> str:
    """An opaque lowercase hex id of `length` characters."""
    return f"{rng.getrandbits(length * 4):0{length}x}"
