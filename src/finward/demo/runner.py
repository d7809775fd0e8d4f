"""Play a scenario against a real sandbox and a real gateway, and collect what happened.

The runner owns the order of things: check the scenario's variables, start the three
processes (sandbox bank, sandbox authorisation server, gateway), play every step (with a
progress bar), fetch the gateway's own view (access log, metrics), and always stop the
processes. It computes nothing for display; that is
`finward.demo.report`'s job, from the `DemoRun` returned here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from finward.config.model import LimitsConfig
from finward.demo.oauth import CredentialError, Credentials, TppAgent
from finward.demo.processes import DemoProcesses, Endpoints, example_config_path
from finward.demo.scenario import Scenario, ScenarioError, Step, substitute, variables_used
from finward.demo.traffic import HttpClient, Outcome, can_bind, raw_request_line, send_raw
from finward.sandbox.data import build_bank
from finward.sandbox.model import Bank

DEFAULT_SOURCES = {"legit": "127.0.0.1", "attack": "127.0.0.2"}
# Every variable the runner defines (a test keeps this in step with the functions below),
# so a typo in a scenario fails before two processes are started for nothing.
IDENTITY_VARIABLES = frozenset(
    {"psu", "account_id", "iban", "savings_account_id", "card_account_id"}
    | {"transaction_id", "creditor_iban", "other_psu", "other_account_id"}
)
SHARED_VARIABLES = frozenset(
    {"host", "today", "until", "from_7d", "from_30d", "from_90d", "from_365d"}
    | {"max_body_bytes", "oversize_bytes", "header_filler", "uri_filler"}
)
ACCESS_LOG_WAIT_S = 3.0  # the gateway flushes once per loop turn; this is generous


@dataclass(slots=True)
class DirectProbe:
    """The same request sent straight to the sandbox, bypassing finward."""

    path: str
    status: int | None
    response_bytes: int
    exposed: list[str]  # top-level JSON members the sandbox handed out


@dataclass(slots=True)
class StepResult:
    step: Step
    outcomes: list[Outcome]
    direct: DirectProbe | None = None


@dataclass(slots=True)
class DemoRun:
    scenario: Scenario
    seed: int
    endpoints: Endpoints
    started_at: str
    wall_s: float = 0.0
    traffic_s: float = 0.0
    sources: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    access_log: list[dict[str, Any]] = field(default_factory=list)
    metrics_text: str = ""
    notes: list[str] = field(default_factory=list)


def identities(bank: Bank) -> list[dict[str, str]]:
    """One variable set per PSU; repeats rotate through them so traffic spans every PSU."""
    psus = sorted(bank.psus.values(), key=lambda p: p.psu_id)
    mains = [next(a for a in bank.accounts_of(p.psu_id) if a.currency == "EUR") for p in psus]
    result = []
    for index, psu in enumerate(psus):
        main = mains[index]
        other = (index + 1) % len(psus)
        savings = [a for a in bank.accounts_of(psu.psu_id) if a.resource_id != main.resource_id]
        result.append(
            {
                "psu": psu.psu_id,
                "account_id": main.resource_id,
                "iban": main.iban,
                "savings_account_id": savings[0].resource_id if savings else main.resource_id,
                "card_account_id": psu.card_account_ids[0],
                "transaction_id": main.transactions[-1].transaction_id,
                # Another PSU's account: a valid IBAN that is not the debtor's.
                "creditor_iban": mains[other].iban,
                # ... and that PSU, for attacks on resources that are not the caller's.
                "other_psu": psus[other].psu_id,
                "other_account_id": mains[other].resource_id,
            }
        )
    return result


def shared_variables(bank: Bank, endpoints: Endpoints, limits: Mapping[str, Any]) -> dict[str, str]:
    # Keys the policy leaves out take finward's defaults, as the gateway itself does.
    defaults = LimitsConfig()
    max_body_bytes = int(limits.get("max_body_bytes", defaults.max_body_bytes))
    max_header_bytes = int(limits.get("max_header_bytes", defaults.max_header_bytes))
    max_uri_bytes = int(limits.get("max_uri_bytes", defaults.max_uri_bytes))
    until = bank.anchor - dt.timedelta(days=1)
    return {
        "host": f"{endpoints.gateway_host}:{endpoints.gateway_port}",
        "today": bank.anchor.isoformat(),
        "until": until.isoformat(),
        "from_7d": (until - dt.timedelta(days=7)).isoformat(),
        "from_30d": (until - dt.timedelta(days=30)).isoformat(),
        "from_90d": (until - dt.timedelta(days=90)).isoformat(),
        "from_365d": (until - dt.timedelta(days=365)).isoformat(),
        "max_body_bytes": str(max_body_bytes),
        # Comfortably over the limit, whatever the example config says the limit is.
        "oversize_bytes": str(max_body_bytes + 64 * 1024),
        "header_filler": "a" * (max_header_bytes + 1),
        "uri_filler": "a" * (max_uri_bytes + 1),
    }


def check_variables(scenario: Scenario, known: set[str]) -> None:
    """Fail before any process starts if a step names a variable nobody will define."""
    problems = []
    defined = set(known) | set(scenario.variables)
    for index, step in enumerate(scenario.steps):
        missing = sorted(variables_used(step) - defined)
        if missing:
            problems.append(
                f"steps[{index}] ({step.name}): unknown variable {{{missing[0]}}}; "
                f"known: {', '.join(sorted(defined))}"
            )
        defined |= set(step.capture)
    if problems:
        raise ScenarioError(scenario.name, problems)


class Player:
    """Plays steps in order; each step's repeats run on `concurrency` workers."""

    def __init__(
        self,
        run: DemoRun,
        people: list[dict[str, str]],
        shared: dict[str, str],
        advance: Callable[[int], None],
    ) -> None:
        self.run = run
        self.people = people
        self.shared = {**shared, **run.scenario.variables}
        self.captured: list[dict[str, str]] = [{} for _ in people]
        self.advance = advance
        limit = max((s.concurrency for s in run.scenario.steps), default=1)
        self.http = HttpClient(limit)
        endpoints = run.endpoints
        self.tpp = TppAgent(
            endpoints.authserver_url,
            run.scenario.clients,
            run.scenario.public_base_url,
            endpoints.audience,
        )

    def variables(self, index: int) -> dict[str, str]:
        who = index % len(self.people)
        return {**self.shared, **self.people[who], **self.captured[who]}

    async def play(self, on_step: Callable[[Step], None]) -> None:
        try:
            for step in self.run.scenario.steps:
                on_step(step)
                self.run.steps.append(await self.play_step(step))
        finally:
            await self.http.close()
            await self.tpp.close()

    async def play_step(self, step: Step) -> StepResult:
        outcomes: list[Outcome | None] = [None] * step.repeat
        counter = iter(range(step.repeat))
        source = step.source or self.run.sources[step.kind]
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def worker() -> None:
            for index in counter:  # a shared iterator: workers take the next free repeat
                if step.rate_per_s is not None:
                    # Paced: request i starts i/rate after the first, whichever worker
                    # sends it (a worker still waiting for an answer just starts late).
                    await asyncio.sleep(max(0.0, started + index / step.rate_per_s - loop.time()))
                outcome = await self.send(step, index, source, self.run.endpoints.gateway_url)
                outcomes[index] = outcome
                if step.capture and outcome.status is not None and outcome.status < 300:
                    self.capture(step, index, outcome.body)
                outcome.body = None  # only captures need bodies; do not keep 400 of them
                self.advance(1)

        await asyncio.gather(*(worker() for _ in range(min(step.concurrency, step.repeat))))
        result = StepResult(step, [o for o in outcomes if o is not None])
        if step.direct_probe:
            probe = await self.send(step, 0, source, self.run.endpoints.sandbox_url)
            exposed = sorted(probe.body) if isinstance(probe.body, dict) else []
            result.direct = DirectProbe(
                step.request.path, probe.status, probe.response_bytes, exposed
            )
        return result

    async def send(self, step: Step, index: int, source: str, base_url: str) -> Outcome:
        variables = self.variables(index)
        request = step.request
        try:
            credentials = Credentials()
            if step.auth is not None:
                if request.is_raw:
                    method, path = raw_request_line(request, variables)
                else:
                    method, path = request.method, substitute(request.path, variables)
                credentials = await self.tpp.credentials(step.auth, variables, method, path)
            if request.is_raw:
                endpoints = self.run.endpoints
                return await send_raw(
                    endpoints.gateway_host,
                    endpoints.gateway_port,
                    request,
                    variables,
                    source,
                    extra_headers=credentials.headers,
                    extra_query=credentials.query,
                )
            return await self.http.send(
                base_url,
                step.request,
                variables,
                source,
                extra_headers=credentials.headers,
                extra_query=credentials.query,
            )
        except KeyError as exc:
            # Names are checked up front, so only a capture that never happened gets here:
            # report it on the step instead of aborting the whole demo.
            error = f"variable {{{exc.args[0]}}} has no value (did the capturing step fail?)"
            return Outcome(None, None, 0.0, 0, error=error)
        except (CredentialError, aiohttp.ClientError, TimeoutError) as exc:
            # The client could not authenticate (the AS refused or is gone): the request
            # was never sent, which the report shows as "no response" with this error.
            return Outcome(None, None, 0.0, 0, error=f"no credentials: {exc}"[:300])

    def capture(self, step: Step, index: int, body: Any) -> None:
        who = index % len(self.people)
        for name, dotted in step.capture.items():
            value: Any = body
            for part in dotted.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if isinstance(value, str | int | float):
                self.captured[who][name] = str(value)


