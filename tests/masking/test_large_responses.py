"""Correctness on large responses: 1 MB of Berlin Group JSON and 10,000 transactions.

Every planted PAN, IBAN, e-mail and phone number is masked; every IBAN the sandbox
renders in creditorAccount / debtorAccount is masked; nothing else changes — amounts,
dates, bookingDate, entryReference, transactionId, resourceIds in links and the planted
look-alikes survive byte for byte. (Speed: bench/bench_masking.py.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from finward.masking import Redactor, compile_redactor

from .corpus import Corpus, build_corpus, transactions_for_bytes

REMITTANCE = "remittanceInformationUnstructured"


@pytest.fixture(scope="module", params=["1MB", "10k"])
def corpus(request: pytest.FixtureRequest) -> Corpus:
    if request.param == "1MB":
        built = build_corpus(transactions_for_bytes(1_000_000))
        assert 0.9e6 < len(json.dumps(built.document)) < 1.1e6
        return built
    return build_corpus(10_000)


@pytest.fixture(scope="module")
def production_redactor() -> Redactor:
    return compile_redactor()


def _leaves(value: Any, pointer: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, child in value.items():
            out.update(_leaves(child, f"{pointer}/{key}"))
        return out
    if isinstance(value, list):
        out = {}
        for index, child in enumerate(value):
            out.update(_leaves(child, f"{pointer}/{index}"))
        return out
    return {pointer: value}


def test_large_response_is_masked_exactly(corpus: Corpus, production_redactor: Redactor) -> None:
    result = production_redactor.redact_json(corpus.document)
    before, after = _leaves(corpus.document), _leaves(result.value)
    assert before.keys() == after.keys()
    planted = {f"/transactions/booked/{i}/{REMITTANCE}" for i in corpus.sensitive}
    changed = {pointer for pointer in before if before[pointer] != after[pointer]}
    iban_fields = {p for p in before if p.endswith("/iban")}
    assert changed == planted | iban_fields
    for index, (category, value) in corpus.sensitive.items():
        text = after[f"/transactions/booked/{index}/{REMITTANCE}"]
        assert value not in text, (category, value)
        assert text.startswith("Refund to ") and text.endswith(", thank you")
    for index, text in corpus.lookalikes.items():
        assert after[f"/transactions/booked/{index}/{REMITTANCE}"] == text
    for pointer in iban_fields:
        assert after[pointer][:4] == before[pointer][:4]
        assert after[pointer][-4:] == before[pointer][-4:]
        assert set(after[pointer][4:-4]) == {"*"}
    serialised = json.dumps(result.value, ensure_ascii=False)
    assert all(value not in serialised for _, value in corpus.sensitive.values())
    found = {(f.pointer, str(f.category)) for f in result.findings}
    expected = {(p, "iban") for p in iban_fields} | {
        (f"/transactions/booked/{i}/{REMITTANCE}", category)
        for i, (category, _) in corpus.sensitive.items()
    }
    assert found == expected
    assert len(corpus.sensitive) >= 20 and len(corpus.lookalikes) >= 10
