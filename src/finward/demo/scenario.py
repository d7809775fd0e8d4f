"""Demo scenarios as data: load a YAML file into typed steps, or say exactly what is wrong.

A scenario is a list of steps. Each step is one request template played `repeat` times
(with `concurrency` in flight) and the outcome finward should produce. The transport is
inferred from the template, never from a step-specific code path:

- `method`/`path`/`headers`/`json`/`body` → an HTTP request on a keep-alive aiohttp session;
- `raw` → bytes written verbatim on a fresh TCP connection, for requests no well-behaved
  client library will send (smuggling, obs-fold, broken chunking).

A step may also say how its client authenticates (`auth`): which TPP from the
scenario's `clients`, for which PSU, and how the token and its DPoP proof are presented
or tampered with. `finward.demo.oauth` turns that into headers (inserted right after
the request line of a raw request); the transport never knows why a header is there.

A scenario may also give the demo gateway a `rate_limits` section (passed on as
written), and a step may pace its requests (`rate_per_s`) to keep within it. Where a
limit lets a burst's first requests through and refuses the rest, `expect` lists both
outcomes, with `at_least` on the one that must really happen.

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
    | {"capture", "direct_probe", "note", "auth", "rate_per_s"}
)
_REQUEST_KEYS = frozenset({"method", "path", "headers", "json", "body", "raw", "pad_to", "chunked"})
_EXPECT_KEYS = frozenset({"status", "reason", "at_least"})
MAX_RATE_PER_S = 1000.0
_AUTH_KEYS = frozenset(
    {"client", "psu", "scope", "token", "bind", "scheme", "in", "proof", "proof_key"}
    | {"keep", "replay"}
)
_CLIENT_KEYS = frozenset({"redirect_uri", "secret"})
# Where a step's access token comes from: the AS through a grant (issued), the AS's
# sandbox-only mint hook with an expiry in the past (expired), or the attacker (a token
# signed with the attacker's own key under the AS's kid; alg "none"; HS256 keyed with the
# AS's public JWK).
TOKEN_KINDS: tuple[str, ...] = ("issued", "expired", "forged", "alg-none", "hs256-jwk")
AUTH_SCHEMES: tuple[str, ...] = ("DPoP", "Bearer")
TOKEN_PLACES: tuple[str, ...] = ("header", "query")
PROOF_MODES: tuple[str, ...] = ("fresh", "none")
BINDINGS: tuple[str, ...] = ("dpop", "none")
# DPoP htu is the URL clients use to reach finward, which behind a load balancer is not
# its bind address; the demo gateway binds a random port, so the scenario names one.
DEFAULT_PUBLIC_BASE_URL = "https://api.bank.example"
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


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
    """One acceptable outcome. A step lists one or more; every request must match one."""

    statuses: tuple[int, ...]  # empty: any status
    # "" means "no reason": the request must reach the upstream (not refused by finward).
    reason: str | None = None
    # At least this many of the step's requests must come out this way (a rate limit's
    # refusals beside the requests its burst allowance lets through).
    at_least: int = 0

    def describe(self) -> str:
        status = "/".join(str(s) for s in self.statuses) or "any"
        text = status if self.reason is None else f"{status} {self.reason or 'forwarded'}"
        return f"{text} (>={self.at_least})" if self.at_least else text


@dataclass(frozen=True, slots=True)
class ClientTemplate:
    """A TPP registered at the sandbox authorisation server."""

    client_id: str
    redirect_uri: str  # must be one the AS has registered for the client
    secret: str | None = None  # None: the sandbox's published fixture secret


@dataclass(frozen=True, slots=True)
class AuthTemplate:
    """How one step's requests authenticate; see the scenario file's header comment."""

    client: str | None = None  # a key of Scenario.clients; None only with `replay`
    psu: str | None = None  # authorization-code flow for this PSU; None: client_credentials
    scope: str | None = None  # None: whatever the AS grants the client by default
    origin: str = "issued"  # `token`: where it comes from, one of TOKEN_KINDS
    bind: str = "dpop"  # ask the AS for a DPoP-bound token, or an unbound one
    scheme: str = "DPoP"  # the Authorization scheme
    place: str = "header"  # `in`: header (Authorization) or query (?access_token=)
    proof: str = "fresh"  # a new DPoP proof per request, or none
    proof_key: str | None = None  # whose key signs the proof; None: the client's own
    keep: str | None = None  # remember the credentials last sent under this name
    replay: str | None = None  # send the credentials kept under this name again

    def strings(self) -> list[str]:
        return [v for v in (self.psu, self.scope) if v is not None]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    kind: StepKind
    category: str
    request: RequestTemplate
    # The acceptable outcomes (one or more): each request must match one of them.
    expect: tuple[Expectation, ...]
    repeat: int = 1
    concurrency: int = 1
    source: str | None = None  # local address to send from; default per kind
    capture: Mapping[str, str] = field(default_factory=dict)  # variable -> dotted JSON path
    direct_probe: bool = False  # also send once straight to the sandbox, for comparison
    note: str = ""
    auth: AuthTemplate | None = None  # None: no credentials at all
    # Start requests at this steady rate (spread over the workers) instead of as fast as
    # the gateway answers: a client that keeps within its rate limit. None: no pacing.
    rate_per_s: float | None = None

    def describe_expect(self) -> str:
        return " | ".join(e.describe() for e in self.expect)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    steps: tuple[Step, ...]
    sources: Mapping[str, str]  # kind -> local address attack/legit traffic comes from
    variables: Mapping[str, str]
    clients: Mapping[str, ClientTemplate] = field(default_factory=dict)  # by client_id
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL
    # The demo gateway's `rate_limits` section, as written (the gateway validates it);
    # None: the gateway runs without rate limits.
    rate_limits: Mapping[str, Any] | None = None

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
    clients = _parse_clients(data.get("clients", {}), problems)
    public_base_url = data.get("public_base_url", DEFAULT_PUBLIC_BASE_URL)
    if not isinstance(public_base_url, str) or not re.fullmatch(
        r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", public_base_url
    ):
        problems.append(
            "public_base_url: must be scheme://host[:port] without a path, "
            f"e.g. {DEFAULT_PUBLIC_BASE_URL}"
        )
        public_base_url = DEFAULT_PUBLIC_BASE_URL
    rate_limits = data.get("rate_limits")
    if rate_limits is not None and not isinstance(rate_limits, dict):
        problems.append("rate_limits: must be a mapping (the gateway's `rate_limits` section)")
        rate_limits = None
    steps: list[Step] = []
    names: set[str] = set()
    kept: set[str] = set()
    for index, raw in enumerate(raw_steps):
        step = _parse_step(raw, f"steps[{index}]", problems)
        if step is None:
            continue
        if step.name in names:
            problems.append(f"steps[{index}]: duplicate step name {step.name!r}")
        names.add(step.name)
        if step.auth is not None:
            _check_auth_refs(step.auth, clients, kept, f"steps[{index}] ({step.name})", problems)
            if step.auth.keep is not None:
                kept.add(step.auth.keep)
        steps.append(step)
    if problems:
        raise ScenarioError(source, problems)
    return Scenario(
        name=str(data.get("name", Path(source).stem)),
        description=str(data.get("description", "")).strip(),
        steps=tuple(steps),
        sources=sources,
        variables=variables,
        clients=clients,
        public_base_url=public_base_url,
        rate_limits=rate_limits,
    )


def _parse_clients(value: object, problems: list[str]) -> dict[str, ClientTemplate]:
    if not isinstance(value, dict):
        problems.append("clients: must map client ids to {redirect_uri, secret}")
        return {}
    clients: dict[str, ClientTemplate] = {}
    for client_id, raw in value.items():
        where = f"clients.{client_id}"
        if not isinstance(client_id, str) or not _NAME.fullmatch(client_id):
            problems.append(f"{where}: a client id is letters, digits, '.', '_' and '-'")
            continue
        if not isinstance(raw, dict) or set(raw) - _CLIENT_KEYS:
            known = ", ".join(sorted(_CLIENT_KEYS))
            problems.append(f"{where}: must be a mapping with {known}")
            continue
        redirect_uri, secret = raw.get("redirect_uri"), raw.get("secret")
        if not isinstance(redirect_uri, str) or not redirect_uri.startswith(
            ("https://", "http://")
        ):
            problems.append(f"{where}: redirect_uri is required (one registered at the AS)")
            continue
        if secret is not None and not isinstance(secret, str):
            problems.append(f"{where}: secret must be a string")
            continue
        clients[client_id] = ClientTemplate(client_id, redirect_uri, secret)
    return clients


def _check_auth_refs(
    auth: AuthTemplate,
    clients: Mapping[str, ClientTemplate],
    kept: set[str],
    where: str,
    problems: list[str],
) -> None:
    if auth.client is not None and auth.client not in clients:
        known = ", ".join(sorted(clients)) or "none"
        problems.append(f"{where}: auth.client {auth.client!r} is not in `clients` ({known})")
    if auth.replay is not None and auth.replay not in kept:
        problems.append(
            f"{where}: auth.replay {auth.replay!r} names nothing an earlier step keeps (auth.keep)"
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
    auth = _parse_auth(raw["auth"], where, problems) if "auth" in raw else None
    rate_per_s = raw.get("rate_per_s")
    if rate_per_s is not None and (
        isinstance(rate_per_s, bool)
        or not isinstance(rate_per_s, int | float)
        or not 0 < rate_per_s <= MAX_RATE_PER_S
    ):
        problems.append(
            f"{where}: `rate_per_s` must be a number above 0 and at most {MAX_RATE_PER_S:g}"
        )
    if expect is not None and sum(e.at_least for e in expect) > repeat:
        problems.append(f"{where}: expect: the `at_least` counts add up to more than `repeat`")
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
        auth=auth,
        rate_per_s=float(rate_per_s) if rate_per_s is not None else None,
    )


def _parse_auth(raw: object, where: str, problems: list[str]) -> AuthTemplate | None:
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{where}: `auth` must be a mapping (client, psu, token, ...)")
        return None
    unknown = sorted(set(raw) - _AUTH_KEYS)
    if unknown:
        known = ", ".join(sorted(_AUTH_KEYS))
        problems.append(f"{where}: auth: unknown key {unknown[0]!r}; known: {known}")
        return None
    before = len(problems)
    values: dict[str, str | None] = {}
    for key in sorted(_AUTH_KEYS):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{where}: auth.{key} must be a string")
        values[key] = value if isinstance(value, str) else None
    choices = {
        "token": TOKEN_KINDS,
        "bind": BINDINGS,
        "scheme": AUTH_SCHEMES,
        "in": TOKEN_PLACES,
        "proof": PROOF_MODES,
    }
    for key, allowed in choices.items():
        if values[key] is not None and values[key] not in allowed:
            problems.append(
                f"{where}: auth.{key} must be one of {', '.join(allowed)} (got {values[key]!r})"
            )
    for key in ("keep", "replay", "proof_key"):
        name = values[key]
        if name is not None and not _NAME.fullmatch(name):
            problems.append(f"{where}: auth.{key} must be a short name (letters, digits, .-_)")
    if values["replay"] is not None:
        others = sorted(k for k in raw if k != "replay")
        if others:
            problems.append(f"{where}: auth.replay sends kept credentials; drop {others[0]!r}")
    elif values["client"] is None:
        problems.append(f"{where}: auth.client is required (or auth.replay)")
    if len(problems) > before:
        return None
    scheme = values["scheme"] or "DPoP"
    place = values["in"] or "header"
    default_proof = "fresh" if scheme == "DPoP" and place == "header" else "none"
    return AuthTemplate(
        client=values["client"],
        psu=values["psu"],
        scope=values["scope"],
        origin=values["token"] or "issued",
        bind=values["bind"] or "dpop",
        scheme=scheme,
        place=place,
        proof=values["proof"] or default_proof,
        proof_key=values["proof_key"],
        keep=values["keep"],
        replay=values["replay"],
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


def _parse_expect(raw: object, where: str, problems: list[str]) -> tuple[Expectation, ...] | None:
    """`expect` is one outcome (a mapping) or a list of acceptable outcomes."""
    if isinstance(raw, list) and raw:
        alternatives = [_parse_outcome(item, where, problems) for item in raw]
        if any(a is None for a in alternatives):
            return None
        return tuple(a for a in alternatives if a is not None)
    if isinstance(raw, dict) and "at_least" in raw:
        problems.append(f"{where}: expect.at_least needs a list of outcomes (`expect: [...]`)")
        return None
    outcome = _parse_outcome(raw, where, problems)
    return None if outcome is None else (outcome,)


def _parse_outcome(raw: object, where: str, problems: list[str]) -> Expectation | None:
    if not isinstance(raw, dict) or not raw or set(raw) - _EXPECT_KEYS:
        problems.append(
            f"{where}: `expect` is required: a mapping with `status` and/or `reason` "
            "(or a list of them)"
        )
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
    at_least = raw.get("at_least", 0)
    if isinstance(at_least, bool) or not isinstance(at_least, int) or at_least < 0:
        problems.append(f"{where}: expect.at_least must be a whole number (0 or more)")
        return None
    return Expectation(statuses=statuses, reason=reason, at_least=at_least)


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
    if step.auth is not None:
        texts.extend(step.auth.strings())
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
