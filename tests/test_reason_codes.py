"""docs/reason-codes.md and finward.errors.REASONS must agree, and every code must be used."""

from __future__ import annotations

import re
from pathlib import Path

from finward.errors import REASONS

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| `([a-z0-9_]+)` \| (\d{3}) \|", re.MULTILINE)


def _documented() -> dict[str, int]:
    text = (REPO / "docs" / "reason-codes.md").read_text()
    return {code: int(status) for code, status in ROW.findall(text)}


def test_catalogue_matches_code() -> None:
    assert _documented() == {code: r.status for code, r in REASONS.items()}


def test_codes_are_snake_case() -> None:
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", code) for code in REASONS)


def test_every_code_is_used_by_the_source() -> None:
    sources = "\n".join(
        p.read_text() for p in (REPO / "src" / "finward").rglob("*.py") if p.name != "errors.py"
    )
    unused = [code for code in REASONS if f'"{code}"' not in sources]
    assert unused == []
