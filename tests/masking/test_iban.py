"""IBAN detector: registry lengths, BBAN layouts, mod-97, spaced form, edges, mask."""

from __future__ import annotations

import pytest

from finward.masking import IbanRule, MaskingConfig, MaskingConfigError, Redactor
from finward.masking import compile_redactor as compile_
from finward.masking.iban import _BBAN_KINDS, IBAN_LENGTHS, is_iban

from .conftest import categories, masked_text

# Published example IBANs (SWIFT IBAN registry / national banks).
VALID = [
    "DE89370400440532013000",
    "GB29NWBK60161331926819",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "BE68539007547034",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "AT611904300234573201",
    "CH9300762011623852957",
    "NO9386011117947",
    "MT84MALT011000012345MTLCAST001S",
    "SA0380000000608010167519",
]


@pytest.mark.parametrize("iban", VALID)
def test_registry_examples_are_ibans(iban: str) -> None:
    assert is_iban(iban)


@pytest.mark.parametrize("iban", VALID)
def test_electronic_and_paper_formats_are_masked(redactor: Redactor, iban: str) -> None:
    paper = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    for form in (iban, paper):
        out = masked_text(redactor, f"to {form}, thanks")
        assert form not in out
        assert out.startswith("to " + iban[:4])
        assert out.endswith(form[-4:] + ", thanks") or out.endswith(paper[-4:] + ", thanks")


def test_mask_format(redactor: Redactor) -> None:
    assert masked_text(redactor, "DE89370400440532013000") == "DE89**************3000"
    assert masked_text(redactor, "GB29 NWBK 6016 1331 9268 19") == "GB29 **** **** **** **68 19"


def test_spaced_iban_followed_by_a_word_is_cut_at_its_length(redactor: Redactor) -> None:
    assert masked_text(redactor, "BE68 5390 0754 7034 EUR") == "BE68 **** **** 7034 EUR"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("DE89370400440532013001", "mod-97 fails"),
        ("DE8937040044053201300", "DE is 22 characters"),
        ("DE893704004405320130000", "one too many (a longer token)"),
        ("XX89370400440532013000", "not a registry country"),
        ("de89370400440532013000", "lower case"),
        ("NL98ZZZ09999999999", "a SEPA creditor id: NL BBAN starts with 4 letters"),
        ("DE14ZZZ00000000000", "creditor id, wrong length"),
        ("1DE89370400440532013000", "glued to a digit"),
        ("ADE89370400440532013000", "glued to a letter"),
        ("GB29NWBK6016133192681X", "letter where GB has digits"),
    ],
)
def test_non_ibans(redactor: Redactor, text: str, why: str) -> None:
    assert categories(redactor, text) == [], why


def test_every_bban_layout_matches_the_registry_length() -> None:
    for country, kinds in _BBAN_KINDS.items():
        assert len(kinds) + 4 == IBAN_LENGTHS[country], country


def test_sandbox_ibans_are_detected(redactor: Redactor) -> None:
    from finward.sandbox.data import build_bank

    bank = build_bank()
    for account in bank.accounts.values():
        assert categories(redactor, account.iban) == ["iban"], account.iban


def test_rule_options() -> None:
    with pytest.raises(MaskingConfigError):
        IbanRule(keep_last=5)
    keep2 = compile_(MaskingConfig(iban=IbanRule(keep_last=2)))
    assert keep2.redact_text("NL91ABNA0417164300").text == "NL91************00"
