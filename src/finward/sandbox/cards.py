"""Seeded credit card ledgers with monthly statements paid from the current account.

Purchases clear one to three days after the swipe (so the last days before the anchor
are pending). Each month's booked purchases form a statement that is repaid in full on
the 5th of the next month; the repayment is returned as a `Draft` so the current
account debits exactly the amount the card is credited.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from finward.sandbox import catalogue
from finward.sandbox.ledger import CODE_DIRECT_DEBIT, Draft, Party, Window, money, stable_id
from finward.sandbox.model import CardTransaction

REPAYMENT_DAY = 5
REPAYMENT_TEXT = "Repayment - thank you"
_FOREIGN_SHARE = 0.12  # share of purchases made while travelling


@dataclass(frozen=True, slots=True)
class _Swipe:
    when: dt.datetime
    lag: int
    amount: Decimal
    merchant: catalogue.Merchant
    city: str
    country: str
    terminal_id: str

    @property
    def booking(self) -> dt.date:
        return self.when.date() + dt.timedelta(days=self.lag)


@dataclass(frozen=True, slots=True)
class CardLedger:
    """A card account's entries, its opening balance, and the bills it sends out."""

    opening_balance: Decimal
    transactions: tuple[CardTransaction, ...]
    bills: tuple[Draft, ...]  # repayments, positive, as seen from the card account


def _swipe(rng: random.Random, day: dt.date, home: str, lag: int | None = None) -> _Swipe:
    country = home
    if rng.random() < _FOREIGN_SHARE:
        country = rng.choice([c for c in catalogue.CITIES if c != home])
    merchant = rng.choice(catalogue.MERCHANTS)
    moment = dt.datetime.combine(
        day, dt.time(rng.randint(7, 22), rng.randint(0, 59), rng.randint(0, 59)), tzinfo=dt.UTC
    )
    return _Swipe(
        when=moment,
        lag=rng.randint(1, 3) if lag is None else lag,
        amount=-money(rng, merchant.low, merchant.high),
        merchant=merchant,
        city=rng.choice(catalogue.CITIES[country]),
        country=country,
        terminal_id=f"T{rng.randint(0, 9_999_999):07d}",
    )


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def build_card_ledger(
    rng: random.Random,
    window: Window,
    profile: catalogue.PsuProfile,
    card_id: str,
    masked_pan: str,
    currency: str,
) -> CardLedger:
    swipes = [
        _swipe(rng, day, profile.country)
        for year, month in window.months()
        for _ in range(rng.randint(12, 16))
        if (day := window.random_day(rng, year, month))
    ]
    # One swipe the day before the anchor, so every card shows a pending entry.
    swipes.append(_swipe(rng, window.anchor - dt.timedelta(days=1), profile.country, lag=2))

    # The statement of the month before the window is what the card owes at its start.
    opening = -money(rng, 250, 900)
    first = window.start.replace(day=1) - dt.timedelta(days=1)
    statements: dict[tuple[int, int], Decimal] = {(first.year, first.month): -opening}
    for swipe in swipes:
        if swipe.booking < window.anchor:
            key = (swipe.booking.year, swipe.booking.month)
            statements[key] = statements.get(key, Decimal(0)) - swipe.amount
    bills = []
    for (year, month), due in sorted(statements.items()):
        if due and (when := window.on(*_next_month(year, month), REPAYMENT_DAY)):
            text = f"Card statement {year}-{month:02d} {masked_pan}"
            bills.append(Draft(when, due, Party(REPAYMENT_TEXT, None), text, CODE_DIRECT_DEBIT))
    return CardLedger(opening, _finalise(card_id, currency, window, swipes, bills), tuple(bills))


def _finalise(
    card_id: str, currency: str, window: Window, swipes: Sequence[_Swipe], bills: Sequence[Draft]
) -> tuple[CardTransaction, ...]:
    """Order by booking date and assign stable ids, as `ledger.finalise` does for accounts."""
    # A statement for month M is issued at the end of M: entries booked before the
    # anchor's month have been invoiced.
    statement_cut = window.anchor.replace(day=1)
    entries: list[tuple[dt.date, dt.datetime, int, _Swipe | Draft]] = [
        (s.booking, s.when, i, s) for i, s in enumerate(swipes)
    ]
    entries += [
        (b.initiated, dt.datetime.combine(b.initiated, dt.time(6), tzinfo=dt.UTC), -1, b)
        for b in bills
    ]
    result = []
    for seq, (booking, moment, _, entry) in enumerate(sorted(entries, key=lambda e: e[:3])):
        booked = booking < window.anchor
        swipe = entry if isinstance(entry, _Swipe) else None  # None: a repayment
        result.append(
            CardTransaction(
                card_transaction_id=stable_id(card_id, seq),
                transaction_date=moment.date(),
                acceptor_datetime=moment,
                booking_date=booking if booked else None,
                amount=entry.amount,
                currency=currency,
                merchant_name=swipe.merchant.name if swipe else REPAYMENT_TEXT,
                merchant_city=swipe.city if swipe else None,
                merchant_country=swipe.country if swipe else None,
                merchant_category_code=swipe.merchant.mcc if swipe else None,
                card_acceptor_id=(
                    stable_id("acceptor", swipe.merchant.name, swipe.city)[:15] if swipe else None
                ),
                terminal_id=swipe.terminal_id if swipe else None,
                invoiced=booked and booking < statement_cut,
            )
        )
    return tuple(result)
