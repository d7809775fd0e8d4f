"""Cost of validating a Berlin Group payment-initiation body, per engine (issue 6, item 9).

Run:  .venv/bin/python bench/bench_validation.py

Schema: the request body of ``POST /v1/{payment-service}/{payment-product}`` in the shared
Berlin Group 1.3.6 spec (``anyOf`` of ``paymentInitiation_json``, periodic and bulk),
resolved by ``finward.openapi`` and converted by ``finward.validation.schema`` (strict
mode). Bodies: a SEPA credit transfer (valid) and the same with a broken IBAN (invalid).
Prints median µs per validation over interleaved rounds.

Figures on the development machine (one core, CPython 3.11):

    engine                   valid      invalid (bad IBAN)
    jsonschema-rs            1.0 µs     1.1 µs    (is_valid: the hot path)
    jsonschema-rs (explain)  1.1 µs     30 µs     (violations(): pointers for the 400)
    fastjsonschema           4.5 µs     24 µs     (draft-07 only; raises on error)
    jsonschema               94 µs      248 µs

fastjsonschema is not a finward dependency; it is measured when installed.

Target: at most 20 µs on the hot path.
"""

from __future__ import annotations

import copy
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema

from finward.openapi.loader import load_spec
from finward.validation.formats import FORMAT_CHECKERS
from finward.validation.schema import compile_schema, to_json_schema

ROUNDS = 9
ROUND_SECONDS = 0.1
SPEC = (
    Path(__file__).resolve().parents[2] / "shared" / "specs" / "berlin-group-nextgenpsd2-1.3.6.yaml"
)

BODY: dict[str, Any] = {
    "endToEndIdentification": "E2E-2024-00000042",
    "debtorAccount": {"iban": "DE02120300000000202051", "currency": "EUR"},
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorAccount": {"iban": "DE89370400440532013000"},
    "creditorAgent": "COBADEFFXXX",
    "creditorName": "Müller & Söhne GmbH",
    "creditorAddress": {
        "streetName": "Friedrichstraße",
        "buildingNumber": "123",
        "townName": "Berlin",
        "postCode": "10117",
        "country": "DE",
    },
    "remittanceInformationUnstructured": "Invoice 2024-00042",
}


def bad_body() -> dict[str, Any]:
    body = copy.deepcopy(BODY)
    body["creditorAccount"]["iban"] = "de89-3704"
    return body


def payment_schema() -> tuple[dict[str, Any], str]:
    spec = load_spec(SPEC, api="bg")
    for op in spec.operations:
        if op.method == "POST" and op.path_template == "/{payment-service}/{payment-product}":
            assert op.request_body is not None
            schema = op.request_body["content"]["application/json"]["schema"]
            return to_json_schema(schema, spec.openapi_version, resolver=spec.resolver), "3.0"
    raise SystemExit("payment initiation operation not found")


def per_call_us(fn: Callable[[], object]) -> float:
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < ROUND_SECONDS:
        for _ in range(100):
            fn()
        n += 100
    return elapsed / n * 1e6


def engines(schema: dict[str, Any]) -> dict[str, Callable[[Any], object]]:
    rs = compile_schema(schema, "3.1", strict=False)  # already converted: pass through

    slow = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.FormatChecker(formats=())
    )
    for name, check in FORMAT_CHECKERS.items():
        slow.format_checker.checks(name)(check)
    result: dict[str, Callable[[Any], object]] = {
        "jsonschema-rs": rs.is_valid,
        "jsonschema-rs (explain)": rs.violations,
        "jsonschema": slow.is_valid,
    }
    try:
        import fastjsonschema  # type: ignore[import-untyped]
    except ImportError:
        return result
    fast = fastjsonschema.compile(
        {k: v for k, v in schema.items() if k != "$schema"}, formats=dict(FORMAT_CHECKERS)
    )

    def fast_ok(instance: Any) -> bool:
        try:
            fast(instance)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    result["fastjsonschema"] = fast_ok
    return result


def main() -> None:
    schema, _ = payment_schema()
    cases = {"valid": BODY, "invalid": bad_body()}
    fns = engines(schema)
    for name, fn in fns.items():
        verdicts = {case: fn(body) for case, body in cases.items()}
        print(f"# {name}: {verdicts}", file=sys.stderr)
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            for case, body in cases.items():
                samples.setdefault((name, case), []).append(
                    per_call_us(functools.partial(fn, body))
                )
    print(f"{'engine':26} {'valid µs':>10} {'invalid µs':>11}")
    for name in fns:
        valid = statistics.median(samples[(name, "valid")])
        invalid = statistics.median(samples[(name, "invalid")])
        print(f"{name:26} {valid:10.1f} {invalid:11.1f}")


if __name__ == "__main__":
    main()
