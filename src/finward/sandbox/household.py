"""Seeded payment-account ledgers: 18 months of plausible household banking.

A current account gets salary, rent, direct debits, subscriptions, card payments, cash
withdrawals, transfers with friends, a monthly savings transfer, round-ups and the
credit card bill. Transfers between a PSU's own accounts are generated once and
mirrored on both sides, so the ledgers of one PSU agree with each other.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from finward.sandbox import catalogue
from finward.sandbox.identifiers import BankCode, make_creditor_id, make_hex_id, make_iban
from finward.sandbox.ledger import (
    CENT,
    CODE_CARD_PAYMENT,
    CODE_CASH_WITHDRAWAL,
    CODE_DIRECT_DEBIT,
    CODE_INTEREST,
    CODE_INTERNAL,
    CODE_SCT_IN,
    CODE_SCT_OUT,
    CODE_STANDING_ORDER,
    Draft,
    Party,
    Window,
    money,
)


@dataclass(frozen=True, slots=True)
class OwnAccounts:
    """The PSU's own accounts that the current account transfers to, as parties."""

    holder: str
    current: Party
    savings: Party
    card_servicer: Party


@dataclass(frozen=True, slots=True)
class DirectDebit:
    """A SEPA direct debit mandate: creditor, mandate id, creditor id, amount range, day."""

    party: Party
    mandate_id: str
    creditor_id: str
    low: int
    high: int
    day: int


@dataclass(frozen=True, slots=True)
class HouseholdPlan:
    """The fixed parts of a PSU's financial life, drawn once per seed."""

    employer: Party
    landlord: Party
    salary: Decimal
    rent: Decimal
    monthly_saving: Decimal
    direct_debits: tuple[DirectDebit, ...]
    subscriptions: tuple[tuple[str, str], ...]
    friends: tuple[Party, ...]

    @classmethod
    def draw(cls, rng: random.Random, profile: catalogue.PsuProfile) -> HouseholdPlan:
        debits = []
        for name, low, high in rng.sample(catalogue.UTILITIES, 3):
            bank = rng.choice(catalogue.COUNTERPARTY_BANKS)
            party = Party(name, make_iban(rng, bank))
            mandate = f"MNDT-{make_hex_id(rng, 10).upper()}"
            creditor = make_creditor_id(rng, bank.country)
            debits.append(DirectDebit(party, mandate, creditor, low, high, rng.randint(3, 20)))
        return cls(
            employer=_counterparty(rng, profile.employer),
            landlord=_counterparty(rng, rng.choice(catalogue.LANDLORDS)),
            salary=money(rng, 2600, 5200),
            rent=money(rng, 650, 1500).quantize(Decimal(1)),
            monthly_saving=Decimal(rng.choice((100, 150, 200, 250, 300, 400))),
            direct_debits=tuple(debits),
            subscriptions=tuple(rng.sample(catalogue.SUBSCRIPTIONS, 2)),
            friends=tuple(
                _counterparty(
                    rng, f"{rng.choice(catalogue.FIRST_NAMES)} {rng.choice(catalogue.LAST_NAMES)}"
                )
                for _ in range(5)
            ),
        )

    def fixed_entries(
        self, rng: random.Random, window: Window, year: int, month: int
    ) -> Iterator[Draft]:
        """Salary, rent, direct debits and subscriptions for one month."""
        period = f"{year}-{month:02d}"
        if when := window.on(year, month, 27):
            # A raise after the first year and a 13th salary in December, as payslips do.
            elapsed = (year - window.start.year) * 12 + month - window.start.month
            pay = (
                self.salary * (Decimal("1.03") if elapsed >= 12 else 1) * (2 if month == 12 else 1)
            )
            text = f"Salary {period} {self.employer.name}"
            yield Draft(
                when,
                pay.quantize(CENT),
                self.employer,
                text,
                CODE_SCT_IN,
                end_to_end_id=f"SAL{make_hex_id(rng, 16)}",
            )
        if when := window.on(year, month, 1):
            yield Draft(
                when,
                -self.rent,
                self.landlord,
                f"Rent {period}",
                CODE_STANDING_ORDER,
                end_to_end_id=f"STO{make_hex_id(rng, 16)}",
            )
        for debit in self.direct_debits:
            if when := window.on(year, month, debit.day):
                text = f"Invoice {period} {debit.party.name}"
                yield Draft(
                    when,
                    -money(rng, debit.low, debit.high),
                    debit.party,
                    text,
                    CODE_DIRECT_DEBIT,
                    mandate_id=debit.mandate_id,
                    creditor_id=debit.creditor_id,
                )
        for name, price in self.subscriptions:
            # Each service bills on its own fixed day, as real subscriptions do.
            if when := window.on(year, month, 2 + len(name) % 9):
                text = f"{name} subscription {period}"
                yield Draft(when, -Decimal(price), Party(name, None), text, CODE_CARD_PAYMENT, 1)

    def variable_entries(
        self, rng: random.Random, window: Window, year: int, month: int, cities: Sequence[str]
    ) -> Iterator[Draft]:
        """Cash withdrawals and transfers with friends (card payments come separately)."""
        for _ in range(rng.randint(0, 2)):
            if when := window.random_day(rng, year, month):
                city = rng.choice(cities)
                amount = -Decimal(rng.randint(2, 20) * 10)
                yield Draft(
                    when,
                    amount,
                    Party(f"ATM {city}", None),
                    f"Cash withdrawal {city}",
                    CODE_CASH_WITHDRAWAL,
                    rng.randint(0, 1),
                )
        for sign, code in ((1, CODE_SCT_IN), (-1, CODE_SCT_OUT)):
            for _ in range(rng.randint(0, 2)):
                if when := window.random_day(rng, year, month):
                    yield Draft(
                        when,
                        sign * money(rng, 5, 120),
                        rng.choice(self.friends),
                        rng.choice(catalogue.P2P_REASONS),
                        code,
                        end_to_end_id=f"P2P{make_hex_id(rng, 16)}",
                    )


def _counterparty(rng: random.Random, name: str) -> Party:
    return Party(name, make_iban(rng, rng.choice(catalogue.COUNTERPARTY_BANKS)))


def card_payments(
    rng: random.Random, window: Window, year: int, month: int, cities: Sequence[str]
) -> Iterator[Draft]:
    """13-18 card payments a month: enough for 200+ entries in 18 months on any account."""
    for _ in range(rng.randint(13, 18)):
        if when := window.random_day(rng, year, month):
            merchant = rng.choice(catalogue.MERCHANTS)
            text = f"Card payment {merchant.name} {rng.choice(cities)}"
            amount = -money(rng, merchant.low, merchant.high)
            yield Draft(
                when, amount, Party(merchant.name, None), text, CODE_CARD_PAYMENT, rng.randint(0, 2)
            )


def last_day_pending(window: Window, cities: Sequence[str]) -> Draft:
    """A card payment made the day before the anchor, still pending at the anchor.

    Every spending account shows at least one pending entry, so `bookingStatus=pending`
    is never trivially empty in the demo.
    """
    when = window.anchor - dt.timedelta(days=1)
    text = f"Card payment Starbucks {cities[0]}"
    return Draft(when, Decimal("-23.40"), Party("Starbucks", None), text, CODE_CARD_PAYMENT, 2)


def _round_up(payment: Draft, savings: Party) -> Draft | None:
    cents = (-payment.amount).to_integral_value(ROUND_CEILING) + payment.amount
    if not cents:
        return None
    # Same initiation date and lag: the round-up books together with the payment it rounds.
    text = f"Round-up {payment.party.name}"
    return Draft(payment.initiated, -cents, savings, text, CODE_INTERNAL, payment.lag)


def current_account_drafts(
    rng: random.Random,
    window: Window,
    profile: catalogue.PsuProfile,
    own: OwnAccounts,
    card_bills: Sequence[Draft],
) -> tuple[list[Draft], list[Draft]]:
    """Drafts for the current account, and their mirror images for the savings account.

    `card_bills` are the credit card repayments as seen from the card (positive); the
    current account pays them.
    """
    plan = HouseholdPlan.draw(rng, profile)
    cities = catalogue.CITIES[profile.country]
    drafts: list[Draft] = []
    transfers: list[Draft] = []  # current -> savings, as seen from the current account
    for year, month in window.months():
        drafts.extend(plan.fixed_entries(rng, window, year, month))
        for payment in card_payments(rng, window, year, month, cities):
            drafts.append(payment)
            if (roundup := _round_up(payment, own.savings)) is not None:
                transfers.append(roundup)
        drafts.extend(plan.variable_entries(rng, window, year, month, cities))
        if when := window.on(year, month, 28):
            transfers.append(
                Draft(
                    when,
                    -plan.monthly_saving,
                    own.savings,
                    f"Monthly savings {year}-{month:02d}",
                    CODE_SCT_OUT,
                    end_to_end_id=f"SAV{make_hex_id(rng, 16)}",
                )
            )
    drafts.extend(
        dataclasses.replace(b, amount=-b.amount, party=own.card_servicer, lag=0) for b in card_bills
    )
    pending = last_day_pending(window, cities)
    drafts.append(pending)
    if (roundup := _round_up(pending, own.savings)) is not None:
        transfers.append(roundup)
    drafts.extend(transfers)
    mirrored = [dataclasses.replace(t, amount=-t.amount, party=own.current) for t in transfers]
    return drafts, mirrored


def add_savings_interest(
    window: Window, opening: Decimal, drafts: list[Draft], holder: str, rate: Decimal
) -> None:
    """Credit quarterly interest on the booked balance, so interest follows the ledger."""
    for year, month in window.months():
        if month % 3 or not (when := window.on(year, month, 31)):
            continue
        balance = opening + sum((d.amount for d in drafts if d.booking <= when), Decimal(0))
        interest = (balance * rate / 4).quantize(CENT)
        if interest > 0:
            text = f"Interest Q{month // 3} {year}"
            drafts.append(Draft(when, interest, Party(holder, None), text, CODE_INTEREST))


def foreign_account_drafts(
    rng: random.Random, window: Window, client_bank: BankCode, city_country: str
) -> list[Draft]:
    """A second-currency account: freelance income in that currency, local spending."""
    cities = catalogue.CITIES[city_country]
    clients = [Party(f"{name} Ltd", make_iban(rng, client_bank)) for name in ("Harbour", "Alpine")]
    drafts: list[Draft] = []
    for year, month in window.months():
        for client in clients:
            if when := window.random_day(rng, year, month):
                text = f"Invoice {year}{month:02d}-{client.name[:3].upper()}"
                drafts.append(
                    Draft(
                        when,
                        money(rng, 400, 1400),
                        client,
                        text,
                        CODE_SCT_IN,
                        end_to_end_id=f"INV{make_hex_id(rng, 16)}",
                    )
                )
        drafts.extend(card_payments(rng, window, year, month, cities))
    drafts.append(last_day_pending(window, cities))
    return drafts
