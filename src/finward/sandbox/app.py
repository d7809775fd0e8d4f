"""The sandbox bank: a NextGenPSD2-style (Berlin Group 1.3.6) upstream for finward.

The sandbox is the API finward protects in the demo and the end-to-end tests. It does
no authentication at all: it takes the PSU from the ``X-Finward-PSU-ID`` header that the
gateway sets after validating the TPP's token, and scopes every resource by it (another
PSU's account or payment is 404 ``RESOURCE_UNKNOWN``). A missing header is 401
``PSU_CREDENTIALS_INVALID``; an unknown PSU is 404 ``RESOURCE_UNKNOWN``.

Public API, described exactly by ``openapi.yaml`` beside this module:

- ``GET /v1/accounts[?withBalance]``, ``/v1/accounts/{account-id}``, ``…/balances``,
  ``…/transactions?dateFrom&dateTo&bookingStatus&withBalance&page``,
  ``…/transactions/{transactionId}``
- ``GET /v1/card-accounts``, ``/v1/card-accounts/{account-id}``, ``…/balances``,
  ``…/transactions`` (same query as accounts)
- ``POST /v1/payments/{payment-product}`` (``sepa-credit-transfers``,
  ``instant-sepa-credit-transfers``), ``GET …/{paymentId}``, ``GET …/{paymentId}/status``

INTENTIONALLY VULNERABLE shadow endpoints (see `finward.sandbox.shadow`). They are *not*
in ``openapi.yaml``, so the gateway's positive security model never forwards them, yet
they answer anyone who reaches the sandbox directly:

- ``GET /admin/users`` — every PSU with names, IBANs and full card numbers, no auth;
- ``GET /v0/accounts`` — a "legacy" account list that ignores the PSU header entirely;
- ``GET /debug/vars`` — fake configuration secrets and a fake stack trace.

Never expose the sandbox on a network you do not control.
"""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from finward.sandbox.data import build_bank
from finward.sandbox.model import Account, Bank, CardAccount
from finward.sandbox.payments import (
    DEFAULT_SCA_BASE_URL,
    PAYMENTS_KEY,
    PaymentStore,
    add_payment_routes,
)
from finward.sandbox.reports import build_report, parse_report_query
from finward.sandbox.shadow import add_shadow_routes
from finward.sandbox.tpp import (
    BANK_KEY,
    REQUEST_ID_HEADER,
    TppError,
    parse_bool_query,
    require_psu,
    resource_unknown,
    tpp_body,
    tpp_response,
)
from finward.sandbox.views import (
    ACCOUNTS_PATH,
    CARD_ACCOUNTS_PATH,
    account_reference,
    card_reference,
    render_account,
    render_balances,
    render_card_account,
    render_card_transaction,
    render_transaction,
)

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # a payment initiation is well under 2 KiB
MAX_ECHOED_REQUEST_ID = 128
# BG codes for the router's own refusals; any other HTTP error is a FORMAT_ERROR.
_STATUS_CODES = MappingProxyType({404: "RESOURCE_UNKNOWN", 405: "SERVICE_INVALID"})


def create_app(
    bank: Bank | None = None,
    *,
    shadow_endpoints: bool = True,
    sca_base_url: str = DEFAULT_SCA_BASE_URL,
) -> web.Application:
    """The sandbox application; `bank` defaults to `build_bank()` (seed 2026)."""
    app = web.Application(middlewares=[_envelope_middleware], client_max_size=MAX_BODY_BYTES)
    app[BANK_KEY] = bank if bank is not None else build_bank()
    app[PAYMENTS_KEY] = PaymentStore(sca_base_url)
    router = app.router
    router.add_get(ACCOUNTS_PATH, _list_accounts)
    router.add_get(ACCOUNTS_PATH + "/{account_id}", _read_account)
    router.add_get(ACCOUNTS_PATH + "/{account_id}/balances", _read_account_balances)
    router.add_get(ACCOUNTS_PATH + "/{account_id}/transactions", _list_account_transactions)
    router.add_get(ACCOUNTS_PATH + "/{account_id}/transactions/{transaction_id}", _read_transaction)
    router.add_get(CARD_ACCOUNTS_PATH, _list_card_accounts)
    router.add_get(CARD_ACCOUNTS_PATH + "/{account_id}", _read_card_account)
    router.add_get(CARD_ACCOUNTS_PATH + "/{account_id}/balances", _read_card_balances)
    router.add_get(CARD_ACCOUNTS_PATH + "/{account_id}/transactions", _list_card_transactions)
    add_payment_routes(router)
    if shadow_endpoints:
        add_shadow_routes(router)
    return app


