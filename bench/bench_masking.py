"""Sensitive-data masking cost on large Berlin Group responses.

Run:  .venv/bin/python bench/bench_masking.py [--rounds 7]

Documents: the sandbox bank's transactionDetails (tests/masking/corpus.py) cycled to
about 1 MB, and 10,000 transactions (~6 MB), with PANs, IBANs, e-mails and phone
numbers planted in 1 remittance text in 41 and every creditor/debtor IBAN masked.
For each engine (google-re2, stdlib re) prints the median over rounds of: JSON mode
(`redact_json` on the parsed document), text mode (`redact_text` on the serialised
document, as for a log line or error body), and for scale `json.loads` of the same
bytes, all measured side by side in this run. Figures are µs per KB and total ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.masking.corpus

from tests.masking.corpus import build_corpus, transactions_for_bytes  # noqa: E402

from finward.masking import compile_redactor  # noqa: E402
from finward.masking.engine import DEFAULT_ENGINE  # noqa: E402


def median_ms(action: Callable[[], Any], rounds: int) -> float:
    action()  # warm-up
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    engines = ["re2", "re"] if DEFAULT_ENGINE == "re2" else ["re"]
    documents = {
        "1 MB": build_corpus(transactions_for_bytes(1_000_000)).document,
        "10k transactions": build_corpus(10_000).document,
    }
    print(f"{'document':<18} {'KB':>7} {'engine':<6} {'mode':<11} {'ms':>8} {'µs/KB':>7}")
    for name, document in documents.items():
        raw = json.dumps(document)
        kb = len(raw.encode()) / 1024
        loads_ms = median_ms(lambda raw=raw: json.loads(raw), args.rounds)
        print(f"{name:<18} {kb:>7.0f} {'-':<6} {'json.loads':<11} {loads_ms:>8.1f} "
              f"{loads_ms * 1000 / kb:>7.1f}")  # fmt: skip
        for engine in engines:
            redactor = compile_redactor(engine=engine)  # type: ignore[arg-type]
            for mode, action in (
                ("json", lambda r=redactor, d=document: r.redact_json(d)),
                ("text", lambda r=redactor, t=raw: r.redact_text(t)),
            ):
                ms = median_ms(action, args.rounds)
                print(f"{name:<18} {kb:>7.0f} {engine:<6} {mode:<11} {ms:>8.1f} "
                      f"{ms * 1000 / kb:>7.1f}")  # fmt: skip
    print(f"\ncommand: .venv/bin/python bench/bench_masking.py --rounds {args.rounds}")


if __name__ == "__main__":
    main()
