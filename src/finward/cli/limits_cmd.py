"""`finward limits show`: the state of a caller's rate limits, read from the limit store.

It computes the same store key as the gateway's policy (limit name + digest of the key
parts) from ``--key part=value`` options and asks the store, without counting anything
(``peek``). It talks to the store of ``rate_limits.store`` directly: a ``memory://``
store lives inside the gateway process and cannot be inspected from another one.
Exit statuses: 0 shown; 1 the store cannot be inspected or answered with an error;
2 usage or configuration problem.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from finward.cli.common import EXIT_USAGE, load_or_exit

EXIT_UNAVAILABLE = 1
# A lease id for peeking at a concurrency limit (nothing is taken).
_PEEK_LEASE = "finward-limits-show"

app = typer.Typer(no_args_is_help=True, help="Inspect rate limits, quotas and concurrency caps.")


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"finward: {message}", err=True)
    raise typer.Exit(code)


def parse_keys(options: list[str]) -> dict[str, str]:
    """``client_id=tpp-acme`` → {"client_id": "tpp-acme"}; header names case-insensitive."""
    from finward.limits.keys import KeyPartError, parse_key_part

    out: dict[str, str] = {}
    for option in options:
        part, sep, value = option.partition("=")
        if not sep:
            _fail(f"--key {option!r} is not PART=VALUE, e.g. client_id=tpp-acme", EXIT_USAGE)
        try:
            parsed = parse_key_part(part)
        except KeyPartError as exc:
            _fail(f"--key: {exc} ({exc.hint})", EXIT_USAGE)
        out[_canonical(parsed.kind, parsed.arg, part)] = value
    return out


def _canonical(kind: str, arg: str, text: str) -> str:
    return f"header:{arg}" if kind == "header" else text


def key_values(parts: tuple[str, ...], given: dict[str, str]) -> list[str] | str:
    """The values the policy would hash, or the name of the first part not given."""
    from finward.limits.keys import network_of, parse_key_part

    values = []
    for text in parts:
        part = parse_key_part(text)
        name = _canonical(part.kind, part.arg, text)
        if part.kind == "net":
            address = given.get(name, given.get("ip"))
            if address is None:
                return f"{text} (or ip)"
            values.append(network_of(address, part.v4_bits, part.v6_bits))
        elif part.kind == "header":
            values.append(given.get(name, ""))  # the gateway counts an absent header as ""
        elif name in given:
            values.append(given[name])
        else:
            return text
    return values


@app.command("show")
def show_command(
    key: Annotated[
        list[str],
        typer.Option(
            "--key",
            "-k",
            help="A key part and its value, e.g. client_id=tpp-acme, psu=psu-1, ip=203.0.113.7, "
            "header:X-Api-Key=abc. Repeat for limits keyed on several parts.",
            show_default=False,
        ),
    ],
    limit: Annotated[
        list[str] | None,
        typer.Option(
            "--limit",
            "-l",
            help="Only this limit (repeatable). Default: every limit whose key parts are given.",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="finward.yaml of the gateway", dir_okay=False),
    ] = Path("finward.yaml"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Show remaining quota and reset time of a caller's limits (nothing is counted)."""
    from finward.limits import (
        LimitStoreURLError,
        MemoryLimitConfig,
        parse_limit_store_url,
    )

    cfg = load_or_exit(config)
    settings = cfg.rate_limits
    given = parse_keys(key)
    names = {item.name for item in settings.limits}
    for name in limit or []:
        if name not in names:
            known = ", ".join(sorted(names)) or "none"
            _fail(f"no limit named {name!r} in {config} (limits: {known})", EXIT_USAGE)
    chosen = [item for item in settings.limits if not limit or item.name in limit]
    try:
        store_config = parse_limit_store_url(settings.store)
    except LimitStoreURLError as exc:
        _fail(f"rate_limits.store: {exc}", EXIT_USAGE)
    if isinstance(store_config, MemoryLimitConfig):
        _fail(
            "rate_limits.store is memory://: the counters live inside the gateway process "
            "and cannot be inspected from another process (use redis:// to share and inspect "
            "them)",
            EXIT_UNAVAILABLE,
        )
    rows = asyncio.run(_peek_all(settings, chosen, given, explicit=bool(limit)))
    if not rows:
        _fail("no limit has all its key parts in --key", EXIT_USAGE)
    for row in rows:
        typer.echo(json.dumps(row) if as_json else _line(row))


async def _peek_all(
    settings: Any, chosen: list[Any], given: dict[str, str], *, explicit: bool
) -> list[dict[str, Any]]:
    from finward.clock import SystemClock
    from finward.limits import Check, LimitStoreUnavailable, open_limit_store
    from finward.limits.keys import stored_key
    from finward.limits.rules import limit_rule

    clock = SystemClock()
    store = open_limit_store(settings.store, clock=clock)
    rows: list[dict[str, Any]] = []
    try:
        await store.start()
        for item in chosen:
            values = key_values(item.key, given)
            if isinstance(values, str):
                if explicit:
                    _fail(f"limit {item.name!r} is keyed on {values}: pass --key", EXIT_USAGE)
                continue
            rule = limit_rule(item, settings)
            lease = _PEEK_LEASE if rule.algorithm == "concurrency" else ""
            check = Check(rule, stored_key(rule.name, values), 1, lease)
            outcome = await store.peek(check, clock.now())
            remaining = outcome.remaining  # peek: what is left now
            rows.append(
                {
                    "limit": rule.name,
                    "algorithm": rule.algorithm,
                    "quota": rule.capacity,
                    "remaining": max(0, remaining),
                    "reset_s": round(outcome.reset_s, 3),
                    "key": check.key,
                }
            )
    except LimitStoreUnavailable as exc:
        _fail(f"the limit store did not answer: {exc}", EXIT_UNAVAILABLE)
    finally:
        await store.close()
    return rows


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['limit']}: {row['remaining']} of {row['quota']} left ({row['algorithm']}), "
        f"full again in {row['reset_s']:g} s  [key {row['key']}]"
    )
