"""Transaction report queries: `dateFrom`, `dateTo`, `bookingStatus`, and paging.

Both account and card-account reports use the same rules: entries newest first,
pending before booked, 50 per page, with relative `_links` that repeat the query.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, TypeVar

from aiohttp import web
from yarl import URL

from finward.sandbox.tpp import TppError, format_error, parse_bool_query, single_query

PAGE_SIZE = 50
MAX_PAGE = 10_000  # far beyond any ledger; bounds the integer parse
BookingStatus = Literal["booked", "pending", "both"]
_BOOKING_STATUSES: Mapping[str, BookingStatus] = MappingProxyType(
    {"booked": "booked", "pending": "pending", "both": "both"}
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # fromisoformat alone also takes 20261001

Entry = TypeVar("Entry")


@dataclass(frozen=True, slots=True)
class ReportQuery:
    date_from: dt.date
    date_to: dt.date
    booking_status: BookingStatus
    page: int
    with_balance: bool
    raw_date_to: str | None  # echoed in links only when the client sent it


def _parse_date(request: web.Request, name: str) -> dt.date | None:
    value = single_query(request, name)
    if value is None:
        return None
    try:
        if not _ISO_DATE.fullmatch(value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise format_error(f"{name} must be an ISO 8601 date (YYYY-MM-DD)", name) from None


def parse_report_query(request: web.Request, today: dt.date) -> ReportQuery:
    """Validate the query; BG codes: FORMAT_ERROR, PERIOD_INVALID, PARAMETER_NOT_SUPPORTED."""
    date_from = _parse_date(request, "dateFrom")
    if date_from is None:
        raise format_error("dateFrom is required", "dateFrom")
    date_to = _parse_date(request, "dateTo")
    if date_to is not None and date_to < date_from:
        raise TppError(400, "PERIOD_INVALID", "dateTo is before dateFrom", "dateTo")
    raw_status = single_query(request, "bookingStatus") or "booked"
    if raw_status == "information":
        # BG uses "information" for standing-order reports, which this bank does not offer.
        raise TppError(400, "PARAMETER_NOT_SUPPORTED", "bookingStatus=information", "bookingStatus")
    status = _BOOKING_STATUSES.get(raw_status)
    if status is None:
        raise format_error("bookingStatus must be booked, pending or both", "bookingStatus")
    raw_page = single_query(request, "page") or "0"
    if not raw_page.isdigit() or len(raw_page) > 5 or int(raw_page) > MAX_PAGE:
        raise format_error("page must be a non-negative integer", "page")
    return ReportQuery(
        date_from=date_from,
        date_to=date_to or today,
        booking_status=status,
        page=int(raw_page),
        with_balance=parse_bool_query(request, "withBalance"),
        raw_date_to=single_query(request, "dateTo"),
    )


@dataclass(frozen=True, slots=True)
class ReportPage:
    booked: list[object]
    pending: list[object]
    links: dict[str, dict[str, str]]


def build_report(
    query: ReportQuery,
    entries: Sequence[Entry],
    *,
    is_booked: Callable[[Entry], bool],
    report_date: Callable[[Entry], dt.date],
    render: Callable[[Entry], object],
    base_path: str,
    owner_link: tuple[str, str],
) -> ReportPage:
    """Filter, order and page `entries` (given oldest first) into a BG report."""
    wanted = [
        e
        for e in reversed(entries)
        if query.date_from <= report_date(e) <= query.date_to
        and (query.booking_status == "both" or is_booked(e) == (query.booking_status == "booked"))
    ]
    wanted.sort(key=is_booked)  # stable: pending first, each group newest first
    last_page = max(0, (len(wanted) - 1) // PAGE_SIZE)
    window = wanted[query.page * PAGE_SIZE : (query.page + 1) * PAGE_SIZE]

    def link(page: int) -> dict[str, str]:
        params = {"dateFrom": query.date_from.isoformat()}
        if query.raw_date_to:
            params["dateTo"] = query.raw_date_to
        params["bookingStatus"] = query.booking_status
        if query.with_balance:
            params["withBalance"] = "true"
        params["page"] = str(page)
        return {"href": str(URL(base_path).with_query(params))}

    links = {owner_link[0]: {"href": owner_link[1]}, "first": link(0), "last": link(last_page)}
    if query.page > 0:
        links["previous"] = link(min(query.page - 1, last_page))
    if query.page < last_page:
        links["next"] = link(query.page + 1)
    return ReportPage(
        booked=[render(e) for e in window if is_booked(e)],
        pending=[render(e) for e in window if not is_booked(e)],
        links=links,
    )
