"""Ledger primitives: the reporting window, draft entries, and their finalisation.

Generators (`household.py`, `cards.py`) produce `Draft`s; `finalise` turns them into
`Transaction`s with stable ids. An entry whose booking date would fall on or after the
anchor is pending, which is how a real ledger looks at any instant.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from finward.sandbox.model import Transaction

CENT = Decimal("0.01")

# ISO 20022 bank transaction codes (domain-family-subfamily) used by the generator.
CODE_SCT_IN = "PMNT-RCDT-ESCT"
CODE_SCT_OUT = "PMNT-ICDT-ESCT"
CODE_STANDING_ORDER = "PMNT-ICDT-STDO"
CODE_DIRECT_DEBIT = "PMNT-IDDT-ESDD"
CODE_CARD_PAYMENT = "PMNT-CCRD-POSD"
CODE_CASH_WITHDRAWAL = "PMNT-CCRD-CWDL"
CODE_INTERNAL = "PMNT-ICDT-BOOK"
CODE_INTEREST = "PMNT-MCOP-INTR"


@dataclass(frozen=True, slots=True)
class Window:
    """The reporting window: `start` inclusive, `anchor` exclusive."""

    start: dt.date
    anchor: dt.date

    def months(self) -> Iterator[tuple[int, int]]:
        year, month = self.start.year, self.start.month
        while (year, month) <= (self.anchor.year, self.anchor.month):
            yield year, month
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def on(self, year: int, month: int, day: int) -> dt.date | None:
        """The day (clamped to the month's length), or None outside the window."""
        when = dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))
        return when if self.start <= when < self.anchor else None

    def random_day(self, rng: random.Random, year: int, month: int) -> dt.date | None:
        return self.on(year, month, rng.randint(1, 31))


def months_before(anchor: dt.date, months: int) -> dt.date:
    """`anchor` moved back by whole calendar months (day clamped to the month)."""
    index = anchor.year * 12 + anchor.month - 1 - months
    year, month = divmod(index, 12)
    return dt.date(year, month + 1, min(anchor.day, calendar.monthrange(year, month + 1)[1]))


@dataclass(frozen=True, slots=True)
class Party:
    """A counterparty as shown on a statement line."""

    name: str
    iban: str | None


@dataclass(frozen=True, slots=True)
class Draft:
    """A ledger entry before ids and booking status are assigned."""

    initiated: dt.date
    amount: Decimal
    party: Party
    remittance: str
    code: str
    lag: int = 0  # days between initiation and booking (card clearing takes 0-2)
    end_to_end_id: str | None = None
    mandate_id: str | None = None
    creditor_id: str | None = None

    @property
    def booking(self) -> dt.date:
        return self.initiated + dt.timedelta(days=self.lag)


def money(rng: random.Random, low: float, high: float) -> Decimal:
    """A uniformly drawn amount with cents, between `low` and `high` major units."""
    return Decimal(rng.randint(round(low * 100), round(high * 100))).scaleb(-2)


def stable_id(*parts: object) -> str:
    # Hashed from the account id and the entry's position instead of drawn from the rng:
    # drawing ids would shift every later random choice of the generator.
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=10).hexdigest()


def finalise(
    account_id: str, currency: str, anchor: dt.date, drafts: Sequence[Draft]
) -> tuple[Transaction, ...]:
    """Sort by booking date, assign stable ids, and mark not-yet-booked entries pending."""
    ordered = sorted(enumerate(drafts), key=lambda p: (p[1].booking, p[1].initiated, p[0]))
    result = []
    for seq, (_, draft) in enumerate(ordered):
        booked = draft.booking < anchor
        result.append(
            Transaction(
                transaction_id=stable_id(account_id, seq),
                entry_reference=f"{draft.initiated:%Y%m%d}{seq:06d}",
                booking_date=draft.booking if booked else None,
                value_date=draft.booking if booked else draft.initiated,
                amount=draft.amount,
                currency=currency,
                counterparty_name=draft.party.name,
                counterparty_iban=draft.party.iban,
                remittance=draft.remittance,
                bank_transaction_code=draft.code,
                end_to_end_id=draft.end_to_end_id,
                mandate_id=draft.mandate_id,
                creditor_id=draft.creditor_id,
            )
        )
    return tuple(result)
