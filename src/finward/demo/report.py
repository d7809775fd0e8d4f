"""Turn a `DemoRun` into one JSON-ready summary, then draw that same summary as tables.

The tables are rendered from the dictionary `build_report` returns, never from the
raw run, so `--report` and the terminal can not disagree.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from finward.demo.runner import DemoRun, StepResult, run_metadata
from finward.demo.scenario import Expectation
from finward.demo.traffic import Outcome

REPORT_VERSION = 1
TOP_CLIENTS = 5
MISMATCH_EXAMPLES = 3
MAX_REASON_WIDTH = 32  # beyond this (an error message's URL, say) a word may be cut


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile (what the value was for pct% of requests, no interpolation)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def is_expected(outcome: Outcome, expect: Expectation) -> bool:
    if expect.statuses and outcome.status not in expect.statuses:
        return False
    if expect.reason is None:
        return outcome.status is not None
    return (outcome.reason or "") == expect.reason


def matches_step(outcome: Outcome, expect: tuple[Expectation, ...]) -> bool:
    """A request came out as expected if it matches any of the step's outcomes."""
    return any(is_expected(outcome, e) for e in expect)


def shortfalls(outcomes: list[Outcome], expect: tuple[Expectation, ...]) -> list[str]:
    """The outcomes that had to happen `at_least` times and did not, with their count."""
    missing = []
    for e in expect:
        seen = sum(is_expected(o, e) for o in outcomes)
        if seen < e.at_least:
            missing.append(f"{e.describe()}: {seen}")
    return missing


def describe_outcome(outcome: Outcome) -> str:
    if outcome.status is None:
        return f"no response ({outcome.error})"
    return f"{outcome.status} {outcome.reason or 'forwarded'}"


def _step_entry(result: StepResult) -> dict[str, Any]:
    step, outcomes = result.step, result.outcomes
    matched = [matches_step(o, step.expect) for o in outcomes]
    actual = Counter(describe_outcome(o) for o in outcomes)
    mismatches = [describe_outcome(o) for o, ok in zip(outcomes, matched, strict=True) if not ok]
    missing = shortfalls(outcomes, step.expect)
    statuses = list(dict.fromkeys(s for e in step.expect for s in e.statuses))
    single = step.expect[0] if len(step.expect) == 1 else None
    entry: dict[str, Any] = {
        "name": step.name,
        "kind": step.kind,
        "category": step.category,
        "transport": "raw" if step.request.is_raw else "http",
        "requests": len(outcomes),
        "expected": {
            # With several acceptable outcomes: every status, and no single reason.
            "status": statuses,
            "reason": single.reason if single is not None else None,
            "text": step.describe_expect(),
            "outcomes": [
                {"status": list(e.statuses), "reason": e.reason, "at_least": e.at_least}
                for e in step.expect
            ],
        },
        "actual": dict(actual.most_common()),
        "matched": sum(matched),
        "blocked": sum(o.blocked for o in outcomes),
        # Responses that carried the RateLimit header, and refusals that said when to retry.
        "rate_limit_headers": sum(o.rate_limit is not None for o in outcomes),
        "retry_after": sum(o.retry_after is not None for o in outcomes if o.status == 429),
        "ok": all(matched) and not missing and len(outcomes) == step.repeat,
        "mismatch_examples": mismatches[:MISMATCH_EXAMPLES],
    }
    if missing:
        entry["missing"] = missing
    if step.rate_per_s is not None:
        entry["rate_per_s"] = step.rate_per_s
    if step.note:
        entry["note"] = step.note
    return entry


def _latency(outcomes: list[Outcome]) -> dict[str, Any]:
    values = sorted(o.latency_ms for o in outcomes)
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(values[-1], 2) if values else 0.0,
    }


