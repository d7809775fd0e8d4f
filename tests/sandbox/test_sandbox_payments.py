"""Payment initiation over a real socket: create, read, status, scoping, validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from finward.sandbox.app import create_app
from finward.sandbox.data import Bank
from finward.sandbox.payments import DEFAULT_SCA_BASE_URL, PAYMENTS_KEY
from tests.sandbox.sandbox_helpers import SandboxClient

SCT = "/v1/payments/sepa-credit-transfers"
CREDITOR_IBAN = "FR7630006000011234567890189"


def alice_iban(bank: Bank, index: int = 0) -> str:
    return bank.accounts[bank.psus["psu-alice"].account_ids[index]].iban


def initiation(bank: Bank) -> dict[str, Any]:
    return {
        "instructedAmount": {"currency": "EUR", "amount": "123.45"},
        "debtorAccount": {"iban": alice_iban(bank)},
        "creditorAccount": {"iban": CREDITOR_IBAN},
        "creditorName": "Atelier Lumiere SARL",
        "remittanceInformationUnstructured": "Invoice 2026-118",
    }


@pytest.mark.parametrize("product", ["sepa-credit-transfers", "instant-sepa-credit-transfers"])
async def test_create_then_read_payment_and_status(
    client: SandboxClient, bank: Bank, product: str
) -> None:
    body = initiation(bank)
    created = await client.post(f"/v1/payments/{product}", json=body)
    assert created.status == 201
    payment_id = created.body["paymentId"]
    self_href = f"/v1/payments/{product}/{payment_id}"
    assert created.body["transactionStatus"] == "RCVD"
    assert created.body["_links"]["self"] == {"href": self_href}
    assert created.body["_links"]["status"] == {"href": f"{self_href}/status"}
    sca = created.body["_links"]["scaRedirect"]["href"]
    assert sca == f"{DEFAULT_SCA_BASE_URL}/payments/{payment_id}"
    assert created.headers["Location"] == self_href

    read = await client.get(self_href)
    assert read.status == 200
    assert read.body == {**body, "transactionStatus": "RCVD"}
    status = await client.get(f"{self_href}/status")
    assert status.body == {"transactionStatus": "RCVD"}


async def test_sca_link_ignores_the_host_header(client: SandboxClient, bank: Bank) -> None:
    created = await client.post(SCT, json=initiation(bank), headers={"Host": "evil.example"})
    assert created.body["_links"]["scaRedirect"]["href"].startswith(DEFAULT_SCA_BASE_URL)


async def test_payments_are_scoped_to_their_psu_and_product(
    client: SandboxClient, bank: Bank
) -> None:
    created = await client.post(SCT, json=initiation(bank))
    payment_id = created.body["paymentId"]
    for path, psu in [
        (f"{SCT}/{payment_id}", "psu-bruno"),
        (f"{SCT}/{payment_id}/status", "psu-bruno"),
        (f"/v1/payments/instant-sepa-credit-transfers/{payment_id}", "psu-alice"),
        (f"{SCT}/00000000-0000-4000-8000-000000000000", "psu-alice"),
    ]:
        reply = await client.get(path, psu=psu)
        assert (reply.status, reply.error_code) == (404, "RESOURCE_UNKNOWN"), path


async def test_payments_live_on_their_app_instance(client: SandboxClient, bank: Bank) -> None:
    created = await client.post(SCT, json=initiation(bank))
    assert created.status == 201
    # The running app holds that payment; fresh apps share nothing with it (no globals).
    first, second = create_app(bank), create_app(bank)
    assert first[PAYMENTS_KEY] is not second[PAYMENTS_KEY]
    assert not first[PAYMENTS_KEY].payments and not second[PAYMENTS_KEY].payments


async def test_unknown_payment_product(client: SandboxClient, bank: Bank) -> None:
    created = await client.post("/v1/payments/cross-border-credit-transfers", json=initiation(bank))
    assert (created.status, created.error_code) == (400, "PRODUCT_UNKNOWN")
    read = await client.get("/v1/payments/target-2-payments/abc")
    assert (read.status, read.error_code) == (400, "PRODUCT_UNKNOWN")


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


def mutate(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    *parents, leaf = path.split(".")
    target = changed
    for name in parents:
        target = target[name]
    target[leaf] = value
    return changed


# (description, how to break the body, expected BG code)
INVALID_BODIES = [
    ("no creditorName", lambda b: without(b, "creditorName"), "FORMAT_ERROR"),
    ("blank creditorName", lambda b: mutate(b, "creditorName", "  "), "FORMAT_ERROR"),
    ("long creditorName", lambda b: mutate(b, "creditorName", "x" * 71), "FORMAT_ERROR"),
    ("amount as number", lambda b: mutate(b, "instructedAmount.amount", 12.5), "FORMAT_ERROR"),
    ("negative amount", lambda b: mutate(b, "instructedAmount.amount", "-5.00"), "FORMAT_ERROR"),
    ("zero amount", lambda b: mutate(b, "instructedAmount.amount", "0.00"), "FORMAT_ERROR"),
    ("three decimals", lambda b: mutate(b, "instructedAmount.amount", "1.005"), "FORMAT_ERROR"),
    ("huge amount", lambda b: mutate(b, "instructedAmount.amount", "1000000000"), "FORMAT_ERROR"),
    ("bad currency", lambda b: mutate(b, "instructedAmount.currency", "eur"), "FORMAT_ERROR"),
    (
        "USD transfer",
        lambda b: mutate(b, "instructedAmount.currency", "USD"),
        "PARAMETER_NOT_CONSISTENT",
    ),
    (
        "creditor IBAN checksum",
        lambda b: mutate(b, "creditorAccount.iban", "FR7630006000011234567890188"),
        "FORMAT_ERROR",
    ),
    ("debtor without iban", lambda b: mutate(b, "debtorAccount", {}), "FORMAT_ERROR"),
    ("unknown member", lambda b: {**b, "transactionStatus": "ACSC"}, "FORMAT_ERROR"),
    (
        "unknown nested member",
        lambda b: mutate(b, "debtorAccount.bban", "123"),
        "FORMAT_ERROR",
    ),
    ("array body", lambda b: [b], "FORMAT_ERROR"),
]


@pytest.mark.parametrize(
    ("breaker", "code"),
    [(b, c) for _, b, c in INVALID_BODIES],
    ids=[d for d, _, _ in INVALID_BODIES],
)
async def test_invalid_initiations_are_refused_and_not_stored(
    client: SandboxClient, bank: Bank, breaker: Any, code: str
) -> None:
    reply = await client.post(SCT, json=breaker(initiation(bank)))
    assert (reply.status, reply.error_code) == (400, code)


async def test_debtor_must_be_a_eur_account_of_the_psu(client: SandboxClient, bank: Bank) -> None:
    bruno_iban = bank.accounts[bank.psus["psu-bruno"].account_ids[0]].iban
    unknown_iban = "DE89370400440532013000"
    replies = [
        await client.post(SCT, json=mutate(initiation(bank), "debtorAccount.iban", iban))
        for iban in (bruno_iban, unknown_iban)
    ]
    # Same answer whether the IBAN is another PSU's or unknown: no oracle.
    assert [(r.status, r.error_code) for r in replies] == [(400, "PARAMETER_NOT_CONSISTENT")] * 2
    assert replies[0].body == replies[1].body
    same = mutate(initiation(bank), "creditorAccount.iban", alice_iban(bank))
    assert (await client.post(SCT, json=same)).error_code == "PARAMETER_NOT_CONSISTENT"


async def test_debtor_in_another_currency_is_refused(client: SandboxClient, bank: Bank) -> None:
    psu, account = next(
        (a.psu_id, a) for a in bank.accounts.values() if a.currency != "EUR"
    )  # at least one PSU holds a GBP or CHF account with seed 2026
    body = mutate(initiation(bank), "debtorAccount.iban", account.iban)
    reply = await client.post(SCT, json=body, psu=psu)
    assert (reply.status, reply.error_code) == (400, "PARAMETER_NOT_CONSISTENT")


async def test_body_must_be_json(client: SandboxClient) -> None:
    not_json = await client.post(
        SCT, data="{not json", headers={"Content-Type": "application/json"}
    )
    assert (not_json.status, not_json.error_code) == (400, "FORMAT_ERROR")
    text = await client.post(SCT, data="amount=5", headers={"Content-Type": "text/plain"})
    assert text.status == 415


async def test_oversized_body_is_refused(client: SandboxClient, bank: Bank) -> None:
    body = {**initiation(bank), "remittanceInformationUnstructured": "x" * 70_000}
    reply = await client.post(SCT, json=body)
    assert reply.status == 413


async def test_payment_requires_a_psu(client: SandboxClient, bank: Bank) -> None:
    reply = await client.post(SCT, json=initiation(bank), psu=None)
    assert (reply.status, reply.error_code) == (401, "PSU_CREDENTIALS_INVALID")
