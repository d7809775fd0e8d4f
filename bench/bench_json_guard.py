"""Cost of hardened JSON parsing (finward.validation.json_guard) against the candidates.

Run:  .venv/bin/python bench/bench_json_guard.py

Bodies: a Berlin Group bulk payment initiation (bulkPaymentInitiation_json) with 4
payments (about 2 KB) and with 190 payments (about 94 KB); every payment has an IBAN,
an amount, a creditor name with escaped quotes and non-ASCII letters, an address and
a remittance text. Prints median µs per body over interleaved rounds.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from finward.validation.json_guard import DEFAULT_LIMITS, parse_json, parse_json_reference

ROUNDS = 9
ROUND_SECONDS = 0.05


def payment(i: int) -> dict[str, Any]:
    return {
        "endToEndIdentification": f"E2E-2024-{i:08d}",
        "instructedAmount": {"currency": "EUR", "amount": f"{100 + i}.25"},
        "creditorAccount": {"iban": "DE89370400440532013000", "currency": "EUR"},
        "creditorAgent": "COBADEFFXXX",
        "creditorName": 'Müller & Söhne GmbH "Berlin"',
        "creditorAddress": {
            "streetName": "Friedrichstraße",
            "buildingNumber": "123",
            "townName": "Berlin",
            "postCode": "10117",
            "country": "DE",
        },
        "remittanceInformationUnstructured": f"Invoice 2024-{i:05d}: select drop & co; thanks",
    }


def bulk_body(payments: int) -> bytes:
    body = {
        "batchBookingPreferred": True,
        "debtorAccount": {"iban": "DE02120300000000202051", "currency": "EUR"},
        "requestedExecutionDate": "2024-06-30",
        "payments": [payment(i) for i in range(payments)],
    }
    return json.dumps(body, ensure_ascii=False).encode()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _no_constant(text: str) -> None:
    raise ValueError("NaN/Infinity")


_STDLIB_HOOKS = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def _walk(value: Any, depth: int) -> None:
    if type(value) is dict:
        if depth > 32 or len(value) > 1000:
            raise ValueError
        for key, item in value.items():
            if len(key) > 65536:
                raise ValueError
            _walk(item, depth + 1)
    elif type(value) is list:
        if depth > 32 or len(value) > 10000:
            raise ValueError
        for item in value:
            _walk(item, depth + 1)
    elif type(value) is str and len(value) > 65536:
        raise ValueError


def orjson_walk(body: bytes) -> Any:
    value = orjson.loads(body)
    _walk(value, 1)
    return value


CANDIDATES: list[tuple[str, Callable[[bytes], Any]]] = [
    ("orjson.loads, no checks (floor)", orjson.loads),
    ("json.loads (stdlib), no checks", json.loads),
    ("stdlib + pairs hook + parse_constant", lambda b: _STDLIB_HOOKS.decode(b.decode())),
    ("orjson + full tree walk (no dup check)", orjson_walk),
    ("reference path (stdlib, every rule)", lambda b: parse_json_reference(b, DEFAULT_LIMITS)),
    ("parse_json (chosen)", parse_json),
]


def medians(body: bytes) -> list[float]:
    loops = []
    for _, fn in CANDIDATES:
        started = time.perf_counter()
        fn(body)
        loops.append(max(1, int(ROUND_SECONDS / max(time.perf_counter() - started, 1e-9))))
    samples: list[list[float]] = [[] for _ in CANDIDATES]
    for _ in range(ROUNDS):
        for k, (_, fn) in enumerate(CANDIDATES):
            started = time.perf_counter()
            for _ in range(loops[k]):
                fn(body)
            samples[k].append((time.perf_counter() - started) / loops[k] * 1e6)
    return [statistics.median(s) for s in samples]


def main() -> None:
    small, large = bulk_body(4), bulk_body(190)
    assert parse_json(small) == json.loads(small) and parse_json(large) == json.loads(large)
    small_us, large_us = medians(small), medians(large)
    print(f"| candidate | {len(small) / 1000:.1f} KB (µs) | {len(large) / 1000:.0f} KB (µs) |")
    print("|---|---:|---:|")
    for (name, _), a, b in zip(CANDIDATES, small_us, large_us, strict=True):
        print(f"| {name} | {a:.1f} | {b:.0f} |")


if __name__ == "__main__":
    main()
