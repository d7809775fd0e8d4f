"""The redactor over JSON values and plain text: pointers, keys, permissions, paths."""

from __future__ import annotations

import json

import pytest

from finward.masking import (
    Category,
    Finding,
    MaskingConfig,
    MaskingConfigError,
    PathRule,
    Redactor,
    compile_redactor,
)
from finward.masking.cards import is_pan
from finward.masking.engine import DEFAULT_ENGINE
from finward.masking.jsonpath import compile_path

VISA = "4111111111111111"
IBAN = "DE89370400440532013000"


def test_nested_values_are_masked_with_pointers(redactor: Redactor) -> None:
    doc = {
        "account": {"iban": IBAN, "currency": "EUR"},
        "transactions": [
            {"remittance": f"card {VISA}", "amount": "12.00"},
            {"remittance": "mail bob@example.com", "bookingDate": "2025-05-01"},
        ],
        "a/b~c": ["+44 20 7946 0958"],
    }
    result = redactor.redact_json(doc)
    assert result.value == {
        "account": {"iban": "DE89**************3000", "currency": "EUR"},
        "transactions": [
            {"remittance": "card 411111******1111", "amount": "12.00"},
            {"remittance": "mail b***@example.com", "bookingDate": "2025-05-01"},
        ],
        "a/b~c": ["+** ** **** *958"],
    }
    assert result.findings == (
        Finding("iban", "/account/iban"),
        Finding("pan", "/transactions/0/remittance"),
        Finding("email", "/transactions/1/remittance"),
        Finding("phone", "/a~1b~0c/0"),
    )
    assert doc["account"]["iban"] == IBAN  # the input is never mutated


def test_findings_never_carry_the_value(redactor: Redactor) -> None:
    result = redactor.redact_json({"x": [f"{VISA} {IBAN} bob@example.com"]})
    assert VISA not in repr(result.findings) and IBAN not in repr(result.findings)
    assert "bob@" not in repr(result.findings)


def test_allowed_category_passes_clear_but_is_reported(redactor: Redactor) -> None:
    doc = {"pan": VISA, "iban": IBAN}
    result = redactor.redact_json(doc, allowed={Category.PAN})  # e.g. UK ReadPAN
    assert result.value == {"pan": VISA, "iban": "DE89**************3000"}
    assert result.findings == (Finding("pan", "/pan", masked=False), Finding("iban", "/iban"))
    assert redactor.redact_text(VISA, allowed={"pan"}).text == VISA


def test_pan_sent_as_a_json_number_is_masked(redactor: Redactor) -> None:
    result = redactor.redact_json({"card": int(VISA), "amount": 4111, "ts": 1700000000000})
    assert result.value == {"card": "411111******1111", "amount": 4111, "ts": 1700000000000}
    assert result.findings == (Finding("pan", "/card"),)


def test_member_names_are_masked_and_pointers_use_the_masked_name(redactor: Redactor) -> None:
    result = redactor.redact_json({"accounts": {IBAN: {"note": VISA}}})
    masked_iban = "DE89**************3000"
    assert result.value == {"accounts": {masked_iban: {"note": "411111******1111"}}}
    assert Finding("iban", f"/accounts/{masked_iban}", in_key=True) in result.findings
    assert Finding("pan", f"/accounts/{masked_iban}/note") in result.findings


def test_colliding_masked_names_keep_every_member(redactor: Redactor) -> None:
    other = "4111110000091111"  # masks to the same "411111******1111" as VISA
    assert is_pan(other) and other != VISA
    result = redactor.redact_json({VISA: 1, other: 2})
    assert result.value == {"411111******1111": 1, "411111******1111#2": 2}


def test_scalars_and_shapes(redactor: Redactor) -> None:
    doc = [None, True, False, 1.5, -3, "", "x", [], {}, ("a", VISA)]
    assert redactor.redact_json(doc).value == [
        None, True, False, 1.5, -3, "", "x", [], {}, ["a", "411111******1111"],
    ]  # fmt: skip


