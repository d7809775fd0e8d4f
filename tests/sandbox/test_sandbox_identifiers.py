"""IBAN, national check digit, PAN and creditor-id generation against published examples.

The reference checks here are written independently of `finward.sandbox.identifiers`,
so a bug shared by generator and validator cannot make both agree.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finward.sandbox import catalogue
from finward.sandbox.identifiers import (
    IBAN_LENGTHS,
    BankCode,
    compute_be_check,
    compute_es_control_digits,
    compute_fr_rib_key,
    compute_it_cin,
    is_luhn_valid,
    is_nl_eleven_proof,
    is_valid_iban,
    make_creditor_id,
    make_iban,
    make_pan,
    mask_pan,
)


def reference_mod97(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def reference_luhn(number: str) -> bool:
    digits = [int(d) for d in number]
    for i in range(len(digits) - 2, -1, -2):
        digits[i] = digits[i] * 2 - 9 if digits[i] * 2 > 9 else digits[i] * 2
    return sum(digits) % 10 == 0


# Published example IBANs (ECBS / national registry documentation).
EXAMPLE_IBANS = [
    "DE89370400440532013000",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "BE68539007547034",
    "GB82WEST12345698765432",
    "CH9300762011623852957",
    "AT611904300234573201",
]


@pytest.mark.parametrize("iban", EXAMPLE_IBANS)
def test_published_ibans_are_valid_and_one_changed_digit_is_not(iban: str) -> None:
    assert is_valid_iban(iban)
    position = len(iban) - 3
    changed = iban[:position] + str((int(iban[position]) + 1) % 10) + iban[position + 1 :]
    assert not is_valid_iban(changed)


@pytest.mark.parametrize(
    "iban", ["de89370400440532013000", "DE89 3704 0044 0532 0130 00", "DE8937040044053201300", ""]
)
def test_iban_must_be_in_electronic_format_with_registry_length(iban: str) -> None:
    assert not is_valid_iban(iban)


def test_national_check_digits_match_published_examples() -> None:
    assert compute_fr_rib_key("30006", "00001", "12345678901") == "89"  # FR76 3000 6000 0112…
    assert compute_es_control_digits("2100", "0418", "0200051332") == "45"  # ES91 2100 0418 45…
    assert compute_it_cin("05428", "11101", "000000123456") == "X"  # IT60 X054 2811 101…
    assert compute_be_check("5390075470") == "34"  # BE68 5390 0754 7034
    assert is_nl_eleven_proof("0417164300")  # NL91 ABNA 0417 1643 00


@pytest.mark.parametrize(
    ("pan", "valid"),
    [("4111111111111111", True), ("5555555555554444", True), ("4111111111111112", False)],
)
def test_luhn_against_well_known_test_card_numbers(pan: str, valid: bool) -> None:
    assert is_luhn_valid(pan) is valid


def test_masked_pan_keeps_first_six_and_last_four() -> None:
    assert mask_pan("4111111111111111") == "411111xxxxxx1111"


BANK_CODES = [branch.code for branch in catalogue.SANDBOX_BRANCHES]
BANK_CODES += list(catalogue.COUNTERPARTY_BANKS)
BANK_CODES += list(catalogue.FOREIGN_COUNTERPARTY_BANKS.values())


@given(seed=st.integers(min_value=0, max_value=2**32), index=st.integers(0, len(BANK_CODES) - 1))
def test_generated_ibans_pass_mod97_and_registry_length(seed: int, index: int) -> None:
    code: BankCode = BANK_CODES[index]
    iban = make_iban(random.Random(seed), code)
    assert reference_mod97(iban)
    assert len(iban) == IBAN_LENGTHS[code.country]
    assert iban.startswith(code.country)


@given(
    seed=st.integers(min_value=0, max_value=2**32), scheme=st.sampled_from(["visa", "mastercard"])
)
def test_generated_pans_pass_luhn_and_sit_in_the_scheme_range(seed: int, scheme: str) -> None:
    pan = make_pan(random.Random(seed), scheme)
    assert len(pan) == 16 and reference_luhn(pan)
    if scheme == "visa":
        assert pan.startswith("4")
    else:
        assert 51 <= int(pan[:2]) <= 55 or 2221 <= int(pan[:4]) <= 2720


@given(seed=st.integers(min_value=0, max_value=2**32))
def test_creditor_ids_carry_valid_iso7064_check_digits(seed: int) -> None:
    creditor_id = make_creditor_id(random.Random(seed), "DE")
    assert creditor_id[4:7] == "ZZZ"
    # EPC262: the check covers the national id and the country, not the business code.
    assert reference_mod97(creditor_id[:4] + creditor_id[7:])
