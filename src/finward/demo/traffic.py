"""Send one templated request and describe what came back, over HTTP or raw TCP.

Two transports, chosen by the template alone: an aiohttp session per source address
(keep-alive, like a real TPP client) and a fresh asyncio socket per raw request (for
bytes a client library refuses to produce). Neither knows what a step is "about", so
new attack classes are new scenario data, not new code.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from finward.demo.scenario import RequestTemplate, substitute

REQUEST_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 1 << 20  # bound what a raw response can make us buffer
CHUNK_BYTES = 16 * 1024
# Reasons that mean "finward could not get an answer", not "finward refused the request".
_GATEWAY_FAILURES = frozenset(
    {"upstream_unavailable", "upstream_timeout", "upstream_bad_response", "internal_error"}
)


@dataclass(slots=True)
class Outcome:
    """One request's result as the client saw it (reason refined from the access log)."""

    status: int | None  # None: no HTTP response at all
    reason: str | None  # finward's reason code when finward answered instead of the upstream
    latency_ms: float
    response_bytes: int
    request_id: str | None = None
    error: str | None = None
    body: Any = None  # parsed JSON, kept only when the step captures from it
    # draft-ietf-httpapi-ratelimit-headers: what the limits said about this request
    rate_limit: str | None = None  # the RateLimit header: what is left
    retry_after: str | None = None  # Retry-After, on a refusal

    @property
    def blocked(self) -> bool:
        return self.reason is not None and self.reason not in _GATEWAY_FAILURES

    @property
    def label(self) -> str:
        if self.status is None:
            return "no_response"
        if self.reason is None:
            return "forwarded"
        return "blocked" if self.blocked else "gateway_error"


def can_bind(address: str) -> bool:
    """Whether this host lets us send from `address` (all of 127/8 on Linux, not macOS)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


def _reason_of(content_type: str, body: bytes) -> tuple[str | None, Any]:
    """finward's refusals are RFC 9457 problem documents carrying a `reason` member."""
    parsed: Any = None
    with contextlib.suppress(ValueError):
        parsed = orjson.loads(body) if body else None
    if content_type.startswith("application/problem+json") and isinstance(parsed, dict):
        reason = parsed.get("reason")
        return (reason if isinstance(reason, str) else None), parsed
    return None, parsed


