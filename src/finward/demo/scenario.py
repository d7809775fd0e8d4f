"""Demo scenarios as data: load a YAML file into typed steps, or say exactly what is wrong.

A scenario is a list of steps. Each step is one request template played `repeat` times
(with `concurrency` in flight) and the outcome finward should produce. The transport is
inferred from the template, never from a step-specific code path:

- `method`/`path`/`headers`/`json`/`body` → an HTTP request on a keep-alive aiohttp session;
- `raw` → bytes written verbatim on a fresh TCP connection, for requests no well-behaved
  client library will send (smuggling, obs-fold, broken chunking).

Strings may use `{name}` variables that the runner fills from the sandbox's deterministic
data (`{psu}`, `{account_id}`, `{iban}`, …) and from earlier steps' `capture`s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from finward.errors import FinwardError

StepKind = Literal["legit", "attack"]
STEP_KINDS: tuple[StepKind, ...] = ("legit", "attack")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
# Bounds keep a typo (repeat: 100000) from turning the demo into a load test.
MAX_REPEAT = 5000
MAX_CONCURRENCY = 64
_VARIABLE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_STEP_KEYS = frozenset(
    {"name", "kind", "category", "request", "repeat", "concurrency", "expect", "source"}
    | {"capture", "direct_probe", "note"}
)
_REQUEST_KEYS = frozenset({"method", "path", "headers", "json", "body", "raw", "pad_to", "chunked"})
_EXPECT_KEYS = frozenset({"status", "reason"})


class ScenarioError(FinwardError):
    """The scenario file is invalid; ``problems`` lists every issue, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


@dataclass(frozen=True, slots=True)
class RequestTemplate:
    method: str = "GET"
    path: str = "/"
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    body: str | None = None
    raw: str | None = None  # the whole request, CRLFs included; sent on its own socket
    pad_to: int | str | None = None  # grow the body to this many bytes (oversized-body tests)
    chunked: bool = False  # send the body with Transfer-Encoding: chunked

    @property
    def is_raw(self) -> bool:
        return self.raw is not None


@dataclass(frozen=True, slots=True)
class Expectation:
    statuses: tuple[int, ...]  # empty: any status
    # "" means "no reason": the request must reach the upstream (not refused by finward).
    reason: str | None = None

    def describe(self) -> str:
        status = "/".join(str(s) for s in self.statuses) or "any"
        if self.reason is None:
            return status
        return f"{status} {self.reason or 'forwarded'}"


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    kind: StepKind
    category: str
    request: RequestTemplate
    expect: Expectation
    repeat: int = 1
    concurrency: int = 1
    source: str | None = None  # local address to send from; default per kind
    capture: Mapping[str, str] = field(default_factory=dict)  # variable -> dotted JSON path
    direct_probe: bool = False  # also send once straight to the sandbox, for comparison
    note: str = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    steps: tuple[Step, ...]
    sources: Mapping[str, str]  # kind -> local address attack/legit traffic comes from
    variables: Mapping[str, str]

    @property
    def total_requests(self) -> int:
        return sum(s.repeat for s in self.steps)


def default_scenario_path() -> Path:
    return Path(str(resources.files("finward.demo") / "scenarios" / "default.yaml"))


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; raises ScenarioError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(source, [f"not valid YAML: {exc}"]) from None
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ScenarioError(source, ["the top level must be a mapping with a `steps` list"])
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        problems.append("`steps` must be a non-empty list")
        raw_steps = []
    sources = _string_map(data.get("sources", {}), "sources", problems)
    unknown_kinds = sorted(set(sources) - set(STEP_KINDS))
    if unknown_kinds:
        problems.append(f"sources: unknown kind {unknown_kinds[0]!r} (use legit or attack)")
    variables = _string_map(data.get("variables", {}), "variables", problems)
    steps: list[Step] = []
    names: set[str] = set()
    for index, raw in enumerate(raw_steps):
        step = _parse_step(raw, f"steps[{index}]", problems)
        if step is None:
            continue
        if step.name in names:
            problems.append(f"steps[{index}]: duplicate step name {step.name!r}")
        names.add(step.name)
        steps.append(step)
    if problems:
        raise ScenarioError(source, problems)
    return Scenario(
        name=str(data.get("name", Path(source).stem)),
        description=str(data.get("description", "")).strip(),
        steps=tuple(steps),
        sources=sources,
        variables=variables,
    )


def _string_map(value: object, where: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        problems.append(f"{where}: must be a mapping of names to strings")
        return {}
    return {k: str(v) for k, v in value.items()}


def _parse_step(raw: object, where: str, problems: list[str]) -> Step | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: a step must be a mapping")
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: `name` is required (a non-empty string)")
        name = "?"
    where = f"{where} ({name})"
    before = len(problems)
    unknown = sorted(set(raw) - _STEP_KEYS)
    if unknown:
        problems.append(
            f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(_STEP_KEYS))}"
        )
    kind = raw.get("kind")
    if kind not in STEP_KINDS:
        problems.append(f"{where}: `kind` must be one of legit, attack (got {kind!r})")
    category = raw.get("category", "")
    if not isinstance(category, str):
        problems.append(f"{where}: `category` must be a string")
    repeat = _bounded_int(raw.get("repeat", 1), f"{where}: `repeat`", MAX_REPEAT, problems)
    concurrency = _bounded_int(
        raw.get("concurrency", 1), f"{where}: `concurrency`", MAX_CONCURRENCY, problems
    )
    request = _parse_request(raw.get("request"), where, problems)
    expect = _parse_expect(raw.get("expect"), where, problems)
    capture = _string_map(raw.get("capture", {}), f"{where}: capture", problems)
    source = raw.get("source")
    if source is not None and not isinstance(source, str):
        problems.append(f"{where}: `source` must be an IP address string")
    if request is not None and request.is_raw and (capture or raw.get("direct_probe")):
        problems.append(f"{where}: `capture` and `direct_probe` need an HTTP (not raw) request")
    if len(problems) > before or request is None or expect is None:
        return None
    return Step(
        name=str(name),
        kind=kind,  # type: ignore[arg-type]  # checked against STEP_KINDS above
        category=str(category),
        request=request,
        expect=expect,
        repeat=repeat,
        concurrency=concurrency,
        source=source,
        capture=capture,
        direct_probe=bool(raw.get("direct_probe", False)),
        note=str(raw.get("note", "")).strip(),
    )


