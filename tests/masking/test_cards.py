"""PAN detector: Luhn, length, IIN, separators, edges; PCI DSS 3.4.1 mask format."""

from __future__ import annotations

import pytest

from finward.masking import MaskingConfig, MaskingConfigError, MaskMode, PanRule, Redactor
from finward.masking import compile_redactor as compile_
from finward.masking.cards import is_luhn_valid, is_pan
from finward.sandbox.identifiers import compute_luhn_digit

from .conftest import categories, masked_text


def _luhn(partial: str) -> str:
    return partial + compute_luhn_digit(partial)


VISA = "4111111111111111"
MASTERCARD_2 = "2221000000000009"
AMEX = "378282246310005"
DINERS = "30569309025904"
VISA_19 = "4000000000000000006"
VISA_13 = "4222222222222"


@pytest.mark.parametrize("pan", [VISA, MASTERCARD_2, AMEX, DINERS, VISA_19, VISA_13])
def test_luhn_valid_pans_in_the_iin_ranges_are_pans(pan: str) -> None:
    assert is_luhn_valid(pan) and is_pan(pan)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("4111111111111112", "Luhn fails"),
        ("411111111111", "12 digits"),
        ("41111111111111111113", "20 digits"),
        (_luhn("123456781234567"), "IIN 1 (Luhn-valid)"),
        (_luhn("700000000000000"), "IIN 7"),
        (_luhn("202505010000000"), "2-series outside 2221-2720 / 2200-2204: date-led"),
    ],
)
def test_non_pans(value: str, why: str) -> None:
    assert is_luhn_valid(value) or why == "Luhn fails" or "digits" in why
    assert not is_pan(value), why


def test_contiguous_pan_keeps_bin_and_last_four(redactor: Redactor) -> None:
    assert masked_text(redactor, f"card {VISA} declined") == "card 411111******1111 declined"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111 1111 1111 1111", "4111 11** **** 1111"),
        ("4111-1111-1111-1111", "4111-11**-****-1111"),
        ("3782 822463 10005", "3782 82**** *0005"),
        ("3056 930902 5904", "3056 93**** 5904"),
        ("4000 0000 0000 0000 006", "4000 00** **** ***0 006"),
        ("(4111111111111111)", "(411111******1111)"),
        ("PAN:4111111111111111.", "PAN:411111******1111."),
    ],
)
def test_separators_and_punctuation_are_kept(redactor: Redactor, text: str, expected: str) -> None:
    assert masked_text(redactor, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # Luhn fails
        "411111111111",  # 12 digits
        "41111111111111111113",  # 20 digits, one run
        "x4111111111111111",  # glued to a letter: part of an id
        "4111111111111111x",
        "cdfbd7c4111111111111111f",
        "0.4111111111111111",  # a decimal number
        "4111111111111111,50",
        "4111 1111-1111 1111",  # mixed separators
        "1700000000000",  # epoch milliseconds
        "20250501000000",  # BG entryReference
        "4111.1111.1111.1111",  # dots are not a card layout
    ],
)
def test_no_false_positive(redactor: Redactor, text: str) -> None:
    assert categories(redactor, text) == []
    assert masked_text(redactor, text) == text


def test_leading_group_cannot_hide_a_pan(redactor: Redactor) -> None:
    assert masked_text(redactor, "2024 4111 1111 1111 1111") == "2024 4111 11** **** 1111"


def test_two_pans_side_by_side(redactor: Redactor) -> None:
    text = f"{VISA} {AMEX}"
    assert masked_text(redactor, text) == "411111******1111 378282*****0005"


def test_full_mode_and_custom_rule() -> None:
    full = compile_(MaskingConfig(pan=PanRule(mode=MaskMode.FULL)))
    assert full.redact_text(f"pan {VISA}").text == "pan ***"
    last4 = compile_(MaskingConfig(pan=PanRule(keep_first=0)))
    assert last4.redact_text(VISA).text == "************1111"


@pytest.mark.parametrize(("first", "last"), [(9, 4), (6, 5), (-1, 4)])
def test_rule_cannot_show_more_than_pci_allows(first: int, last: int) -> None:
    with pytest.raises(MaskingConfigError):
        PanRule(keep_first=first, keep_last=last)


def test_detector_can_be_switched_off() -> None:
    assert compile_(MaskingConfig(pan=None)).redact_text(VISA).text == VISA
