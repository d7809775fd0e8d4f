"""A realistic large response for the masking tests and benchmark.

Berlin Group account reports rendered by the sandbox bank (`render_transaction`), cycled
to the wanted size, with sensitive values planted in some remittance texts and
legitimate look-alikes (Luhn-failing card-length numbers, timestamps, dates, amounts,
references) planted in others. The test asserts every planted sensitive value is masked
and every look-alike survives byte for byte.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

from finward.sandbox.data import build_bank
from finward.sandbox.identifiers import compute_luhn_digit
from finward.sandbox.views import render_transaction

PLANT_EVERY = 41  # one transaction in 41 carries a planted value


@dataclass
class Corpus:
    document: dict[str, Any]
    transactions: list[dict[str, Any]]
    sensitive: dict[int, tuple[str, str]] = field(default_factory=dict)  # index -> (cat, value)
    lookalikes: dict[int, str] = field(default_factory=dict)  # index -> remittance text


def _pan(rng: random.Random, prefix: str, length: int = 16) -> str:
    partial = prefix + "".join(rng.choice("0123456789") for _ in range(length - 1 - len(prefix)))
    return partial + compute_luhn_digit(partial)


def _not_luhn(pan: str) -> str:
    return pan[:-1] + str((int(pan[-1]) + 1) % 10)


def _spaced(value: str, sep: str = " ") -> str:
    return sep.join(value[i : i + 4] for i in range(0, len(value), 4))


SENSITIVE_MAKERS = (
    ("pan", lambda rng: _pan(rng, "4")),
    ("pan", lambda rng: _spaced(_pan(rng, "5"))),
    ("pan", lambda rng: _spaced(_pan(rng, "2221"), "-")),
    ("pan", lambda rng: _pan(rng, "37", 15)),
    ("pan", lambda rng: _pan(rng, "6011", 19)),
    ("iban", lambda rng: "DE89370400440532013000"),
    ("iban", lambda rng: "GB29 NWBK 6016 1331 9268 19"),
    ("iban", lambda rng: "FR1420041010050500013M02606"),
    ("iban", lambda rng: "NL91ABNA0417164300"),
    ("email", lambda rng: f"jan.{rng.randint(1, 999)}+bills@example.org"),
    ("email", lambda rng: "jürgen@bücher.de"),
    ("phone", lambda rng: f"+49 30 {rng.randint(1000000, 9999999)}"),
    ("phone", lambda rng: "+44 20 7946 0958"),
    ("phone", lambda rng: "020 7946 0958"),
)

LOOKALIKE_MAKERS = (
    lambda rng: f"Order {_not_luhn(_pan(rng, '4'))}",  # card length, fails Luhn
    lambda rng: f"Ref {rng.randint(10**12, 2 * 10**12 - 1)}",  # 13-digit epoch ms
    lambda rng: f"Invoice 2025{rng.randint(10**9, 10**10 - 1)} due 2025-11-30",
    lambda rng: "Contract 12345678901234567890 amount 1234567.89 EUR",  # 20 digits
    lambda rng: "Payment of 4,111.11 EUR on 01.02.2025 10:30+01:00",
    lambda rng: "Ticket 2024-000123-45 Terminal 1234 5678",
    lambda rng: f"Tax id DE{rng.randint(10**8, 10**9 - 1)} customer no. 0042 7781",
    lambda rng: "Membership 2025/26, see www.example.com",
)


def build_corpus(transactions: int, *, seed: int = 7) -> Corpus:
    """`transactions` BG transactionDetails in one account report, planted as described."""
    bank = build_bank()
    rendered = [
        render_transaction(account, tx)
        for account in bank.accounts.values()
        for tx in account.transactions
    ]
    rng = random.Random(seed)
    chosen = [copy.deepcopy(rendered[i % len(rendered)]) for i in range(transactions)]
    corpus = Corpus({}, chosen)
    for index in range(0, transactions, PLANT_EVERY):
        tx = chosen[index]
        if (index // PLANT_EVERY) % 3 == 2:
            text = rng.choice(LOOKALIKE_MAKERS)(rng)
            tx["remittanceInformationUnstructured"] = text
            corpus.lookalikes[index] = text
        else:
            category, make = rng.choice(SENSITIVE_MAKERS)
            value = make(rng)
            tx["remittanceInformationUnstructured"] = f"Refund to {value}, thank you"
            corpus.sensitive[index] = (category, value)
    account = next(iter(bank.accounts.values()))
    corpus.document = {
        "account": {"iban": account.iban, "currency": "EUR"},
        "transactions": {
            "booked": chosen,
            "_links": {"account": {"href": f"/v1/accounts/{account.resource_id}"}},
        },
    }
    return corpus


def transactions_for_bytes(target: int) -> int:
    """How many sandbox transactions make a document of about `target` bytes."""
    import json

    sample = build_corpus(200)
    per_tx = len(json.dumps(sample.document)) / 200
    return max(1, round(target / per_tx))
