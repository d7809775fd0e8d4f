"""Deterministic sandbox bank data: `build_bank(seed, anchor)`.

Same seed and anchor, same bank, byte for byte: every random draw comes from a
`random.Random` seeded with the seed and the PSU id (never the global generator, never
today's date), so one PSU's data does not shift when another PSU's generator changes.

Balances are derived from the ledgers, never drawn on their own:

- ``closingBooked``    = opening balance + every booked entry (as of the day before the anchor)
- ``expected``         = closingBooked + every pending entry
- ``interimAvailable`` = closingBooked + pending *debits* only (pending credits are not yet
  available to spend, pending debits are already reserved)
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from decimal import ROUND_CEILING, Decimal
from types import MappingProxyType

from finward.sandbox import catalogue
from finward.sandbox.cards import build_card_ledger
from finward.sandbox.household import (
    OwnAccounts,
    add_savings_interest,
    current_account_drafts,
    foreign_account_drafts,
)
from finward.sandbox.identifiers import make_iban, make_pan, make_resource_id, mask_pan
from finward.sandbox.ledger import Party, Window, finalise, money, months_before
from finward.sandbox.model import (
    Account,
    Balance,
    Bank,
    CardAccount,
    CardTransaction,
    Psu,
    Transaction,
)

__all__ = [
    "DEFAULT_ANCHOR",
    "DEFAULT_SEED",
    "HISTORY_MONTHS",
    "Account",
    "Balance",
    "Bank",
    "CardAccount",
    "CardTransaction",
    "Psu",
    "Transaction",
    "build_bank",
]

DEFAULT_SEED = 2026
DEFAULT_ANCHOR = dt.date(2026, 11, 1)
HISTORY_MONTHS = 18
SAVINGS_RATE = Decimal("0.0125")
# Lowest booked balance a current account reaches: the sandbox PSUs never go overdrawn,
# so an overdraft in a demo is a bug, not a coincidence.
CURRENT_ACCOUNT_FLOOR = Decimal(150)

_BRANCHES = MappingProxyType({b.code.country: b for b in catalogue.SANDBOX_BRANCHES})
_CURRENCY_COUNTRY = MappingProxyType({"GBP": "GB", "CHF": "CH"})


def build_bank(seed: int = DEFAULT_SEED, anchor: dt.date = DEFAULT_ANCHOR) -> Bank:
    """Build the whole sandbox bank: six PSUs, their accounts, cards and 18 months of history.

    `anchor` is the sandbox's "today": history ends the day before it, and entries that
    would book on or after it are pending.
    """
    window = Window(months_before(anchor, HISTORY_MONTHS), anchor)
    psus: dict[str, Psu] = {}
    accounts: dict[str, Account] = {}
    cards: dict[str, CardAccount] = {}
    for profile in catalogue.PSU_PROFILES:
        # A string seed is hashed with SHA-512 by `random`, so it is stable across runs
        # and Python processes (unlike `hash()` of a str).
        rng = random.Random(f"finward-sandbox:{seed}:{profile.psu_id}")
        psu_accounts, psu_cards = _build_psu(rng, window, profile)
        accounts.update((a.resource_id, a) for a in psu_accounts)
        cards.update((c.resource_id, c) for c in psu_cards)
        psus[profile.psu_id] = Psu(
            psu_id=profile.psu_id,
            name=profile.name,
            country=profile.country,
            account_ids=tuple(a.resource_id for a in psu_accounts),
            card_account_ids=tuple(c.resource_id for c in psu_cards),
        )
    return Bank(
        seed=seed,
        anchor=anchor,
        window_start=window.start,
        psus=MappingProxyType(psus),
        accounts=MappingProxyType(accounts),
        card_accounts=MappingProxyType(cards),
    )


def _build_psu(
    rng: random.Random, window: Window, profile: catalogue.PsuProfile
) -> tuple[list[Account], list[CardAccount]]:
    home = _BRANCHES[profile.country]
    current_id, current_iban = make_resource_id(rng), make_iban(rng, home.code)
    savings_id, savings_iban = make_resource_id(rng), make_iban(rng, home.code)
    own = OwnAccounts(
        holder=profile.name,
        current=Party(profile.name, current_iban),
        savings=Party(profile.name, savings_iban),
        card_servicer=Party("Finward Card Services", make_iban(rng, home.code)),
    )
    pan = make_pan(rng, profile.card_scheme)
    card_id, currency = make_resource_id(rng), "EUR"
    card_ledger = build_card_ledger(rng, window, profile, card_id, mask_pan(pan), currency)

    current_drafts, savings_drafts = current_account_drafts(
        rng, window, profile, own, card_ledger.bills
    )
    savings_opening = money(rng, 1500, 12000)
    add_savings_interest(window, savings_opening, savings_drafts, profile.name, SAVINGS_RATE)

    def account(
        resource_id: str,
        iban: str,
        bic: str,
        currency: str,
        name: str,
        product: str,
        cash_type: str,
        entries: Sequence[Transaction],
        opening: Decimal,
    ) -> Account:
        return Account(
            resource_id=resource_id,
            psu_id=profile.psu_id,
            owner_name=profile.name,
            iban=iban,
            bic=bic,
            currency=currency,
            name=name,
            product=product,
            cash_account_type=cash_type,
            opening_balance=opening,
            transactions=tuple(entries),
            balances=compute_balances(opening, entries, currency, window.anchor),
        )

    current = finalise(current_id, "EUR", window.anchor, current_drafts)
    savings = finalise(savings_id, "EUR", window.anchor, savings_drafts)
    accounts = [
        account(
            current_id,
            current_iban,
            home.bic,
            "EUR",
            "Main account",
            "Current Account Plus",
            "CACC",
            current,
            _opening(rng, current, CURRENT_ACCOUNT_FLOOR),
        ),
        account(
            savings_id,
            savings_iban,
            home.bic,
            "EUR",
            "Rainy day savings",
            "Instant Savings",
            "SVGS",
            savings,
            savings_opening,
        ),
    ]
    # About half the PSUs also hold a second-currency account (GBP or CHF).
    if rng.random() < 0.5:
        fx = profile.foreign_currency
        branch = _BRANCHES[_CURRENCY_COUNTRY[fx]]
        fx_id, fx_iban = make_resource_id(rng), make_iban(rng, branch.code)
        client_bank = catalogue.FOREIGN_COUNTERPARTY_BANKS[fx]
        drafts = foreign_account_drafts(rng, window, client_bank, branch.code.country)
        entries = finalise(fx_id, fx, window.anchor, drafts)
        accounts.append(
            account(
                fx_id,
                fx_iban,
                branch.bic,
                fx,
                f"{fx} account",
                "Multi-currency",
                "CACC",
                entries,
                _opening(rng, entries, Decimal(0)),
            )
        )

    card_opening = card_ledger.opening_balance
    card_balances = compute_balances(
        card_opening, card_ledger.transactions, currency, window.anchor
    )
    card = CardAccount(
        resource_id=card_id,
        psu_id=profile.psu_id,
        owner_name=profile.name,
        pan=pan,
        masked_pan=mask_pan(pan),
        scheme=profile.card_scheme,
        currency=currency,
        name=f"{profile.card_scheme.title()} credit card",
        product="Visa Classic" if profile.card_scheme == "visa" else "Mastercard Gold",
        credit_limit=_credit_limit(card_opening, card_ledger.transactions),
        opening_balance=card_opening,
        transactions=card_ledger.transactions,
        balances=card_balances,
    )
    return accounts, [card]


def _booked_low_point(entries: Sequence[Transaction] | Sequence[CardTransaction]) -> Decimal:
    """The lowest running booked balance relative to the opening balance."""
    running = low = Decimal(0)
    for entry in entries:  # already in booking order
        if entry.is_booked:
            running += entry.amount
            low = min(low, running)
    return low


def _opening(rng: random.Random, entries: Sequence[Transaction], floor: Decimal) -> Decimal:
    # Choose the opening balance so the booked balance never dips below `floor`: the
    # history then reads as a solvent customer rather than a random walk.
    needed = (floor - _booked_low_point(entries)).to_integral_value(ROUND_CEILING)
    return max(needed, Decimal(0)) + money(rng, 200, 2500)


def _credit_limit(opening: Decimal, entries: Sequence[CardTransaction]) -> Decimal:
    """The smallest round limit (a multiple of 1000, at least 2000) the history respects."""
    deepest = -(opening + _booked_low_point(entries))
    return max(Decimal(2000), (deepest / 1000).to_integral_value(ROUND_CEILING) * 1000)


def compute_balances(
    opening: Decimal,
    entries: Sequence[Transaction] | Sequence[CardTransaction],
    currency: str,
    anchor: dt.date,
) -> tuple[Balance, ...]:
    """closingBooked, expected and interimAvailable, as documented in the module."""
    booked = [e for e in entries if e.is_booked]
    pending = [e.amount for e in entries if not e.is_booked]
    closing = opening + sum((e.amount for e in booked), Decimal(0))
    last = booked[-1] if booked else None
    last_id = (
        last.entry_reference
        if isinstance(last, Transaction)
        else last.card_transaction_id
        if last
        else None
    )
    return (
        Balance("closingBooked", closing, currency, anchor - dt.timedelta(days=1), last_id),
        Balance("expected", closing + sum(pending, Decimal(0)), currency, anchor),
        Balance(
            "interimAvailable",
            closing + sum((a for a in pending if a < 0), Decimal(0)),
            currency,
            anchor,
        ),
    )
