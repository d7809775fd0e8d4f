from __future__ import annotations

import uuid

import pytest

from finward.core.request_ids import MAX_REQUEST_ID_CHARS, pick_ids


def test_both_missing_share_one_uuid4() -> None:
    rid, iid = pick_ids(None, None)
    assert rid == iid and uuid.UUID(rid).version == 4


def test_each_kept_when_safe() -> None:
    assert pick_ids("abc-1", "f47ac10b-58cc-4372-a567-0e02b2c3d479") == (
        "abc-1",
        "f47ac10b-58cc-4372-a567-0e02b2c3d479",
    )


@pytest.mark.parametrize(
    "bad", ["", "a b", "x\r\ny", "<script>", "a" * (MAX_REQUEST_ID_CHARS + 1), "é"]
)
def test_unsafe_values_are_replaced(bad: str) -> None:
    rid, iid = pick_ids(bad, "keep-me")
    assert rid != bad and uuid.UUID(rid).version == 4
    assert iid == "keep-me"
