"""Format validators (issue 6): positive and negative cases; never raise on any str."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finward.validation.formats import (
    FORMAT_CHECKERS,
    is_bic,
    is_country,
    is_currency,
    is_date,
    is_date_time,
    is_iban,
    is_uuid,
    normalise_iban,
)
from finward.validation.iso_data import (
    IBAN_LENGTHS,
    ISO_3166_ALPHA2,
    ISO_4217_CURRENCIES,
)


@pytest.mark.parametrize(
    "value", ["2024-02-29", "2000-02-29", "2023-12-31", "0000-01-01", "9999-12-31", "2024-04-30"]
)
def test_valid_dates(value: str) -> None:
    assert is_date(value)


@pytest.mark.parametrize(
    "value",
    ["2023-02-29", "1900-02-29", "2024-04-31", "2024-13-01", "2024-00-10", "2024-01-00",
     "2024-1-01", "24-01-01", "2024/01/01", "20240101", "2024-01-01T00:00:00Z", " 2024-01-01",
     "2024-01-01\n", "\uff12\uff10\uff12\uff14-01-01", "+2024-01-01", ""],
)  # fmt: skip
def test_invalid_dates(value: str) -> None:
    assert not is_date(value)


@pytest.mark.parametrize(
    "value",
    [
        "2024-06-30T10:15:30Z",
        "2024-06-30T10:15:30.123Z",
        "2024-06-30T10:15:30.123456789+02:00",
        "2024-06-30t10:15:30z",
        "2024-06-30T10:15:30-00:00",
        "2024-02-29T23:59:59+23:59",
        "1998-12-31T23:59:60Z",  # leap second
        "1998-12-31T15:59:60.123-08:00",  # the same leap second, local time
        "2016-12-31T23:59:60Z",
        "2015-06-30T23:59:60Z",
        "2017-01-01T00:59:60+01:00",  # = 2016-12-31T23:59:60Z
    ],
)
def test_valid_date_times(value: str) -> None:
    assert is_date_time(value)


@pytest.mark.parametrize(
    "value",
    [
        "2024-06-30T10:15:30",  # no offset
        "2024-06-30 10:15:30Z",  # space separator
        "2024-06-30T10:15Z",  # no seconds
        "2024-06-30T24:00:00Z",
        "2024-06-30T10:60:00Z",
        "2024-06-30T10:15:61Z",
        "1998-12-31T23:59:61Z",
        "1998-12-31T23:58:60Z",  # leap second on the wrong minute
        "1998-12-31T22:59:60Z",  # leap second on the wrong hour
        "1998-12-30T23:59:60Z",  # not a month's last day
        "2024-06-30T10:15:30.Z",
        "2024-06-30T10:15:30.1234567890Z",  # more than 9 fraction digits
        "2024-06-30T10:15:30+24:00",
        "2024-06-30T10:15:30+02:60",
        "2024-06-30T10:15:30+0200",
        "2024-02-30T10:15:30Z",
        "2024-06-30T10:15:30ZZ",
        "2024-06-30T10:15:30Z\n",
        "",
    ],
)
def test_invalid_date_times(value: str) -> None:
    assert not is_date_time(value)


@pytest.mark.parametrize(
    "value",
    ["3fa85f64-5717-4562-b3fc-2c963f66afa6", "3FA85F64-5717-4562-B3FC-2C963F66AFA6",
     "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
     "3fa85f64-5717-f562-b3fc-2c963f66afa6"],
)  # fmt: skip
def test_valid_uuids(value: str) -> None:
    assert is_uuid(value)


@pytest.mark.parametrize(
    "value",
    ["3fa85f6457174562b3fc2c963f66afa6", "{3fa85f64-5717-4562-b3fc-2c963f66afa6}",
     "urn:uuid:3fa85f64-5717-4562-b3fc-2c963f66afa6", "3fa85f64-5717-4562-b3fc-2c963f66afa",
     "3fa85f64-5717-4562-b3fc-2c963f66afag", "3fa85f645-717-4562-b3fc-2c963f66afa6",
     "3fa85f64-5717-4562-b3fc-2c963f66afa6\n", ""],
)  # fmt: skip
def test_invalid_uuids(value: str) -> None:
    assert not is_uuid(value)


VALID_IBANS = [
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "BE68539007547034",
    "NO9386011117947",
    "MT84MALT011000012345MTLCAST001S",
    "CH9300762011623852957",
    "AT611904300234573201",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "PL61109010140000071219812874",
]


@pytest.mark.parametrize("value", VALID_IBANS)
def test_valid_ibans(value: str) -> None:
    assert is_iban(value)
    assert IBAN_LENGTHS[value[:2]] == len(value)


@pytest.mark.parametrize(
    "value",
    [
        "DE89 3704 0044 0532 0130 00",  # print format: refused (documented)
        "de89370400440532013000",  # lower-case country code: refused
        "DE88370400440532013000",  # wrong check digits
        "DE8937040044053201300",  # one short for DE
        "DE893704004405320130000",  # one long
        "XX89370400440532013000",  # no such country
        "US64SVBKUS6S3300958879",  # not an IBAN country
        "DE89370400440532013001",  # mod-97 fails
        "DE00370400440532013000",
        "GB82WEST1234569876543€",
        "DE89370400440532013000 ",
        "",
        "DE",
    ],
)
def test_invalid_ibans(value: str) -> None:
    assert not is_iban(value)


def test_check_digits_01_and_99_are_refused_even_when_mod97_passes() -> None:
    # 98 and 01 are congruent mod 97: rewriting one to the other keeps remainder 1.
    base = "GB98MIDL07009312345678"
    assert is_iban(base)
    assert not is_iban("GB01" + base[4:])


def test_lower_case_bban_letters_are_accepted() -> None:
    assert is_iban("GB82west12345698765432")


def test_normalise_iban() -> None:
    assert normalise_iban("de89 3704 0044 0532 0130 00") == "DE89370400440532013000"
    assert normalise_iban("DE88 3704 0044 0532 0130 00") is None
    assert normalise_iban("x" * 1000) is None


@pytest.mark.parametrize(
    "value", ["COBADEFFXXX", "COBADEFF", "DEUTDEFF500", "BNPAFRPP", "NWBKGB2L", "UBSWCHZH80A",
              "AAAAXK22", "RZTIAT22263"],
)  # fmt: skip
def test_valid_bics(value: str) -> None:
    assert is_bic(value)


@pytest.mark.parametrize(
    "value",
    ["cobadeff", "COBADEF", "COBADEFFX", "COBADEFFXX", "COBADEFFXXXX", "COBAXXFF", "COBAZZFF",
     "C0BADEFF", "COBADE0F", "COBADE1F", "COBADEFO", "COBADEFF XXX", "COBADEFF-XXX", ""],
)  # fmt: skip
def test_invalid_bics(value: str) -> None:
    assert not is_bic(value)


def test_currencies() -> None:
    for code in ("EUR", "GBP", "USD", "CHF", "SEK", "PLN", "JPY", "ZWG", "VED", "SLE", "XCG"):
        assert is_currency(code)
    for code in ("eur", "EURO", "EU", "HRK", "DEM", "ZWL", "SLL", "ABC", ""):
        assert not is_currency(code)
    assert all(len(c) == 3 and c.isascii() and c.isupper() for c in ISO_4217_CURRENCIES)


def test_countries() -> None:
    for code in ("DE", "GB", "FR", "AX", "SS", "BQ", "CW"):
        assert is_country(code)
    for code in ("de", "UK", "EU", "XK", "DEU", "D", "", "AN"):
        assert not is_country(code)
    assert len(ISO_3166_ALPHA2) == 249
    assert set(IBAN_LENGTHS) - ISO_3166_ALPHA2 == {"XK"}


def test_format_names() -> None:
    assert FORMAT_CHECKERS["date-time"] is is_date_time
    assert FORMAT_CHECKERS["iban"] is is_iban


@settings(max_examples=500)
@given(st.text(max_size=40), st.sampled_from(sorted(FORMAT_CHECKERS)))
def test_validators_never_raise(value: str, name: str) -> None:
    assert FORMAT_CHECKERS[name](value) in (True, False)


@given(st.sampled_from(VALID_IBANS), st.data())
def test_any_single_digit_change_breaks_an_iban(iban: str, data: st.DataObject) -> None:
    # ISO 7064 MOD 97-10 detects every single-digit substitution. (A digit replaced by a
    # letter can pass: the BBAN structure per country is not checked, only its length.)
    digits = [i for i, c in enumerate(iban) if c.isdigit()]
    index = data.draw(st.sampled_from(digits))
    replacement = data.draw(st.sampled_from("0123456789"))
    changed = iban[:index] + replacement + iban[index + 1 :]
    assert is_iban(changed) == (changed == iban)
