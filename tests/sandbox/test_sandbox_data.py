"""The generated bank: deterministic, well-formed identifiers, full history, sane balances."""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
import os
import re
import subprocess
import sys
from collections import Counter
from decimal import Decimal

import pytest

from finward.sandbox.data import Balance, Bank, build_bank
from finward.sandbox.identifiers import IBAN_LENGTHS

ANCHOR = dt.date(2026, 11, 1)

# BBAN shapes per country (ECBS / SWIFT IBAN registry), checked on every IBAN generated.
BBAN_SHAPES = {
    "DE": r"\d{18}",
    "FR": r"\d{10}[0-9A-Z]{11}\d{2}",
    "NL": r"[A-Z]{4}\d{10}",
    "ES": r"\d{20}",
    "IT": r"[A-Z]\d{10}[0-9A-Z]{12}",
    "BE": r"\d{12}",
    "GB": r"[A-Z]{4}\d{14}",
    "CH": r"\d{5}[0-9A-Z]{12}",
    "AT": r"\d{16}",
}


def mod97_ok(iban: str) -> bool:
    return int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def fingerprint(bank: Bank) -> str:
    """A digest of everything generated, independent of object identity."""
    digest = hashlib.sha256()
    for account in bank.accounts.values():
        digest.update(repr(account).encode())
    for card in bank.card_accounts.values():
        digest.update(repr(card).encode())
    return digest.hexdigest()


def all_ibans(bank: Bank) -> list[str]:
    ibans = [a.iban for a in bank.accounts.values()]
    ibans += [
        t.counterparty_iban
        for a in bank.accounts.values()
        for t in a.transactions
        if t.counterparty_iban
    ]
    return ibans


def test_same_seed_builds_the_same_bank(bank: Bank) -> None:
    again = build_bank(2026, ANCHOR)
    assert again == bank
    assert fingerprint(again) == fingerprint(bank)


def test_same_seed_builds_the_same_bank_in_another_process_with_another_hash_seed(
    bank: Bank,
) -> None:
    # String hashing is randomised per process; data must not depend on set/dict order
    # of hashed strings, nor on anything else process-specific.
    script = "\n".join(
        [
            "import hashlib",
            "from finward.sandbox.data import Bank, build_bank",
            inspect.getsource(fingerprint),
            "print(fingerprint(build_bank()))",
        ]
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == fingerprint(bank)


def test_another_seed_builds_another_bank_with_the_same_psus(bank: Bank) -> None:
    other = build_bank(7, ANCHOR)
    assert list(other.psus) == list(bank.psus)
    assert not set(other.accounts) & set(bank.accounts)
    assert not {a.iban for a in other.accounts.values()} & {a.iban for a in bank.accounts.values()}
    assert not {c.pan for c in other.card_accounts.values()} & {
        c.pan for c in bank.card_accounts.values()
    }


def test_data_depends_on_the_anchor_not_on_today() -> None:
    anchor = dt.date(2031, 3, 17)
    later = build_bank(2026, anchor)
    assert later.window_start == dt.date(2029, 9, 17)
    for account in later.accounts.values():
        dates = [t.report_date for t in account.transactions]
        assert min(dates) >= later.window_start and max(dates) < anchor
    for card in later.card_accounts.values():
        assert max(t.report_date for t in card.transactions) < anchor


def test_six_psus_each_with_two_to_four_accounts_in_several_countries(bank: Bank) -> None:
    assert len(bank.psus) == 6
    assert all(re.fullmatch(r"psu-[a-z]+", p) for p in bank.psus)
    for psu in bank.psus.values():
        assert 2 <= len(psu.account_ids) + len(psu.card_account_ids) <= 4
        assert all(bank.accounts[a].psu_id == psu.psu_id for a in psu.account_ids)
    countries = {a.iban[:2] for a in bank.accounts.values()}
    assert {"DE", "FR", "NL", "ES", "IT", "BE"} <= countries
    assert {a.currency for a in bank.accounts.values()} >= {"EUR"}


def test_account_ids_are_opaque_and_unique(bank: Bank) -> None:
    ids = list(bank.accounts) + list(bank.card_accounts)
    assert len(set(ids)) == len(ids)
    assert all(
        re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i)
        for i in ids
    )


def test_every_iban_passes_mod97_with_the_country_length_and_bban_shape(bank: Bank) -> None:
    ibans = all_ibans(bank)
    assert len(ibans) > 1000
    for iban in ibans:
        country = iban[:2]
        assert mod97_ok(iban), iban
        assert len(iban) == IBAN_LENGTHS[country], iban
        assert re.fullmatch(BBAN_SHAPES[country], iban[4:]), iban


