"""Berlin Group NextGenPSD2 1.3.6 JSON shapes for the sandbox's records.

Field names follow the BG schemas (`accountDetails`, `cardAccountDetails`, `balance`,
`transactionDetails`, `cardTransaction`). Links are relative, as BG allows, so they stay
right whether the sandbox is reached directly or through the gateway.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from finward.sandbox.model import Account, Balance, CardAccount, CardTransaction, Transaction

JsonObject = dict[str, Any]

ACCOUNTS_PATH = "/v1/accounts"
CARD_ACCOUNTS_PATH = "/v1/card-accounts"


def render_amount(amount: Decimal, currency: str) -> JsonObject:
    """BG `amount`: the value as a string with a dot and two decimals, never a float."""
    return {"currency": currency, "amount": f"{amount:.2f}"}


def href(path: str) -> JsonObject:
    return {"href": path}


def render_balance(balance: Balance) -> JsonObject:
    body: JsonObject = {
        "balanceAmount": render_amount(balance.amount, balance.currency),
        "balanceType": balance.balance_type,
        "creditLimitIncluded": balance.credit_limit_included,
        "referenceDate": balance.reference_date.isoformat(),
    }
    if balance.last_committed_transaction:
        body["lastCommittedTransaction"] = balance.last_committed_transaction
    return body


def render_balances(balances: tuple[Balance, ...]) -> list[JsonObject]:
    return [render_balance(b) for b in balances]


def account_reference(account: Account) -> JsonObject:
    return {"iban": account.iban, "currency": account.currency}


def card_reference(card: CardAccount) -> JsonObject:
    # The full PAN travels on purpose: the gateway's response masking is demonstrated
    # against it (BG allows `pan` in an accountReference).
    return {"maskedPan": card.masked_pan, "pan": card.pan, "currency": card.currency}


def render_account(account: Account, *, with_balance: bool) -> JsonObject:
    base = f"{ACCOUNTS_PATH}/{account.resource_id}"
    body: JsonObject = {
        "resourceId": account.resource_id,
        "iban": account.iban,
        "currency": account.currency,
        "name": account.name,
        "product": account.product,
        "cashAccountType": account.cash_account_type,
        "status": "enabled",
        "bic": account.bic,
        "usage": "PRIV",
        "ownerName": account.owner_name,
        "_links": {
            "balances": href(f"{base}/balances"),
            "transactions": href(f"{base}/transactions"),
        },
    }
    if with_balance:
        body["balances"] = render_balances(account.balances)
    return body


def render_card_account(card: CardAccount, *, with_balance: bool) -> JsonObject:
    base = f"{CARD_ACCOUNTS_PATH}/{card.resource_id}"
    body: JsonObject = {
        "resourceId": card.resource_id,
        "maskedPan": card.masked_pan,
        "pan": card.pan,
        "currency": card.currency,
        "ownerName": card.owner_name,
        "name": card.name,
        "product": card.product,
        "status": "enabled",
        "usage": "PRIV",
        "creditLimit": render_amount(card.credit_limit, card.currency),
        "_links": {
            "balances": href(f"{base}/balances"),
            "transactions": href(f"{base}/transactions"),
        },
    }
    if with_balance:
        body["balances"] = render_balances(card.balances)
    return body


def render_transaction(account: Account, tx: Transaction) -> JsonObject:
    """BG `transactionDetails`; the holder is debtor of debits and creditor of credits."""
    own = {"name": account.owner_name, "account": {"iban": account.iban}}
    other: JsonObject = {"name": tx.counterparty_name}
    if tx.counterparty_iban:
        other["account"] = {"iban": tx.counterparty_iban}
    creditor, debtor = (other, own) if tx.amount < 0 else (own, other)
    body: JsonObject = {
        "transactionId": tx.transaction_id,
        "entryReference": tx.entry_reference,
    }
    if tx.end_to_end_id:
        body["endToEndId"] = tx.end_to_end_id
    if tx.mandate_id:
        body["mandateId"] = tx.mandate_id
    if tx.creditor_id:
        body["creditorId"] = tx.creditor_id
    if tx.booking_date:
        body["bookingDate"] = tx.booking_date.isoformat()
    body["valueDate"] = tx.value_date.isoformat()
    body["transactionAmount"] = render_amount(tx.amount, tx.currency)
    for role, party in (("creditor", creditor), ("debtor", debtor)):
        body[f"{role}Name"] = party["name"]
        if "account" in party:
            body[f"{role}Account"] = party["account"]
    body["remittanceInformationUnstructured"] = tx.remittance
    body["bankTransactionCode"] = tx.bank_transaction_code
    body["_links"] = {
        "transactionDetails": href(
            f"{ACCOUNTS_PATH}/{account.resource_id}/transactions/{tx.transaction_id}"
        )
    }
    return body


def render_card_transaction(card: CardAccount, tx: CardTransaction) -> JsonObject:
    """BG `cardTransaction`."""
    body: JsonObject = {
        "cardTransactionId": tx.card_transaction_id,
        "transactionDate": tx.transaction_date.isoformat(),
        "acceptorTransactionDateTime": tx.acceptor_datetime.isoformat(),
    }
    if tx.terminal_id:
        body["terminalId"] = tx.terminal_id
    if tx.booking_date:
        body["bookingDate"] = tx.booking_date.isoformat()
    body["transactionAmount"] = render_amount(tx.amount, tx.currency)
    if tx.card_acceptor_id:
        body["cardAcceptorId"] = tx.card_acceptor_id
    if tx.merchant_city and tx.merchant_country:
        body["cardAcceptorAddress"] = {"townName": tx.merchant_city, "country": tx.merchant_country}
    if tx.merchant_category_code:
        body["merchantCategoryCode"] = tx.merchant_category_code
    body["maskedPAN"] = card.masked_pan
    body["transactionDetails"] = tx.merchant_name
    body["invoiced"] = tx.invoiced
    return body
