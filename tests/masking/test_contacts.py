"""E-mail and phone detectors: covered formats, look-alikes, masks."""

from __future__ import annotations

import pytest

from finward.masking import EmailRule, MaskingConfig, MaskingConfigError, PhoneRule, Redactor
from finward.masking import compile_redactor as compile_

from .conftest import categories, masked_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("john.doe@example.com", "j***@example.com"),
        ("jan.42+bills@example.org", "j***@example.org"),
        ("mail: a_b-c@sub.example.co.uk.", "mail: a***@sub.example.co.uk."),
        ("<bob@example.com>", "<b***@example.com>"),
        ("jürgen@bücher.de", "j***@bücher.de"),
        ("用户@例子.广告", "用***@例子.广告"),
        ("info@xn--bcher-kva.de", "i***@xn--bcher-kva.de"),
        ("bob@example.com.2024", "b***@example.com.2024"),
        ("x@y.io", "x***@y.io"),
    ],
)
def test_email_keeps_first_character_and_domain(
    redactor: Redactor, text: str, expected: str
) -> None:
    assert masked_text(redactor, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "@example.com",
        "bob@",
        "bob@localhost",  # no dot: not a public address
        "bob@example.c0m",  # TLD with a digit
        "bob@-example.com",
        "price 3@4.50 EUR",
        "a" * 65 + "@example.com",  # RFC 5321: local part at most 64
        "user at example dot com",
    ],
)
def test_not_an_email(redactor: Redactor, text: str) -> None:
    assert "email" not in categories(redactor, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+44 20 7946 0958", "+** ** **** *958"),
        ("+4915112345678", "+**********678"),
        ("+1 (415) 555-2671", "+* (***) ***-*671"),
        ("0049 30 1234567", "**** ** ****567"),
        ("020 7946 0958", "*** **** *958"),
        ("030-1234567", "***-****567"),
        ("(030) 1234567", "(***) ****567"),
        ("07700 900123", "***** ***123"),
        ("01 23 45 67 89", "** ** ** *7 89"),
        ("01.23.45.67.89", "**.**.**.*7.89"),
        ("(415) 555-2671", "(***) ***-*671"),
        ("415-555-2671", "***-***-*671"),
        ("call me on +33 1 23 45 67 89 today", "call me on +** * ** ** *7 89 today"),
    ],
)
def test_phone_keeps_last_three_digits(redactor: Redactor, text: str, expected: str) -> None:
    assert masked_text(redactor, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2025-05-01",
        "2025-05-01T10:30:00+01:00",
        "+10:00",
        "-819.00",
        "+1234567",  # 7 digits: below E.164 plausibility
        "01511234567",  # unseparated national: not covered (ids look the same)
        "01-02-2025",
        "1234567.89",
        "Ticket 2024-000123-45",
        "f36da0ba-cd30-4047-b37d-3de495160db7",
        "123-456-7890",  # NANP area codes do not start with 1
        "v2.415.555.2671",
        "020 7946 0958 1234",  # a longer number continues
    ],
)
def test_not_a_phone(redactor: Redactor, text: str) -> None:
    assert "phone" not in categories(redactor, text)


def test_rules() -> None:
    with pytest.raises(MaskingConfigError):
        PhoneRule(keep_last=4)
    with pytest.raises(MaskingConfigError):
        EmailRule(keep_first=2)
    none_kept = compile_(MaskingConfig(phone=PhoneRule(keep_last=0), email=EmailRule(0)))
    assert none_kept.redact_text("+44 20 7946 0958").text == "+** ** **** ****"
    assert none_kept.redact_text("bob@example.com").text == "***@example.com"
    off = compile_(MaskingConfig(email=None, phone=None))
    assert off.redact_text("bob@example.com +44 20 7946 0958").findings == ()
