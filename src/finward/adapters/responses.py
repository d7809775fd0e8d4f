"""Serialising response heads for the client side (the bytes; never a parser)."""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

from finward.core.problem import PROBLEM_CONTENT_TYPE, render_problem
from finward.decision import Decision

_PHRASES = {s.value: s.phrase for s in HTTPStatus}


class DateCache:
    """RFC 9110 §6.6.1 Date, formatted at most once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def get(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True)
        return self._value


DATES = DateCache()


def _safe(value: str) -> str:
    # Defence in depth against response splitting: no CR, LF or NUL in a header line.
    if "\r" in value or "\n" in value or "\0" in value:
        return value.replace("\r", " ").replace("\n", " ").replace("\0", " ")
    return value


def response_head(status: int, headers: list[tuple[str, str]], version: str = "1.1") -> bytes:
    phrase = _PHRASES.get(status, "Unknown")
    lines = [f"HTTP/{'1.0' if version == '1.0' else '1.1'} {status} {phrase}"]
    lines.extend(f"{name}: {_safe(value)}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def problem_response(
    decision: Decision,
    *,
    request_id: str,
    interaction_id: str,
    extra_headers: list[tuple[str, str]],
    keep_alive: bool,
    head_only: bool = False,
    version: str = "1.1",
) -> bytes:
    body = render_problem(decision, request_id=request_id, interaction_id=interaction_id)
    headers = [
        ("content-type", PROBLEM_CONTENT_TYPE),
        ("content-length", str(len(body))),
        ("date", DATES.get()),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("x-request-id", request_id),
        ("x-fapi-interaction-id", interaction_id),
        *decision.headers,
        *extra_headers,
    ]
    if not keep_alive:
        headers.append(("connection", "close"))
    head = response_head(decision.status, headers, version)
    return head if head_only else head + body