def test_text_mode_reports_offsets_in_the_input(redactor: Redactor) -> None:
    line = f'ERROR upstream said {{"pan": "{VISA}", "contact": "bob@example.com"}}'
    result = redactor.redact_text(line)
    assert VISA not in result.text and "bob@example.com" not in result.text
    pan, email = result.findings
    assert (pan.category, line[pan.start : pan.end]) == ("pan", VISA)
    assert (email.category, line[email.start : email.end]) == ("email", "bob@example.com")


def test_lone_surrogates_and_nul_do_not_break_scanning(redactor: Redactor) -> None:
    text = f"\ud800 {VISA}\x00bob@example.com \udfff"
    assert redactor.redact_text(text).text == "\ud800 411111******1111\x00b***@example.com \udfff"
    assert redactor.redact_json([text]).value == [redactor.redact_text(text).text]


def test_deep_nesting_does_not_hit_the_recursion_limit(redactor: Redactor) -> None:
    doc: object = VISA
    for _ in range(50_000):
        doc = [doc]
    result = redactor.redact_json(doc)
    assert result.findings[0].pointer == "/0" * 50_000


# --- configured JSON paths ------------------------------------------------------------


def test_path_rules_redact_whole_subtrees() -> None:
    redactor = compile_redactor(
        MaskingConfig(
            paths=(
                PathRule("$.psu.name"),
                PathRule("$.transactions[*].creditorName", category="counterparty"),
                PathRule("$['odd key'][1]"),
                PathRule("$.card.*"),
            )
        )
    )
    doc = {
        "psu": {"name": "Alice Schneider", "id": "psu-1"},
        "transactions": [{"creditorName": "Bob", "amount": "1.00"}, {"creditorName": None}],
        "odd key": ["a", {"deep": [1, 2.5, True, None, "s"]}],
        "card": {"holder": "Alice", "expiry": 1225},
    }
    result = redactor.redact_json(doc)
    assert result.value == {
        "psu": {"name": "***", "id": "psu-1"},
        "transactions": [{"creditorName": "***", "amount": "1.00"}, {"creditorName": None}],
        "odd key": ["a", {"deep": ["***", "***", "***", None, "***"]}],
        "card": {"holder": "***", "expiry": "***"},
    }
    assert [f.pointer for f in result.findings] == [
        "/psu/name",
        "/transactions/0/creditorName",
        "/transactions/1/creditorName",
        "/odd key/1",
        "/card/holder",
        "/card/expiry",
    ]
    assert result.findings[1].category == "counterparty"
    clear = redactor.redact_json(doc, allowed={"counterparty"})
    assert clear.value["transactions"][0]["creditorName"] == "Bob"
    assert clear.findings[1] == Finding("counterparty", "/transactions/0/creditorName", False)


def test_index_paths_do_not_match_string_members() -> None:
    redactor = compile_redactor(MaskingConfig(paths=(PathRule("$.a[0]"),)))
    assert redactor.redact_json({"a": {"0": "x"}}).value == {"a": {"0": "x"}}
    assert redactor.redact_json({"a": ["x"]}).value == {"a": ["***"]}


@pytest.mark.parametrize("path", ["", "a.b", "$.", "$..a", "$[?(@.a)]", "$[-1]", "$['x", "$.a b"])
def test_bad_paths_fail_at_compile_time(path: str) -> None:
    with pytest.raises(MaskingConfigError):
        compile_path(path)


def test_engines_agree_on_a_realistic_document() -> None:
    from .corpus import build_corpus

    doc = build_corpus(300).document
    a = compile_redactor(engine="re").redact_json(doc)
    b = compile_redactor(engine="re2").redact_json(doc)  # google-re2 is a dependency
    assert json.dumps(a.value) == json.dumps(b.value) and a.findings == b.findings


def test_production_engine_is_re2() -> None:
    """DESIGN.md: attacker-facing regexes run on google-re2; `re` is only a fallback."""
    assert DEFAULT_ENGINE == "re2"