async def _gateway_view(run: DemoRun, sent: int) -> None:
    """The gateway's own record: access-log lines (waited for) and a metrics scrape."""
    path = run.endpoints.access_log
    deadline = time.monotonic() + ACCESS_LOG_WAIT_S
    lines: list[dict[str, Any]] = []
    while True:
        lines = _read_access_log(path)
        if len(lines) >= sent or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    run.access_log = lines
    try:
        timeout = aiohttp.ClientTimeout(total=5)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(run.endpoints.metrics_url) as response,
        ):
            run.metrics_text = await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        run.notes.append(f"could not scrape {run.endpoints.metrics_url}: {exc}")


def _read_access_log(path: Path) -> list[dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except OSError:
        return []
    lines = []
    for line in raw.splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line being written right now
        if isinstance(record, dict) and record.get("type") == "request":
            lines.append(record)
    return lines


def _apply_gateway_reasons(run: DemoRun) -> None:
    """The access log is authoritative for *why*: match each response by its request id."""
    by_id = {line.get("request_id"): line for line in run.access_log}
    for result in run.steps:
        for outcome in result.outcomes:
            line = by_id.get(outcome.request_id)
            if line is not None:
                reason = line.get("reason")
                outcome.reason = reason if isinstance(reason, str) else None


def run_demo(
    scenario: Scenario,
    *,
    seed: int,
    console: Console,
    on_finished: Callable[[DemoRun], None] | None = None,
    workdir: Path | None = None,
) -> DemoRun:
    """Start everything, play the scenario, gather the gateway's view, stop everything.

    `on_finished`, when given, is called with the finished run while the processes are
    still up (the CLI prints there, and blocks until Ctrl-C for --keep-running).
    """
    started = time.perf_counter()
    check_variables(scenario, set(IDENTITY_VARIABLES | SHARED_VARIABLES))
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Build the bank's variables while the children start: it takes a few hundred ms.
        bank_future: Future[Bank] = pool.submit(build_bank, seed)
        with tempfile.TemporaryDirectory(prefix="finward-demo-") as tmp:
            base = workdir or Path(tmp)
            with DemoProcesses(
                base,
                seed,
                example_config_path(),
                public_base_url=scenario.public_base_url,
                rate_limits=scenario.rate_limits,
            ) as procs:
                assert procs.endpoints is not None
                bank = bank_future.result()
                run = DemoRun(
                    scenario=scenario,
                    seed=seed,
                    endpoints=procs.endpoints,
                    started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                )
                people = identities(bank)
                shared = shared_variables(bank, procs.endpoints, procs.limits)
                run.sources = _pick_sources(scenario, run.notes)
                traffic_started = time.perf_counter()
                asyncio.run(_play(run, people, shared, console))
                run.traffic_s = time.perf_counter() - traffic_started
                procs.check_alive()
                sent = sum(len(r.outcomes) for r in run.steps)
                asyncio.run(_gateway_view(run, sent))
                _apply_gateway_reasons(run)
                run.wall_s = time.perf_counter() - started
                if on_finished is not None:
                    on_finished(run)
    return run


def _pick_sources(scenario: Scenario, notes: list[str]) -> dict[str, str]:
    sources = {**DEFAULT_SOURCES, **scenario.sources}
    for kind, address in sources.items():
        if address != "127.0.0.1" and not can_bind(address):
            notes.append(f"cannot send from {address} here; {kind} traffic uses 127.0.0.1")
            sources[kind] = "127.0.0.1"
    return sources


async def _play(
    run: DemoRun, people: list[dict[str, str]], shared: dict[str, str], console: Console
) -> None:
    total = run.scenario.total_requests
    columns = (
        TextColumn("[bold]{task.description:<38}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # A bar in a log file is noise: draw it only on a terminal.
    disable = not console.is_terminal
    with Progress(*columns, console=console, transient=True, disable=disable) as progress:
        task = progress.add_task("starting", total=total)
        player = Player(run, people, shared, lambda n: progress.advance(task, n))

        def on_step(step: Step) -> None:
            progress.update(task, description=f"{step.kind}: {step.name}"[:38])

        await player.play(on_step)


def wait_forever(stop: threading.Event | None = None) -> None:
    """Block until Ctrl-C (or `stop` is set, for tests)."""
    event = stop or threading.Event()
    try:
        while not event.wait(0.5):
            pass
    except KeyboardInterrupt:
        return


def run_metadata(run: DemoRun) -> Mapping[str, Any]:
    e = run.endpoints
    return {
        "gateway": e.gateway_url,
        "admin": e.admin_url,
        "metrics": e.metrics_url,
        "sandbox": e.sandbox_url,
        "authserver": e.authserver_url,
        "public_url": e.public_base_url,
        "config": str(e.config_path),
        "access_log": str(e.access_log),
    }
