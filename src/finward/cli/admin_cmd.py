"""`finward tokens …` and `finward clients …`: revocations and suspensions via the admin API.

The commands talk to a running gateway's admin listener (never to Redis directly), so
every change is authenticated, validated and audited in one place. Exit statuses:
0 done; 1 the gateway refused or could not apply it (the message says why);
2 usage or configuration problem (no token, unreadable config file).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from finward.cli.common import EXIT_USAGE, load_or_exit

DEFAULT_ADMIN_URL = "http://127.0.0.1:9901"
TOKEN_ENV = "FINWARD_ADMIN_TOKEN"  # noqa: S105 - the name of a variable, not a secret
ADMIN_URL_ENV = "FINWARD_ADMIN_URL"
# A state store call answers within its timeout (100 ms by default); this only
# bounds a hung connection.
REQUEST_TIMEOUT_S = 15.0
EXIT_REFUSED = 1

tokens_app = typer.Typer(no_args_is_help=True, help="Revoke access tokens at the gateway.")
clients_app = typer.Typer(
    no_args_is_help=True, help="Suspend, unsuspend and list suspended clients (TPPs)."
)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="finward.yaml of the gateway: gives the admin URL (and token) when not passed.",
        dir_okay=False,
        show_default=False,
    ),
]
AdminUrlOption = Annotated[
    str | None,
    typer.Option(
        "--admin-url",
        envvar=ADMIN_URL_ENV,
        help=f"Admin listener URL (default: from -c, else {DEFAULT_ADMIN_URL}).",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=TOKEN_ENV,
        help=f"Admin bearer token (prefer the {TOKEN_ENV} variable: arguments show in ps).",
        show_default=False,
    ),
]


@dataclass(frozen=True)
class AdminTarget:
    url: str
    token: str


def _fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    typer.echo(f"finward: {message}", err=True)
    raise typer.Exit(code)


def resolve_target(config: Path | None, admin_url: str | None, token: str | None) -> AdminTarget:
    """Where the admin listener is and how to authenticate: options, env, then config."""
    from_config_url, from_config_token = None, None
    if config is not None:
        cfg = load_or_exit(config)
        if not cfg.admin.enabled:
            _fail(f"{config}: the admin listener is disabled (admin.enabled)", EXIT_USAGE)
        host = cfg.admin.host
        if host in ("0.0.0.0", "::", ""):  # a wildcard bind: call loopback
            host = "127.0.0.1" if host != "::" else "::1"
        shown = f"[{host}]" if ":" in host else host
        from_config_url = f"http://{shown}:{cfg.admin.port}"
        if cfg.admin.port == 0 and admin_url is None:
            _fail(f"{config}: admin.port is 0 (picked at start): pass --admin-url", EXIT_USAGE)
        from_config_token = cfg.admin.token
    url = (admin_url or from_config_url or DEFAULT_ADMIN_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        _fail(f"--admin-url must be an http(s) URL, not {url!r}", EXIT_USAGE)
    secret = token or from_config_token
    if not secret:
        hint = "pass --token, or -c with admin.token"
        _fail(f"no admin token: set {TOKEN_ENV} ({hint})", EXIT_USAGE)
    return AdminTarget(url, secret)


def call_admin(
    target: AdminTarget, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One admin API call; exits with a clear message on any failure."""
    url = target.url + path
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {target.token}", "Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:  # noqa: S310
            answer: dict[str, Any] = json.loads(resp.read() or b"{}")
            return answer
    except urllib.error.HTTPError as exc:
        _fail(_describe_refusal(exc))
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        _fail(f"admin listener unreachable at {target.url}: {reason}")


def _describe_refusal(exc: urllib.error.HTTPError) -> str:
    try:
        problem = json.loads(exc.read())
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    reason = problem.get("reason") or "unknown"
    if exc.code == 401 and reason == "admin_unauthorized":
        return f"the admin token was refused (HTTP 401); check {TOKEN_ENV} or --token"
    text = problem.get("detail") or problem.get("title") or exc.reason
    return f"refused by the gateway: {text} (HTTP {exc.code}, {reason})"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quoted(identifier: str) -> str:
    # Every byte escaped, "/" included: a client id may be a URL.
    return urllib.parse.quote(identifier, safe="")


@tokens_app.command("revoke")
def revoke(
    jti: Annotated[str, typer.Argument(help="The token's jti claim.", show_default=False)],
    until: Annotated[
        float | None,
        typer.Option(help="Refuse the token until this time (epoch seconds): its exp.", min=0),
    ] = None,
    ttl: Annotated[
        float | None,
        typer.Option(help="Refuse the token for this many seconds from now.", min=1),
    ] = None,
    config: ConfigOption = None,
    admin_url: AdminUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Revoke one access token by its jti, in every worker within about 1 s.

    Without --until or --ttl the gateway keeps the revocation auth.revocation_ttl_s
    (a day by default); pass the token's exp as --until when you know it."""
    if until is not None and ttl is not None:
        _fail("pass --until or --ttl, not both", EXIT_USAGE)
    target = resolve_target(config, admin_url, token)
    body: dict[str, Any] = {"jti": jti}
    if until is not None:
        body["until"] = until
    elif ttl is not None:
        body["until"] = time.time() + ttl
    answer = call_admin(target, "POST", "/admin/tokens/revoke", body)
    typer.echo(f"revoked token {answer.get('jti')} until {_when(float(answer['until']))}")


@clients_app.command("suspend")
def suspend(
    client_id: Annotated[
        str, typer.Argument(help="The client_id, or a TPP organisation id.", show_default=False)
    ],
    reason: Annotated[str, typer.Option(help="Why (kept with the suspension, audited).")] = "",
    config: ConfigOption = None,
    admin_url: AdminUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Refuse every request of a client (403 client_suspended) until unsuspended."""
    target = resolve_target(config, admin_url, token)
    answer = call_admin(
        target, "POST", f"/admin/clients/{_quoted(client_id)}/suspend", {"reason": reason}
    )
    typer.echo(f"suspended client {answer.get('client_id')}")


@clients_app.command("unsuspend")
def unsuspend(
    client_id: Annotated[str, typer.Argument(help="The suspended id.", show_default=False)],
    config: ConfigOption = None,
    admin_url: AdminUrlOption = None,
    token: TokenOption = None,
) -> None:
    """Lift a suspension. Exits 0 also when the client was not suspended (says so)."""
    target = resolve_target(config, admin_url, token)
    answer = call_admin(target, "DELETE", f"/admin/clients/{_quoted(client_id)}/suspend")
    if answer.get("unsuspended"):
        typer.echo(f"unsuspended client {answer.get('client_id')}")
    else:
        typer.echo(f"client {answer.get('client_id')} was not suspended")


@clients_app.command("list")
def list_suspended(
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON answer.")] = False,
    config: ConfigOption = None,
    admin_url: AdminUrlOption = None,
    token: TokenOption = None,
) -> None:
    """List suspended clients: id, since, who suspended them and why."""
    target = resolve_target(config, admin_url, token)
    answer = call_admin(target, "GET", "/admin/clients/suspended")
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    entries = answer.get("suspended") or []
    if not entries:
        typer.echo("no suspended clients")
        return
    for entry in entries:
        typer.echo(
            f"{entry.get('client_id')}\tsince {_when(float(entry.get('since') or 0))}"
            f"\tby {entry.get('actor')}\t{entry.get('reason') or '-'}"
        )


def register(app: typer.Typer) -> None:
    """Add `finward tokens` and `finward clients` to the top-level app."""
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(clients_app, name="clients")
