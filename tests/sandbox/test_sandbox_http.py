"""Account information endpoints over a real socket: scoping, filters, paging, errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp
import pytest

from finward.sandbox.data import Bank
from tests.sandbox.sandbox_helpers import PSU_HEADER, SandboxClient

ALICE, BRUNO = "psu-alice", "psu-bruno"


def ids_of(items: list[dict[str, Any]]) -> set[str]:
    return {item["resourceId"] for item in items}


async def test_account_list_holds_exactly_the_psus_own_accounts(
    client: SandboxClient, bank: Bank
) -> None:
    for psu in (ALICE, BRUNO):
        reply = await client.get("/v1/accounts", psu=psu)
        assert reply.status == 200
        assert ids_of(reply.body["accounts"]) == set(bank.psus[psu].account_ids)
        assert all("balances" not in a for a in reply.body["accounts"])
        cards = await client.get("/v1/card-accounts", psu=psu)
        assert ids_of(cards.body["cardAccounts"]) == set(bank.psus[psu].card_account_ids)


async def test_with_balance_adds_the_three_balances(client: SandboxClient, bank: Bank) -> None:
    reply = await client.get("/v1/accounts", params={"withBalance": "true"})
    first = reply.body["accounts"][0]
    account = bank.accounts[first["resourceId"]]
    assert [b["balanceType"] for b in first["balances"]] == [
        "closingBooked",
        "expected",
        "interimAvailable",
    ]
    assert first["balances"][0]["balanceAmount"] == {
        "currency": account.currency,
        "amount": f"{account.balances[0].amount:.2f}",
    }
    bad = await client.get("/v1/accounts", params={"withBalance": "yes"})
    assert (bad.status, bad.error_code) == (400, "FORMAT_ERROR")


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "PSU_CREDENTIALS_INVALID"),
        ({PSU_HEADER: "psu-mallory"}, 404, "RESOURCE_UNKNOWN"),
        ({PSU_HEADER: "psu alice; drop"}, 401, "PSU_CREDENTIALS_INVALID"),
    ],
)
async def test_psu_header_missing_unknown_or_malformed(
    client: SandboxClient, headers: dict[str, str], status: int, code: str
) -> None:
    reply = await client.get("/v1/accounts", psu=None, headers=headers)
    assert (reply.status, reply.error_code) == (status, code)


async def test_a_repeated_psu_header_is_refused(sandbox_url: str) -> None:
    headers = [(PSU_HEADER, ALICE), (PSU_HEADER, BRUNO)]
    async with (
        aiohttp.ClientSession() as session,
        session.get(sandbox_url + "/v1/accounts", headers=headers) as response,
    ):
        assert response.status == 401


async def test_another_psus_resources_are_404_like_unknown_ones(
    client: SandboxClient, bank: Bank
) -> None:
    account = bank.accounts[bank.psus[BRUNO].account_ids[0]]
    card = bank.psus[BRUNO].card_account_ids[0]
    tx = account.transactions[0].transaction_id
    paths = [
        f"/v1/accounts/{account.resource_id}",
        f"/v1/accounts/{account.resource_id}/balances",
        f"/v1/accounts/{account.resource_id}/transactions?dateFrom=2025-01-01",
        f"/v1/accounts/{account.resource_id}/transactions/{tx}",
        f"/v1/card-accounts/{card}",
        f"/v1/card-accounts/{card}/balances",
        f"/v1/card-accounts/{card}/transactions?dateFrom=2025-01-01",
        "/v1/accounts/00000000-0000-4000-8000-000000000000",
    ]
    for path in paths:
        reply = await client.get(path, psu=ALICE)
        assert (reply.status, reply.error_code) == (404, "RESOURCE_UNKNOWN"), path
        assert account.iban not in str(reply.body)
    # ... while Bruno himself reads them.
    for path in paths[:-1]:
        assert (await client.get(path, psu=BRUNO)).status == 200, path


async def test_account_details_and_balances(client: SandboxClient, bank: Bank) -> None:
    account = bank.accounts[bank.psus[ALICE].account_ids[0]]
    details = await client.get(f"/v1/accounts/{account.resource_id}")
    assert details.body["account"]["iban"] == account.iban
    assert details.body["account"]["ownerName"] == "Alice Schneider"
    balances = await client.get(details.body["account"]["_links"]["balances"]["href"])
    assert balances.body["account"] == {"iban": account.iban, "currency": account.currency}
    closing = balances.body["balances"][0]
    assert closing["balanceType"] == "closingBooked"
    assert closing["referenceDate"] == "2026-10-31"


async def collect(client: SandboxClient, path: str, params: dict[str, str], key: str) -> list[Any]:
    """Follow `next` links to the end; every page but the last holds exactly 50 entries."""
    reply = await client.get(path, params=params)
    assert reply.status == 200
    pages = [reply.body[key]]
    while "next" in pages[-1]["_links"]:
        assert len(pages[-1].get("booked", [])) + len(pages[-1].get("pending", [])) == 50
        reply = await client.get(pages[-1]["_links"]["next"]["href"])
        assert reply.status == 200
        assert "previous" in reply.body[key]["_links"]
        pages.append(reply.body[key])
    assert "previous" not in pages[0]["_links"]
    assert pages[0]["_links"]["last"] == pages[-1]["_links"]["last"]
    return pages


async def test_paging_through_the_whole_history_returns_every_entry_once(
    client: SandboxClient, bank: Bank
) -> None:
    account = bank.accounts[bank.psus[ALICE].account_ids[0]]
    path = f"/v1/accounts/{account.resource_id}/transactions"
    params = {"dateFrom": "2025-01-01", "bookingStatus": "both"}
    pages = await collect(client, path, params, "transactions")
    assert len(pages) == -(-len(account.transactions) // 50)
    seen = [t["transactionId"] for p in pages for t in p["pending"] + p["booked"]]
    assert sorted(seen) == sorted(t.transaction_id for t in account.transactions)
    assert pages[0]["_links"]["account"] == {"href": f"/v1/accounts/{account.resource_id}"}
    booked_dates = [t["bookingDate"] for p in pages for t in p["booked"]]
    assert booked_dates == sorted(booked_dates, reverse=True)  # newest first


async def test_date_range_and_booking_status_filters(client: SandboxClient, bank: Bank) -> None:
    account = bank.accounts[bank.psus[ALICE].account_ids[0]]
    path = f"/v1/accounts/{account.resource_id}/transactions"
    params = {"dateFrom": "2026-03-01", "dateTo": "2026-03-31", "bookingStatus": "booked"}
    pages = await collect(client, path, params, "transactions")
    assert all("pending" not in p for p in pages)
    booked = [t for p in pages for t in p["booked"]]
    expected = [
        t
        for t in account.transactions
        if t.booking_date and dt.date(2026, 3, 1) <= t.booking_date <= dt.date(2026, 3, 31)
    ]
    assert len(booked) == len(expected) > 20
    assert all(p["_links"]["first"]["href"].count("dateTo=2026-03-31") == 1 for p in pages)

    pending = await client.get(path, params={"dateFrom": "2026-10-01", "bookingStatus": "pending"})
    report = pending.body["transactions"]
    assert "booked" not in report
    assert report["pending"] and all("bookingDate" not in t for t in report["pending"])
    assert len(report["pending"]) == sum(not t.is_booked for t in account.transactions)


async def test_default_booking_status_is_booked_and_with_balance_is_honoured(
    client: SandboxClient, bank: Bank
) -> None:
    account = bank.accounts[bank.psus[ALICE].account_ids[1]]
    path = f"/v1/accounts/{account.resource_id}/transactions"
    reply = await client.get(path, params={"dateFrom": "2026-10-01", "withBalance": "true"})
    assert set(reply.body["transactions"]) == {"booked", "_links"}
    assert len(reply.body["balances"]) == 3


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "FORMAT_ERROR"),
        ({"dateFrom": "01.10.2026"}, "FORMAT_ERROR"),
        ({"dateFrom": "20261001"}, "FORMAT_ERROR"),
        ({"dateFrom": "2026-02-30"}, "FORMAT_ERROR"),
        ({"dateFrom": "2026-10-01", "dateTo": "2026-09-01"}, "PERIOD_INVALID"),
        ({"dateFrom": "2026-10-01", "bookingStatus": "information"}, "PARAMETER_NOT_SUPPORTED"),
        ({"dateFrom": "2026-10-01", "bookingStatus": "all"}, "FORMAT_ERROR"),
        ({"dateFrom": "2026-10-01", "page": "-1"}, "FORMAT_ERROR"),
        ({"dateFrom": "2026-10-01", "page": "1e3"}, "FORMAT_ERROR"),
    ],
)
async def test_transaction_query_errors(
    client: SandboxClient, bank: Bank, params: dict[str, str], code: str
) -> None:
    for path in (
        f"/v1/accounts/{bank.psus[ALICE].account_ids[0]}/transactions",
        f"/v1/card-accounts/{bank.psus[ALICE].card_account_ids[0]}/transactions",
    ):
        reply = await client.get(path, params=params)
        assert (reply.status, reply.error_code) == (400, code)


async def test_repeated_query_parameter_is_refused(client: SandboxClient, bank: Bank) -> None:
    path = f"/v1/accounts/{bank.psus[ALICE].account_ids[0]}/transactions"
    reply = await client.get(path + "?dateFrom=2026-10-01&dateFrom=2025-01-01")
    assert (reply.status, reply.error_code) == (400, "FORMAT_ERROR")


async def test_transaction_details_match_the_list_entry(client: SandboxClient, bank: Bank) -> None:
    account = bank.accounts[bank.psus[ALICE].account_ids[0]]
    listing = await client.get(
        f"/v1/accounts/{account.resource_id}/transactions", params={"dateFrom": "2026-10-01"}
    )
    entry = listing.body["transactions"]["booked"][0]
    details = await client.get(entry["_links"]["transactionDetails"]["href"])
    assert details.body == {"transactionsDetails": entry}
    unknown = await client.get(f"/v1/accounts/{account.resource_id}/transactions/nope")
    assert (unknown.status, unknown.error_code) == (404, "RESOURCE_UNKNOWN")


async def test_debits_name_the_psu_as_debtor_and_credits_as_creditor(
    client: SandboxClient, bank: Bank
) -> None:
    account = bank.accounts[bank.psus[ALICE].account_ids[0]]
    reply = await client.get(
        f"/v1/accounts/{account.resource_id}/transactions", params={"dateFrom": "2026-09-01"}
    )
    for entry in reply.body["transactions"]["booked"]:
        own = "debtor" if entry["transactionAmount"]["amount"].startswith("-") else "creditor"
        assert entry[f"{own}Name"] == "Alice Schneider"
        assert entry[f"{own}Account"] == {"iban": account.iban}


async def test_card_account_reports_keep_booked_and_carry_the_full_pan(
    client: SandboxClient, bank: Bank
) -> None:
    card = bank.card_accounts[bank.psus[ALICE].card_account_ids[0]]
    details = await client.get(f"/v1/card-accounts/{card.resource_id}")
    assert details.body["cardAccount"]["pan"] == card.pan
    assert details.body["cardAccount"]["maskedPan"] == card.masked_pan
    reply = await client.get(
        f"/v1/card-accounts/{card.resource_id}/transactions",
        params={"dateFrom": "2026-10-01", "bookingStatus": "pending"},
    )
    report = reply.body["cardTransactions"]
    assert report["booked"] == [] and report["pending"]
    assert report["_links"]["cardAccount"] == {"href": f"/v1/card-accounts/{card.resource_id}"}
    assert reply.body["cardAccount"]["pan"] == card.pan
    pages = await collect(
        client,
        f"/v1/card-accounts/{card.resource_id}/transactions",
        {"dateFrom": "2025-01-01", "bookingStatus": "both"},
        "cardTransactions",
    )
    assert sum(len(p["booked"]) + len(p["pending"]) for p in pages) == len(card.transactions)
    balances = await client.get(f"/v1/card-accounts/{card.resource_id}/balances")
    assert balances.body["cardAccount"]["maskedPan"] == card.masked_pan


async def test_request_id_is_echoed_on_success_and_error(client: SandboxClient) -> None:
    request_id = "1b3ab8e8-0fd5-43d2-946e-d75958b172e7"
    ok = await client.get("/v1/accounts", headers={"X-Request-ID": request_id})
    assert ok.headers["X-Request-ID"] == request_id
    error = await client.get("/v1/accounts", psu=None, headers={"X-Request-ID": request_id})
    assert error.status == 401 and error.headers["X-Request-ID"] == request_id
    assert "X-Request-ID" not in (await client.get("/v1/accounts")).headers


async def test_unknown_routes_and_methods_answer_in_bg_error_shape(client: SandboxClient) -> None:
    missing = await client.get("/v1/consents")
    assert (missing.status, missing.error_code) == (404, "RESOURCE_UNKNOWN")
    wrong_method = await client.request("DELETE", "/v1/accounts")
    assert (wrong_method.status, wrong_method.error_code) == (405, "SERVICE_INVALID")
    assert "GET" in wrong_method.headers["Allow"]