def _bounded_int(value: object, where: str, upper: int, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        problems.append(f"{where} must be an integer from 1 to {upper} (got {value!r})")
        return 1
    return value


def _parse_request(raw: object, where: str, problems: list[str]) -> RequestTemplate | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: `request` is required (a mapping with `path` or `raw`)")
        return None
    unknown = sorted(set(raw) - _REQUEST_KEYS)
    if unknown:
        known = ", ".join(sorted(_REQUEST_KEYS))
        problems.append(f"{where}: request: unknown key {unknown[0]!r}; known: {known}")
        return None
    if "raw" in raw:
        return _parse_raw(raw, where, problems)
    path = raw.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        problems.append(f"{where}: request: `path` is required and must start with '/'")
        return None
    method = raw.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in HTTP_METHODS:
        problems.append(f"{where}: request: unknown method {method!r}")
        return None
    headers = _string_map(raw.get("headers", {}), f"{where}: request.headers", problems)
    if "json" in raw and "body" in raw:
        problems.append(f"{where}: request: give `json` or `body`, not both")
        return None
    body = raw.get("body")
    if body is not None and not isinstance(body, str):
        problems.append(f"{where}: request: `body` must be a string (use `json` for objects)")
        return None
    pad_to = raw.get("pad_to")
    if pad_to is not None and not (
        (isinstance(pad_to, int) and not isinstance(pad_to, bool) and pad_to > 0)
        or (isinstance(pad_to, str) and _VARIABLE.fullmatch(pad_to))
    ):
        problems.append(f"{where}: request: `pad_to` must be a positive integer or a {{variable}}")
        return None
    return RequestTemplate(
        method=method.upper(),
        path=path,
        headers=headers,
        json=raw.get("json"),
        body=body,
        pad_to=pad_to,
        chunked=bool(raw.get("chunked", False)),
    )


def _parse_raw(raw: dict[str, Any], where: str, problems: list[str]) -> RequestTemplate | None:
    others = sorted(set(raw) - {"raw"})
    if others:
        problems.append(f"{where}: request: `raw` cannot be combined with {others[0]!r}")
        return None
    value = raw["raw"]
    # A list of lines joined with CRLF reads far better than one string of escapes, and
    # keeps the exact bytes that matter for smuggling (an empty item ends the headers).
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        text = "\r\n".join(value)
    elif isinstance(value, str):
        text = value
    else:
        problems.append(f"{where}: request: `raw` must be a string or a list of lines")
        return None
    if not text:
        problems.append(f"{where}: request: `raw` is empty")
        return None
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        problems.append(f"{where}: request: `raw` must be Latin-1 (one byte per character)")
        return None
    return RequestTemplate(method="RAW", path="", raw=text)


def _parse_expect(raw: object, where: str, problems: list[str]) -> Expectation | None:
    if not isinstance(raw, dict) or not raw or set(raw) - _EXPECT_KEYS:
        problems.append(f"{where}: `expect` is required: a mapping with `status` and/or `reason`")
        return None
    status = raw.get("status")
    statuses: tuple[int, ...] = ()
    if isinstance(status, int) and not isinstance(status, bool):
        statuses = (status,)
    elif isinstance(status, list) and all(isinstance(s, int) for s in status):
        statuses = tuple(status)
    elif status is not None:
        problems.append(f"{where}: expect.status must be an integer or a list of integers")
        return None
    if any(not 100 <= s <= 599 for s in statuses):
        problems.append(f"{where}: expect.status must be between 100 and 599")
        return None
    reason = raw.get("reason")
    if "reason" in raw and reason is None:
        reason = ""  # `reason: null`: expect the upstream's answer, no finward refusal
    if reason is not None and not isinstance(reason, str):
        problems.append(f"{where}: expect.reason must be a reason code string or null")
        return None
    return Expectation(statuses=statuses, reason=reason)


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """Replace `{name}` with its value; an unknown name is an error, never left in place."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise KeyError(name)
        return variables[name]

    return _VARIABLE.sub(replace, text)


def variables_used(step: Step) -> set[str]:
    """Every `{name}` a step's request mentions (checked before the demo starts)."""
    req = step.request
    texts = [req.path, req.raw or "", req.body or "", *req.headers.values()]
    if isinstance(req.pad_to, str):
        texts.append(req.pad_to)
    texts.extend(_json_strings(req.json))
    return {m.group(1) for t in texts for m in _VARIABLE.finditer(t)}


def _json_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _json_strings(v)]
    return []