def test_every_pan_passes_luhn_and_is_masked_bg_style(bank: Bank) -> None:
    for card in bank.card_accounts.values():
        assert luhn_ok(card.pan), card.pan
        assert (
            card.pan[0] == "4" or 51 <= int(card.pan[:2]) <= 55 or 2221 <= int(card.pan[:4]) <= 2720
        )
        assert card.masked_pan == card.pan[:6] + "xxxxxx" + card.pan[-4:]
    assert {c.scheme for c in bank.card_accounts.values()} == {"visa", "mastercard"}


def test_each_account_has_200_plus_entries_over_18_months_booked_and_pending(bank: Bank) -> None:
    for account in bank.accounts.values():
        entries = account.transactions
        assert len(entries) >= 200, account.name
        dates = [t.report_date for t in entries]
        assert min(dates) < bank.window_start + dt.timedelta(days=10)
        assert max(dates) < ANCHOR and max(dates) >= ANCHOR - dt.timedelta(days=3)
        assert bank.window_start == dt.date(2025, 5, 1)
        assert any(t.is_booked for t in entries) and any(not t.is_booked for t in entries)
        assert len({t.transaction_id for t in entries}) == len(entries)
        assert all(t.currency == account.currency for t in entries)
    for card in bank.card_accounts.values():
        assert len(card.transactions) >= 200
        assert any(not t.is_booked for t in card.transactions)
        assert len({t.card_transaction_id for t in card.transactions}) == len(card.transactions)


def test_pending_entries_have_no_booking_date_and_booked_ones_book_before_the_anchor(
    bank: Bank,
) -> None:
    for account in bank.accounts.values():
        for t in account.transactions:
            if t.is_booked:
                assert t.booking_date is not None and t.booking_date < ANCHOR
                assert t.value_date == t.booking_date
            else:
                assert t.value_date >= ANCHOR - dt.timedelta(days=3)


def balances_of(balances: tuple[Balance, ...]) -> dict[str, Decimal]:
    return {b.balance_type: b.amount for b in balances}


def test_balances_follow_from_opening_balance_and_ledger(bank: Bank) -> None:
    ledgers: list[tuple[Decimal, list[tuple[Decimal, bool]], tuple[Balance, ...]]] = [
        (a.opening_balance, [(t.amount, t.is_booked) for t in a.transactions], a.balances)
        for a in bank.accounts.values()
    ]
    ledgers += [
        (c.opening_balance, [(t.amount, t.is_booked) for t in c.transactions], c.balances)
        for c in bank.card_accounts.values()
    ]
    for opening, entries, balances in ledgers:
        amounts = balances_of(balances)
        booked = sum((amount for amount, is_booked in entries if is_booked), Decimal(0))
        pending = [amount for amount, is_booked in entries if not is_booked]
        assert amounts["closingBooked"] == opening + booked
        assert amounts["expected"] == amounts["closingBooked"] + sum(pending, Decimal(0))
        debits = sum((a for a in pending if a < 0), Decimal(0))
        assert amounts["interimAvailable"] == amounts["closingBooked"] + debits
        assert all(a == a.quantize(Decimal("0.01")) for a in amounts.values())


def test_payment_accounts_never_go_overdrawn_and_cards_stay_within_their_limit(
    bank: Bank,
) -> None:
    for account in bank.accounts.values():
        running = account.opening_balance
        for t in account.transactions:
            running += t.amount if t.is_booked else 0
            assert running >= 0, (account.name, t)
    for card in bank.card_accounts.values():
        running = card.opening_balance
        for ct in card.transactions:
            running += ct.amount if ct.is_booked else 0
            assert -card.credit_limit <= running <= 0


def test_transfers_between_own_accounts_appear_on_both_sides(bank: Bank) -> None:
    for psu in bank.psus.values():
        current, savings = (bank.accounts[a] for a in psu.account_ids[:2])
        assert (current.cash_account_type, savings.cash_account_type) == ("CACC", "SVGS")
        to_savings = Counter(
            (t.booking_date, -t.amount)
            for t in current.transactions
            if t.counterparty_iban == savings.iban
        )
        from_current = Counter(
            (t.booking_date, t.amount)
            for t in savings.transactions
            if t.counterparty_iban == current.iban
        )
        assert to_savings == from_current and len(to_savings) > 200
        card = bank.card_accounts[psu.card_account_ids[0]]
        repaid = sorted(ct.amount for ct in card.transactions if ct.amount > 0)
        billed = sorted(
            -t.amount for t in current.transactions if t.remittance.startswith("Card statement")
        )
        assert repaid == billed and len(repaid) >= 17


@pytest.mark.parametrize("seed", [0, 1, 99])
def test_other_seeds_also_meet_the_volume_and_identifier_rules(seed: int) -> None:
    other = build_bank(seed)
    for account in other.accounts.values():
        assert len(account.transactions) >= 200
    assert all(mod97_ok(i) for i in all_ibans(other))
    assert all(luhn_ok(c.pan) for c in other.card_accounts.values())