@web.middleware
async def _envelope_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """BG error shape for every failure, and `X-Request-ID` echoed on every response."""
    response: web.StreamResponse
    try:
        response = await handler(request)
    except TppError as error:
        response = tpp_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "FORMAT_ERROR")
        response = web.json_response(tpp_body(code, exc.reason), status=exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        # Logged here, never sent: the public API does not leak internals (unlike
        # the /debug/vars shadow endpoint, which does so on purpose).
        logger.exception("sandbox handler failed: %s %s", request.method, request.path)
        body = tpp_body("INTERNAL_SERVER_ERROR", "Internal error")
        response = web.json_response(body, status=500)
    request_id = request.headers.get(REQUEST_ID_HEADER)
    if (
        request_id
        and len(request_id) <= MAX_ECHOED_REQUEST_ID
        and request_id.isascii()
        and request_id.isprintable()
    ):
        response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _json(body: dict[str, Any]) -> web.Response:
    return web.json_response(body)


def _account(request: web.Request) -> Account:
    psu = require_psu(request)
    account = request.app[BANK_KEY].find_account(psu.psu_id, request.match_info["account_id"])
    if account is None:
        raise resource_unknown("The account")
    return account


def _card_account(request: web.Request) -> CardAccount:
    psu = require_psu(request)
    bank = request.app[BANK_KEY]
    card = bank.find_card_account(psu.psu_id, request.match_info["account_id"])
    if card is None:
        raise resource_unknown("The card account")
    return card


async def _list_accounts(request: web.Request) -> web.Response:
    psu = require_psu(request)
    with_balance = parse_bool_query(request, "withBalance")
    accounts = request.app[BANK_KEY].accounts_of(psu.psu_id)
    return _json({"accounts": [render_account(a, with_balance=with_balance) for a in accounts]})


async def _read_account(request: web.Request) -> web.Response:
    account = _account(request)
    with_balance = parse_bool_query(request, "withBalance")
    return _json({"account": render_account(account, with_balance=with_balance)})


async def _read_account_balances(request: web.Request) -> web.Response:
    account = _account(request)
    return _json(
        {"account": account_reference(account), "balances": render_balances(account.balances)}
    )


async def _list_account_transactions(request: web.Request) -> web.Response:
    account = _account(request)
    query = parse_report_query(request, request.app[BANK_KEY].anchor)
    base = f"{ACCOUNTS_PATH}/{account.resource_id}"
    page = build_report(
        query,
        account.transactions,
        is_booked=lambda t: t.is_booked,
        report_date=lambda t: t.report_date,
        render=lambda t: render_transaction(account, t),
        base_path=f"{base}/transactions",
        owner_link=("account", base),
    )
    # BG accountReport: 'booked' only when booked/both were asked, 'pending' likewise.
    report: dict[str, Any] = {}
    if query.booking_status != "pending":
        report["booked"] = page.booked
    if query.booking_status != "booked":
        report["pending"] = page.pending
    report["_links"] = page.links
    body: dict[str, Any] = {"account": account_reference(account), "transactions": report}
    if query.with_balance:
        body["balances"] = render_balances(account.balances)
    return _json(body)


async def _read_transaction(request: web.Request) -> web.Response:
    account = _account(request)
    tx = account.find_transaction(request.match_info["transaction_id"])
    if tx is None:
        raise resource_unknown("The transaction")
    return _json({"transactionsDetails": render_transaction(account, tx)})


async def _list_card_accounts(request: web.Request) -> web.Response:
    psu = require_psu(request)
    with_balance = parse_bool_query(request, "withBalance")
    cards = request.app[BANK_KEY].card_accounts_of(psu.psu_id)
    body = {"cardAccounts": [render_card_account(c, with_balance=with_balance) for c in cards]}
    return _json(body)


async def _read_card_account(request: web.Request) -> web.Response:
    card = _card_account(request)
    with_balance = parse_bool_query(request, "withBalance")
    return _json({"cardAccount": render_card_account(card, with_balance=with_balance)})


async def _read_card_balances(request: web.Request) -> web.Response:
    card = _card_account(request)
    return _json({"cardAccount": card_reference(card), "balances": render_balances(card.balances)})


async def _list_card_transactions(request: web.Request) -> web.Response:
    card = _card_account(request)
    query = parse_report_query(request, request.app[BANK_KEY].anchor)
    base = f"{CARD_ACCOUNTS_PATH}/{card.resource_id}"
    page = build_report(
        query,
        card.transactions,
        is_booked=lambda t: t.is_booked,
        report_date=lambda t: t.report_date,
        render=lambda t: render_card_transaction(card, t),
        base_path=f"{base}/transactions",
        owner_link=("cardAccount", base),
    )
    # BG cardAccountReport requires 'booked', even when only pending entries were asked.
    report: dict[str, Any] = {"booked": page.booked}
    if query.booking_status != "booked":
        report["pending"] = page.pending
    report["_links"] = page.links
    body: dict[str, Any] = {"cardAccount": card_reference(card), "cardTransactions": report}
    if query.with_balance:
        body["balances"] = render_balances(card.balances)
    return _json(body)