def _gateway_section(run: DemoRun) -> dict[str, Any]:
    lines = run.access_log
    refused = [line for line in lines if line.get("reason")]
    per_client: dict[str, Counter[str]] = {}
    totals: Counter[str] = Counter(str(line.get("client")) for line in lines)
    for line in refused:
        per_client.setdefault(str(line.get("client")), Counter())[str(line["reason"])] += 1
    top = sorted(per_client.items(), key=lambda kv: -sum(kv[1].values()))[:TOP_CLIENTS]
    return {
        "access_log_lines": len(lines),
        "refused": len(refused),
        "by_reason": dict(Counter(str(line["reason"]) for line in refused).most_common()),
        "top_blocked_clients": [
            {
                "client": client,
                "blocked": sum(reasons.values()),
                "requests": totals[client],
                "top_reason": reasons.most_common(1)[0][0],
            }
            for client, reasons in top
        ],
        "metrics_requests_total": _metrics_total(run.metrics_text),
    }


def _metrics_total(text: str) -> int | None:
    """Sum of finward_requests_total over every label set (None if not scraped)."""
    if not text:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith("finward_requests_total{") or line.startswith("finward_requests_total "):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def build_report(run: DemoRun) -> dict[str, Any]:
    outcomes = {
        kind: [o for r in run.steps if r.step.kind == kind for o in r.outcomes]
        for kind in ("legit", "attack")
    }
    everything = outcomes["legit"] + outcomes["attack"]
    by_outcome = Counter((r.step.kind, o.label, o.status) for r in run.steps for o in r.outcomes)
    steps = [_step_entry(r) for r in run.steps]
    shadow = [
        {
            "step": r.step.name,
            "path": r.direct.path,
            "sandbox_direct_status": r.direct.status,
            "sandbox_direct_bytes": r.direct.response_bytes,
            "sandbox_direct_exposes": r.direct.exposed,
            "through_finward": dict(Counter(describe_outcome(o) for o in r.outcomes)),
        }
        for r in run.steps
        if r.direct is not None
    ]
    return {
        "report_version": REPORT_VERSION,
        "scenario": run.scenario.name,
        "seed": run.seed,
        "started_at": run.started_at,
        "wall_s": round(run.wall_s, 2),
        "traffic_s": round(run.traffic_s, 2),
        "endpoints": dict(run_metadata(run)),
        "sources": run.sources,
        "ok": all(s["ok"] for s in steps),
        "totals": {
            "requests": len(everything),
            "legit": len(outcomes["legit"]),
            "attack": len(outcomes["attack"]),
            "forwarded": sum(o.label == "forwarded" for o in everything),
            "blocked": sum(o.blocked for o in everything),
            "no_response": sum(o.status is None for o in everything),
            "steps": len(steps),
            "steps_as_expected": sum(s["ok"] for s in steps),
        },
        "by_outcome": [
            {"kind": kind, "outcome": label, "status": status, "count": count}
            for (kind, label, status), count in sorted(
                by_outcome.items(), key=lambda kv: (kv[0][0] != "legit", kv[0][1], kv[0][2] or 0)
            )
        ],
        "by_reason": dict(Counter(o.reason for o in everything if o.reason).most_common()),
        "latency": {kind: _latency(values) for kind, values in outcomes.items()},
        "gateway": _gateway_section(run),
        "steps": steps,
        "shadow_endpoints": shadow,
        "notes": run.notes,
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")


def render(report: dict[str, Any], console: Console) -> None:
    totals = report["totals"]
    console.rule(f"finward demo: scenario {report['scenario']!r} (seed {report['seed']})")
    console.print(
        f"{totals['requests']} requests ({totals['legit']} legit, {totals['attack']} attack) "
        f"in {report['traffic_s']} s of traffic, {report['wall_s']} s overall; "
        f"legit from {report['sources']['legit']}, attacks from {report['sources']['attack']}"
    )
    _outcome_table(report, console)
    _reason_table(report, console)
    _latency_table(report, console)
    _clients_table(report, console)
    _steps_table(report, console)
    _shadow_table(report, console)
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    good, steps = totals["steps_as_expected"], totals["steps"]
    style = "bold green" if report["ok"] else "bold red"
    console.print(Text(f"finward behaved as expected on {good}/{steps} steps", style=style))


def _outcome_table(report: dict[str, Any], console: Console) -> None:
    table = Table(title="Requests by outcome (client side)", title_justify="left")
    for column in ("kind", "outcome", "status", "requests"):
        table.add_column(column, justify="right" if column == "requests" else "left")
    for row in report["by_outcome"]:
        style = "red" if row["outcome"] == "blocked" else None
        status = "-" if row["status"] is None else str(row["status"])
        table.add_row(row["kind"], row["outcome"], status, str(row["count"]), style=style)
    console.print(table)


def _reason_table(report: dict[str, Any], console: Console) -> None:
    table = Table(title="Refusals by reason code", title_justify="left")
    table.add_column("reason")
    table.add_column("client saw", justify="right")
    table.add_column("gateway logged", justify="right")
    logged = report["gateway"]["by_reason"]
    for reason in sorted(set(report["by_reason"]) | set(logged)):
        table.add_row(reason, str(report["by_reason"].get(reason, 0)), str(logged.get(reason, 0)))
    console.print(table)


def _latency_table(report: dict[str, Any], console: Console) -> None:
    table = Table(title="Latency seen by the client (ms)", title_justify="left")
    for column in ("traffic", "requests", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="left" if column == "traffic" else "right")
    for kind, lat in report["latency"].items():
        table.add_row(
            kind,
            str(lat["count"]),
            *(f"{lat[k]:.1f}" for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
        )
    console.print(table)


def _clients_table(report: dict[str, Any], console: Console) -> None:
    gateway = report["gateway"]
    caption = (
        f"from the gateway's access log ({gateway['access_log_lines']} lines; "
        f"finward_requests_total: {gateway['metrics_requests_total']})"
    )
    table = Table(
        title="Top blocked clients", title_justify="left", caption=caption, caption_justify="left"
    )
    for column in ("client", "blocked", "requests", "top reason"):
        table.add_column(column, justify="right" if column in ("blocked", "requests") else "left")
    for row in gateway["top_blocked_clients"]:
        table.add_row(row["client"], str(row["blocked"]), str(row["requests"]), row["top_reason"])
    console.print(table)


def _steps_table(report: dict[str, Any], console: Console) -> None:
    table = Table(
        title="Expected vs actual, per step (legit traffic above the line, attacks below)",
        title_justify="left",
    )
    # Room for the longest reason code (token_algorithm_not_allowed) on one line: the
    # step names wrap instead.
    words = (len(word) for step in report["steps"] for word in _words(step))
    widest = min(max(words, default=0), MAX_REASON_WIDTH)
    for column in ("", "step", "category", "n", "expected", "actual"):
        table.add_column(
            column,
            justify="right" if column == "n" else "left",
            min_width=widest if column in ("expected", "actual") else None,
        )
    kind = None
    for step in report["steps"]:
        if kind is not None and step["kind"] != kind:
            table.add_section()  # legit traffic above, attacks below
        kind = step["kind"]
        counts = step["actual"]
        # One outcome for every request is the common case: the n column already counts it.
        actual = ", ".join(
            what if len(counts) == 1 else f"{what} x{n}" for what, n in counts.items()
        )
        mark = Text("✓", style="green") if step["ok"] else Text("✗", style="bold red")
        expected = step["expected"]["text"] + (" *" if "note" in step else "")
        name = step["name"]
        if "rate_per_s" in step:
            name += f" ({step['rate_per_s']:g}/s)"
        table.add_row(
            mark,
            name,
            step["category"],
            str(step["requests"]),
            expected,
            actual,
            style=None if step["ok"] else "red",
        )
    console.print(table)
    for step in report["steps"]:
        if "note" in step:
            console.print(f"  * {step['name']}: {step['note']}", style="dim")


def _words(step: dict[str, Any]) -> list[str]:
    texts = [step["expected"]["text"], *step["actual"]]
    return [word for text in texts for word in text.split()]


def _shadow_table(report: dict[str, Any], console: Console) -> None:
    if not report["shadow_endpoints"]:
        return
    table = Table(
        title="Shadow endpoints: sandbox directly vs through finward", title_justify="left"
    )
    for column in ("path", "sandbox direct", "exposes", "through finward"):
        table.add_column(column)
    for row in report["shadow_endpoints"]:
        direct = f"{row['sandbox_direct_status']} ({row['sandbox_direct_bytes']} bytes)"
        gateway = ", ".join(row["through_finward"])
        table.add_row(
            row["path"],
            Text(direct, style="red"),
            ", ".join(row["sandbox_direct_exposes"]) or "-",
            Text(gateway, style="green"),
        )
    console.print(table)