def _render_value(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return substitute(value, variables)
    if isinstance(value, dict):
        return {k: _render_value(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_value(v, variables) for v in value]
    return value


def render_body(template: RequestTemplate, variables: Mapping[str, str]) -> bytes | None:
    if template.json is not None:
        body: bytes | None = orjson.dumps(_render_value(template.json, variables))
    elif template.body is not None:
        body = substitute(template.body, variables).encode()
    else:
        body = None
    if template.pad_to is not None:
        size = int(
            substitute(template.pad_to, variables)
            if isinstance(template.pad_to, str)
            else template.pad_to
        )
        # Trailing whitespace keeps a JSON document valid: only its size is the attack.
        body = (body or b"").ljust(size, b" ")
    return body


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK_BYTES):
        yield data[start : start + CHUNK_BYTES]


class HttpClient:
    """aiohttp sessions keyed by source address; close() releases every connection."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, source: str) -> aiohttp.ClientSession:
        if source not in self._sessions:
            connector = aiohttp.TCPConnector(limit=self._limit, local_addr=(source, 0))
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            # auto_decompress off: we measure bytes on the wire, and never need the text.
            self._sessions[source] = aiohttp.ClientSession(
                connector=connector, timeout=timeout, auto_decompress=False
            )
        return self._sessions[source]

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def send(
        self,
        base_url: str,
        template: RequestTemplate,
        variables: Mapping[str, str],
        source: str,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: str | None = None,
    ) -> Outcome:
        """Send one request; ``extra_headers``/``extra_query`` carry credentials (any
        header of the template with the same name is replaced)."""
        target = substitute(template.path, variables)
        if extra_query:
            target += ("&" if "?" in target else "?") + extra_query
        # encoded=True: send the path byte for byte. yarl would otherwise resolve `..` and
        # re-quote `%2e`, and the traversal attacks would never leave the client.
        url = URL(base_url + target, encoded=True)
        headers = {k: substitute(v, variables) for k, v in template.headers.items()}
        for name, value in (extra_headers or {}).items():
            for existing in [k for k in headers if k.lower() == name.lower()]:
                del headers[existing]
            headers[name] = value
        body = render_body(template, variables)
        if template.json is not None:
            headers.setdefault("Content-Type", "application/json")
        data: Any = _chunks(body) if template.chunked and body is not None else body
        started = time.perf_counter()
        try:
            async with self.session(source).request(
                template.method, url, headers=headers, data=data, allow_redirects=False
            ) as response:
                raw = await response.read()
                latency = (time.perf_counter() - started) * 1000
                reason, parsed = _reason_of(response.headers.get("Content-Type", ""), raw)
                return Outcome(
                    status=response.status,
                    reason=reason,
                    latency_ms=latency,
                    response_bytes=len(raw),
                    request_id=response.headers.get("X-Request-ID"),
                    body=parsed,
                    rate_limit=response.headers.get("RateLimit"),
                    retry_after=response.headers.get("Retry-After"),
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            latency = (time.perf_counter() - started) * 1000
            return Outcome(None, None, latency, 0, error=f"{type(exc).__name__}: {exc}"[:200])


def raw_request_line(template: RequestTemplate, variables: Mapping[str, str]) -> tuple[str, str]:
    """The method and request target of a raw request ("" for what is not there)."""
    assert template.raw is not None
    line = substitute(template.raw, variables).split("\n", 1)[0].rstrip("\r")
    method, _, rest = line.partition(" ")
    return method, rest.rpartition(" ")[0] or rest


async def send_raw(
    host: str,
    port: int,
    template: RequestTemplate,
    variables: Mapping[str, str],
    source: str,
    extra_headers: Mapping[str, str] | None = None,
    extra_query: str | None = None,
) -> Outcome:
    """Write the raw bytes on a new connection and parse the one response that comes back.

    ``extra_headers`` go right after the request line, ``extra_query`` on its target;
    everything else is sent exactly as written.
    """
    assert template.raw is not None
    text = substitute(template.raw, variables)
    if extra_headers or extra_query:
        line, sep, rest = text.partition("\r\n")
        if extra_query:
            method, _, target = line.partition(" ")
            target, _, version = target.rpartition(" ")
            target += ("&" if "?" in target else "?") + extra_query
            line = f"{method} {target} {version}"
        added = "".join(f"{name}: {value}\r\n" for name, value in (extra_headers or {}).items())
        text = line + sep + added + rest
    payload = text.encode("latin-1")
    started = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
            writer.write(payload)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status, headers = _parse_head(head)
            length = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(min(length, MAX_RESPONSE_BYTES)) if length else b""
    except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        latency = (time.perf_counter() - started) * 1000
        what = "connection closed without a response" if _is_eof(exc) else type(exc).__name__
        return Outcome(None, None, latency, 0, error=what)
    except ValueError as exc:  # an unparsable status line or Content-Length
        latency = (time.perf_counter() - started) * 1000
        return Outcome(None, None, latency, 0, error=f"bad response: {exc}"[:200])
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    latency = (time.perf_counter() - started) * 1000
    reason, _ = _reason_of(headers.get("content-type", ""), body)
    return Outcome(
        status=status,
        reason=reason,
        latency_ms=latency,
        response_bytes=len(head) + len(body),
        request_id=headers.get("x-request-id"),
        rate_limit=headers.get("ratelimit"),
        retry_after=headers.get("retry-after"),
    )


def _is_eof(exc: BaseException) -> bool:
    return isinstance(exc, asyncio.IncompleteReadError | ConnectionResetError)


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"status line {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers
