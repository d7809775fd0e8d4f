"""The sandbox bank's data model: immutable records built once by `build_bank`.

Amounts are `Decimal` with two places, signed from the account holder's view
(debits negative), as Berlin Group transaction amounts are.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

BalanceType = Literal["closingBooked", "expected", "interimAvailable"]


@dataclass(frozen=True, slots=True)
class Transaction:
    """One entry on a payment account."""

    transaction_id: str
    entry_reference: str
    booking_date: dt.date | None  # None while pending
    value_date: dt.date
    amount: Decimal
    currency: str
    counterparty_name: str
    counterparty_iban: str | None  # None for card payments and cash withdrawals
    remittance: str
    bank_transaction_code: str  # ISO 20022 domain-family-subfamily, e.g. PMNT-RCDT-ESCT
    end_to_end_id: str | None = None
    mandate_id: str | None = None
    creditor_id: str | None = None

    @property
    def is_booked(self) -> bool:
        return self.booking_date is not None

    @property
    def report_date(self) -> dt.date:
        """The date `dateFrom`/`dateTo` filter on: booking date, else value date."""
        return self.booking_date or self.value_date


@dataclass(frozen=True, slots=True)
class CardTransaction:
    """One entry on a card account (BG `cardTransaction`)."""

    card_transaction_id: str
    transaction_date: dt.date
    acceptor_datetime: dt.datetime
    booking_date: dt.date | None  # None while pending (authorised, not yet cleared)
    amount: Decimal
    currency: str
    merchant_name: str  # for repayments, the text shown on the statement line
    merchant_city: str | None  # None for repayments, which have no card acceptor
    merchant_country: str | None
    merchant_category_code: str | None
    card_acceptor_id: str | None
    terminal_id: str | None
    invoiced: bool

    @property
    def is_booked(self) -> bool:
        return self.booking_date is not None

    @property
    def report_date(self) -> dt.date:
        return self.booking_date or self.transaction_date


@dataclass(frozen=True, slots=True)
class Balance:
    """A BG balance element; derived from the ledger, never stored independently."""

    balance_type: BalanceType
    amount: Decimal
    currency: str
    reference_date: dt.date
    last_committed_transaction: str | None = None
    credit_limit_included: bool = False


@dataclass(frozen=True, slots=True)
class Account:
    """A payment account (BG `accountDetails`) with its whole ledger."""

    resource_id: str
    psu_id: str
    owner_name: str
    iban: str
    bic: str
    currency: str
    name: str
    product: str
    cash_account_type: str  # ISO 20022 ExternalCashAccountType1Code: CACC, SVGS
    opening_balance: Decimal  # at the start of the 18-month window
    transactions: tuple[Transaction, ...]  # oldest first
    balances: tuple[Balance, ...]

    def find_transaction(self, transaction_id: str) -> Transaction | None:
        return next((t for t in self.transactions if t.transaction_id == transaction_id), None)


@dataclass(frozen=True, slots=True)
class CardAccount:
    """A credit card account (BG `cardAccountDetails`).

    The full PAN is kept on purpose: masking it on the way out is the gateway's job.
    """

    resource_id: str
    psu_id: str
    owner_name: str
    pan: str
    masked_pan: str
    scheme: str
    currency: str
    name: str
    product: str
    credit_limit: Decimal
    opening_balance: Decimal
    transactions: tuple[CardTransaction, ...]  # oldest first
    balances: tuple[Balance, ...]


@dataclass(frozen=True, slots=True)
class Psu:
    """A payment service user (bank customer) and the ids of what they own."""

    psu_id: str
    name: str
    country: str
    account_ids: tuple[str, ...]
    card_account_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Bank:
    """The whole sandbox bank. Read-only: payments live on the app, not here."""

    seed: int
    anchor: dt.date
    window_start: dt.date
    psus: Mapping[str, Psu]
    accounts: Mapping[str, Account]
    card_accounts: Mapping[str, CardAccount]

    def accounts_of(self, psu_id: str) -> list[Account]:
        psu = self.psus.get(psu_id)
        return [self.accounts[a] for a in psu.account_ids] if psu else []

    def card_accounts_of(self, psu_id: str) -> list[CardAccount]:
        psu = self.psus.get(psu_id)
        return [self.card_accounts[a] for a in psu.card_account_ids] if psu else []

    def find_account(self, psu_id: str, account_id: str) -> Account | None:
        """The account if it exists *and* belongs to `psu_id` (object-level scoping)."""
        account = self.accounts.get(account_id)
        return account if account is not None and account.psu_id == psu_id else None

    def find_card_account(self, psu_id: str, account_id: str) -> CardAccount | None:
        card = self.card_accounts.get(account_id)
        return card if card is not None and card.psu_id == psu_id else None

    def find_account_by_iban(self, iban: str) -> Account | None:
        compact = iban.replace(" ", "").upper()
        return next((a for a in self.accounts.values() if a.iban == compact), None)
