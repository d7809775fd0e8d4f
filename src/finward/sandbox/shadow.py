"""INTENTIONALLY VULNERABLE shadow endpoints of the sandbox bank.

These are the kind of endpoints real APIs accumulate: an admin listing left reachable,
a legacy version nobody switched off, a debug page from development. None of them is in
the sandbox's ``openapi.yaml``, so finward's positive security model refuses them at the
gateway, while anyone who reaches the sandbox directly gets everything. The demo uses
them to show both facts side by side; the inventory module finds them from traffic.

- ``GET /admin/users``  — all PSUs with names, IBANs and full PANs (OWASP API5/API3: broken
  function-level authorisation, excessive data exposure);
- ``GET /v0/accounts``  — legacy account list ignoring the PSU header (API1 BOLA, API9
  improper inventory management);
- ``GET /debug/vars``   — fake configuration "secrets" and a fake stack trace (API8
  security misconfiguration).

Every secret below is fake and says so; none of them protects anything.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from finward.sandbox.tpp import BANK_KEY, PSU_HEADER
from finward.sandbox.views import card_reference, render_account, render_card_account

SHADOW_PATHS = ("/admin/users", "/v0/accounts", "/debug/vars")

_FAKE_TRACEBACK = """\
Traceback (most recent call last):
  File "/srv/sandbank/ledger/postings.py", line 212, in post_entry
    cursor.execute(INSERT_ENTRY, entry.as_row())
  File "/srv/sandbank/.venv/lib/python3.11/site-packages/psycopg/cursor.py", line 732, in execute
    raise ex.with_traceback(None)
psycopg.errors.UniqueViolation: duplicate key value violates unique constraint "entries_pkey"
DETAIL:  Key (entry_id)=(FAKE-0000-sandbox) already exists.
"""


def add_shadow_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/admin/users", _admin_users)
    router.add_get("/v0/accounts", _legacy_accounts)
    router.add_get("/debug/vars", _debug_vars)


async def _admin_users(request: web.Request) -> web.Response:
    bank = request.app[BANK_KEY]
    users = [
        {
            "psuId": psu.psu_id,
            "name": psu.name,
            "country": psu.country,
            "role": "customer",
            "accounts": [
                {"resourceId": a.resource_id, "iban": a.iban} for a in bank.accounts_of(psu.psu_id)
            ],
            "cardAccounts": [
                {"resourceId": c.resource_id, **card_reference(c)}
                for c in bank.card_accounts_of(psu.psu_id)
            ],
        }
        for psu in bank.psus.values()
    ]
    return web.json_response({"users": users, "total": len(users)})


async def _legacy_accounts(request: web.Request) -> web.Response:
    # No PSU scoping at all: the v0 API predates the PSU header.
    bank = request.app[BANK_KEY]
    accounts: list[dict[str, Any]] = [
        {"psuId": a.psu_id, **render_account(a, with_balance=True)} for a in bank.accounts.values()
    ]
    accounts += [
        {"psuId": c.psu_id, **render_card_account(c, with_balance=True)}
        for c in bank.card_accounts.values()
    ]
    return web.json_response({"apiVersion": "v0", "deprecated": True, "accounts": accounts})


async def _debug_vars(request: web.Request) -> web.Response:
    bank = request.app[BANK_KEY]
    body = {
        "service": "sandbank-core",
        "build": {"version": "0.9.3-dev", "commit": "0000000fake", "debug": True},
        "config": {
            "database_url": "postgresql://sandbank:FAKE-db-password@db.sandbox.internal/bank",
            "redis_url": "redis://:FAKE-redis-password@cache.sandbox.internal:6379/0",
            "jwt_signing_key": "FAKE-sandbox-signing-key-not-a-secret",
            "psu_identity_header": PSU_HEADER,
            "data_seed": bank.seed,
            "data_anchor": bank.anchor.isoformat(),
        },
        "counters": {
            "psus": len(bank.psus),
            "accounts": len(bank.accounts),
            "card_accounts": len(bank.card_accounts),
        },
        "last_error": _FAKE_TRACEBACK,
    }
    return web.json_response(body)
