"""Payment initiation (BG PIS): SEPA and instant SEPA credit transfers, kept in memory.

The sandbox performs no SCA: a payment stays ``RCVD`` and its ``scaRedirect`` link
points at a host under the reserved ``.example`` domain (RFC 2606) unless the app is
built with another `sca_base_url`. The link is never derived from the request's Host
header, which a client controls (host-header injection).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from finward.sandbox.identifiers import is_valid_iban
from finward.sandbox.model import Bank, Psu
from finward.sandbox.tpp import (
    BANK_KEY,
    TppError,
    format_error,
    require_psu,
    resource_unknown,
)

PAYMENT_PRODUCTS = ("sepa-credit-transfers", "instant-sepa-credit-transfers")
DEFAULT_SCA_BASE_URL = "https://sca.sandbox.finward.example"
PAYMENTS_PATH = "/v1/payments"

# BG amountValue, restricted to what a SEPA transfer can carry: positive, two decimals,
# at most 999,999,999.99 (EPC SCT rulebook AT-04).
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
MAX_CREDITOR_NAME = 70  # BG creditorName
MAX_REMITTANCE = 140  # BG remittanceInformationUnstructured
MAX_END_TO_END_ID = 35  # BG endToEndIdentification
REQUIRED_MEMBERS = ("instructedAmount", "debtorAccount", "creditorAccount", "creditorName")
OPTIONAL_MEMBERS = ("remittanceInformationUnstructured", "endToEndIdentification")


@dataclass(frozen=True, slots=True)
class Payment:
    payment_id: str
    product: str
    psu_id: str
    body: Mapping[str, Any]  # the validated, normalised initiation request
    transaction_status: str


@dataclass(slots=True)
class PaymentStore:
    """Payments of one app instance (never module state, so tests stay independent)."""

    sca_base_url: str
    payments: dict[str, Payment] = field(default_factory=dict)

    def add(self, payment: Payment) -> None:
        self.payments[payment.payment_id] = payment

    def find(self, psu_id: str, product: str, payment_id: str) -> Payment | None:
        payment = self.payments.get(payment_id)
        if payment is None or payment.psu_id != psu_id or payment.product != product:
            return None
        return payment


PAYMENTS_KEY = web.AppKey("finward_sandbox_payments", PaymentStore)


def add_payment_routes(router: web.UrlDispatcher) -> None:
    router.add_post(PAYMENTS_PATH + "/{payment_product}", _initiate_payment)
    router.add_get(PAYMENTS_PATH + "/{payment_product}/{payment_id}", _read_payment)
    router.add_get(PAYMENTS_PATH + "/{payment_product}/{payment_id}/status", _read_status)


def _product(request: web.Request) -> str:
    product = request.match_info["payment_product"]
    if product not in PAYMENT_PRODUCTS:
        raise TppError(400, "PRODUCT_UNKNOWN", f"Payment product {product!r} is not offered")
    return product


def _check_members(body: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    # Unknown members are refused, not ignored: a field the bank would silently drop
    # today is a mass-assignment hole the day someone starts reading it (OWASP API3).
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        name = unknown[0][:40]  # echoed back: keep an attacker's key short
        raise format_error(f"Unknown member {name!r}", f"{where}{name}")


def _object(body: Mapping[str, Any], name: str, members: tuple[str, ...]) -> Mapping[str, Any]:
    value = body.get(name)
    if not isinstance(value, dict):
        raise format_error(f"{name} must be an object", name)
    _check_members(value, members, f"{name}.")
    return value


def _string(body: Mapping[str, Any], name: str, path: str, max_length: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise format_error(f"{path} must be a non-empty string of at most {max_length}", path)
    return value


def _iban(body: Mapping[str, Any], name: str) -> str:
    iban = _object(body, name, ("iban",)).get("iban")
    if not isinstance(iban, str) or not is_valid_iban(iban):
        raise format_error(f"{name}.iban is not a valid IBAN", f"{name}.iban")
    return iban


def parse_initiation(bank: Bank, psu: Psu, request_body: object) -> dict[str, Any]:
    """Validate a JSON initiation body; returns the normalised body to store."""
    if not isinstance(request_body, dict):
        raise format_error("The body must be a JSON object")
    _check_members(request_body, REQUIRED_MEMBERS + OPTIONAL_MEMBERS, "")
    amount = _object(request_body, "instructedAmount", ("currency", "amount"))
    currency, value = amount.get("currency"), amount.get("amount")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise format_error("instructedAmount.currency must be ISO 4217", "instructedAmount")
    # A JSON number would lose cents to binary floating point: BG sends strings.
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value) or Decimal(value) <= 0:
        text = "instructedAmount.amount must be a positive decimal string"
        raise format_error(text, "instructedAmount.amount")
    if currency != "EUR":
        raise TppError(400, "PARAMETER_NOT_CONSISTENT", "SEPA transfers are in EUR only")
    debtor, creditor = _iban(request_body, "debtorAccount"), _iban(request_body, "creditorAccount")
    account = bank.find_account_by_iban(debtor)
    # Same answer for an unknown IBAN and another PSU's: no oracle for who banks here.
    if account is None or account.psu_id != psu.psu_id:
        raise TppError(
            400, "PARAMETER_NOT_CONSISTENT", "debtorAccount is not an account of the PSU"
        )
    if account.currency != currency:
        raise TppError(400, "PARAMETER_NOT_CONSISTENT", "debtorAccount is not a EUR account")
    if creditor == debtor:
        raise TppError(400, "PARAMETER_NOT_CONSISTENT", "creditorAccount equals debtorAccount")
    body: dict[str, Any] = {
        "debtorAccount": {"iban": debtor},
        "instructedAmount": {"currency": currency, "amount": value},
        "creditorAccount": {"iban": creditor},
        "creditorName": _string(request_body, "creditorName", "creditorName", MAX_CREDITOR_NAME),
    }
    for name, limit in zip(OPTIONAL_MEMBERS, (MAX_REMITTANCE, MAX_END_TO_END_ID), strict=True):
        if name in request_body:
            body[name] = _string(request_body, name, name, limit)
    return body


async def _initiate_payment(request: web.Request) -> web.Response:
    psu = require_psu(request)
    product = _product(request)
    if request.content_type != "application/json":
        raise TppError(415, "FORMAT_ERROR", "Content-Type must be application/json")
    try:
        request_body = await request.json()
    except ValueError:
        raise format_error("The body is not valid JSON") from None
    body = parse_initiation(request.app[BANK_KEY], psu, request_body)
    store = request.app[PAYMENTS_KEY]
    payment = Payment(
        payment_id=str(uuid.uuid4()),
        product=product,
        psu_id=psu.psu_id,
        body=body,
        transaction_status="RCVD",
    )
    store.add(payment)
    self_path = f"{PAYMENTS_PATH}/{product}/{payment.payment_id}"
    response = {
        "transactionStatus": payment.transaction_status,
        "paymentId": payment.payment_id,
        "_links": {
            "scaRedirect": {"href": f"{store.sca_base_url}/payments/{payment.payment_id}"},
            "self": {"href": self_path},
            "status": {"href": f"{self_path}/status"},
        },
    }
    headers = {"Location": self_path, "ASPSP-SCA-Approach": "REDIRECT"}
    return web.json_response(response, status=201, headers=headers)


def _payment(request: web.Request) -> Payment:
    psu = require_psu(request)
    product = _product(request)
    store = request.app[PAYMENTS_KEY]
    payment = store.find(psu.psu_id, product, request.match_info["payment_id"])
    if payment is None:
        raise resource_unknown("The payment")
    return payment


async def _read_payment(request: web.Request) -> web.Response:
    payment = _payment(request)
    return web.json_response({**payment.body, "transactionStatus": payment.transaction_status})


async def _read_status(request: web.Request) -> web.Response:
    return web.json_response({"transactionStatus": _payment(request).transaction_status})
