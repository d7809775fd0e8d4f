"""Serve one exchange: build the request view, run the pipeline, forward or refuse."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from finward.adapters.body import (
    BodyChannel,
    BodyFramingError,
    BodyTooLargeError,
    ClientGoneError,
)
from finward.adapters.clientcert import ClientCertError
from finward.adapters.responses import problem_response, response_head
from finward.adapters.upstream import UpstreamError, UpstreamResponse
from finward.auth.bearer import is_token_in_form
from finward.core.forwarding import (
    FORWARDING_HEADERS,
    HOP_BY_HOP,
    connection_tokens,
    forwarding_headers,
    is_trusted,
    resolve_client_ip,
)
from finward.core.pipeline import Context
from finward.core.request_ids import pick_ids
from finward.decision import Decision
from finward.events import RequestEvent
from finward.http import Headers, RequestView, TlsInfo

log = logging.getLogger("finward.proxy")

if TYPE_CHECKING:
    from finward.adapters.http_server import Exchange, HttpProtocol
    from finward.adapters.worker import Worker, WorkerState

# RFC 9110 §7.2 / RFC 3986 reg-name, IP-literal and port characters only.
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]_")
MAX_HOST_CHARS = 255
_ID_HEADERS = frozenset({"x-request-id", "x-fapi-interaction-id"})
# Upstream software fingerprints (OWASP API8): they help attackers pick exploits.
_FINGERPRINT_HEADERS = frozenset(
    {"server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version"}
)
_NO_BODY_STATUS = frozenset({204, 304})
# Chunked request bodies up to this size are buffered and forwarded with a length.
BUFFER_CHUNKED_BYTES = 1_048_576


def _split_target(target: str) -> tuple[str, str] | None:
    """(path, query) of an origin-form or absolute-form target; None if neither."""
    if "#" in target:
        return None
    if not target.startswith("/"):
        lower = target[:8].lower()
        if not (lower.startswith("http://") or lower.startswith("https://")):
            return None
        rest = target.split("://", 1)[1]
        slash = rest.find("/")
        target = rest[slash:] if slash != -1 else "/"
    path, _, query = target.partition("?")
    return path, query


class _Outcome:
    __slots__ = ("bytes_out", "decided_by", "detail", "reason", "status", "upstream_ms")

    def __init__(self) -> None:
        self.status = 0
        self.reason: str | None = None
        self.detail: str | None = None
        self.upstream_ms: float | None = None
        self.bytes_out = 0
        self.decided_by: str | None = None


async def handle_exchange(
    worker: Worker, state: WorkerState, conn: HttpProtocol, ex: Exchange
) -> None:
    t0 = time.perf_counter()
    started = time.time()
    cfg = state.config
    headers = ex.headers
    rid, iid = pick_ids(_first(headers, "x-request-id"), _first(headers, "x-fapi-interaction-id"))
    trusted = cfg.proxy.trusted_proxies
    cached = conn.peer_trust
    if cached is not None and cached[0] is trusted:  # same peer, same configuration
        peer_trusted = cached[1]
    else:
        peer_trusted = is_trusted(conn.peer_ip, trusted)
        conn.peer_trust = (trusted, peer_trusted)
    client_ip = (
        resolve_client_ip(conn.peer_ip, [v for n, v in headers if n == "x-forwarded-for"], trusted)
        if peer_trusted
        else conn.peer_ip
    )
    split = _split_target(ex.target) if ex.target else None
    path, query = split if split else (ex.target or "", "")
    request = RequestView(
        method=ex.method,
        target=ex.target,
        path=path,
        query=query,
        headers=Headers.from_lowered(headers),
        client_ip=client_ip,
        peer_ip=conn.peer_ip,
        scheme=conn.scheme,
        http_version=ex.http_version,
        tls=conn.tls,
        request_id=rid,
        interaction_id=iid,
        connection_memo=conn.memo,
    )
    ctx = Context()
    out = _Outcome()
    decision = _precheck(conn, ex, request, split is not None, state, peer_trusted)
    try:
        if decision is None:
            pipeline = state.gateway.pipeline
            if pipeline.is_async:
                decision = await pipeline.evaluate_async(request, ctx)
            else:
                decision = pipeline.evaluate(request, ctx)
            out.decided_by = ctx.decided_by
        else:
            out.decided_by = "http"
            ex.keep_alive = False  # a protocol-level refusal ends the connection
        if decision.allowed and ctx.route is not None:
            await _forward(worker, state, conn, ex, request, ctx, out, peer_trusted)
        else:
            _refuse(conn, ex, request, ctx, decision, out)
    finally:
        if ctx.on_done is not None:  # e.g. concurrency slots: freed however it ended
            await _run_on_done(ctx)
    route = ctx.route
    principal = ctx.principal
    worker.emit(
        RequestEvent(
            time=started,
            request_id=rid,
            interaction_id=iid,
            client_ip=client_ip,
            peer_ip=conn.peer_ip,
            method=ex.method,
            path=path,
            status=out.status,
            reason=out.reason,
            decided_by=out.decided_by,
            api=route.mount.api if route else None,
            route=route.operation.path_template if route else None,
            operation_id=route.operation.operation_id if route else None,
            upstream=route.mount.upstream if route else None,
            upstream_latency_ms=out.upstream_ms,
            total_latency_ms=(time.perf_counter() - t0) * 1000.0,
            bytes_in=ex.body.received if ex.body else 0,
            bytes_out=out.bytes_out,
            tls_version=conn.tls.version if conn.tls else None,
            client_cert=request.tls.client_cert_source if request.tls else None,
            findings=tuple(ctx.findings),
            detail=out.detail,
            client_id=principal.client_id if principal is not None else None,
            organisation_id=principal.organisation_id if principal is not None else None,
            token_id=principal.token.jti if principal is not None else None,
            binding=principal.binding if principal is not None else None,
        )
    )


async def _run_on_done(ctx: Context) -> None:
    for callback in ctx.on_done or ():
        try:
            await callback()
        except Exception:  # never let cleanup break the connection; leases expire anyway
            log.exception("an on_done callback failed")


def _first(headers: list[tuple[str, str]], name: str) -> str | None:
    for n, v in headers:
        if n == name:
            return v
    return None


def _precheck(
    conn: HttpProtocol,
    ex: Exchange,
    request: RequestView,
    target_ok: bool,
    state: WorkerState,
    peer_trusted: bool,
) -> Decision | None:
    """HTTP-level refusals that come before any policy."""
    if ex.error_reason is not None:
        return Decision.deny(ex.error_reason)
    if not target_ok:
        return Decision.deny("malformed_request", "unsupported request target form")
    hosts = [v for n, v in ex.headers if n == "host"]
    # RFC 9112 §3.2: exactly one Host in HTTP/1.1, and it must be valid.
    if (ex.http_version != "1.0" and len(hosts) != 1) or len(hosts) > 1:
        return Decision.deny("missing_host")
    if hosts and (len(hosts[0]) > MAX_HOST_CHARS or any(c not in _HOST_CHARS for c in hosts[0])):
        return Decision.deny("invalid_header", "the Host header is not a valid host")
    expect = _first(ex.headers, "expect")
    if expect is not None:
        if expect.strip().lower() != "100-continue":
            return Decision.deny("expectation_failed")
        if ex.body is not None and ex.http_version != "1.0":
            # RFC 9110 §10.1.1: send 100 only once we decided to read the body.
            ex.body.on_first_read = lambda: conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    header_name = state.config.proxy.client_cert_header
    if header_name and state.client_certs is not None and peer_trusted:
        if request.headers.count(header_name) > 1:
            # A terminator that appends instead of replacing would let the client's own
            # copy (a victim's public certificate) come first.
            return Decision.deny("client_cert_invalid", "the certificate header is repeated")
        value = request.headers.get(header_name)
        if value:
            reader = state.client_certs
            memo = conn.cert_memo  # a keep-alive client repeats the same header
            if (
                memo is not None
                and memo[0] is reader
                and memo[1] == value
                and (memo[2][2] >= time.time())
            ):
                der, thumbprint, _ = memo[2]
            else:
                try:
                    entry = reader.read(value)
                except ClientCertError as exc:
                    return Decision.deny("client_cert_invalid", str(exc))
                conn.cert_memo = (reader, value, entry)
                der, thumbprint, _ = entry
            base = request.tls or TlsInfo()
            request.tls = TlsInfo(base.version, base.cipher, der, "header", thumbprint)
    return None


def _refuse(
    conn: HttpProtocol,
    ex: Exchange,
    request: RequestView,
    ctx: Context,
    decision: Decision,
    out: _Outcome,
) -> None:
    if not ex.complete:
        ex.keep_alive = False  # the unread body would be parsed as the next request
    data = problem_response(
        decision,
        request_id=request.request_id,
        interaction_id=request.interaction_id,
        extra_headers=ctx.response_headers,
        keep_alive=ex.keep_alive,
        head_only=ex.method == "HEAD",
        version=ex.http_version,
    )
    conn.write(data)
    out.status = decision.status
    out.reason = decision.reason
    out.detail = decision.detail
    out.bytes_out = len(data)


def upstream_drop_set(
    client_cert_header: str | None, extra: frozenset[str] = frozenset()
) -> frozenset[str]:
    """Inbound headers never forwarded: hop-by-hop, the gateway's own, the cert header,
    and ``extra`` (identity headers the gateway sets, the DPoP proof)."""
    drop = HOP_BY_HOP | FORWARDING_HEADERS | _ID_HEADERS | {"host", "expect"} | extra
    if client_cert_header:
        drop = drop | {client_cert_header.lower()}
    return frozenset(drop)


def _upstream_headers(
    ex: Exchange,
    request: RequestView,
    state: WorkerState,
    ctx: Context,
    peer_trusted: bool,
    authority: str,
) -> list[tuple[str, str]]:
    cfg = state.config
    drop = state.upstream_drop
    if ctx.upstream_drop:
        drop = drop | ctx.upstream_drop
    if any(n == "connection" for n, _ in ex.headers):
        drop = drop | connection_tokens(ex.headers)
    # "_" and "-" name the same variable to CGI/WSGI/PHP upstreams (HTTP_X_FINWARD_PSU_ID):
    # an underscore spelling of a dropped header is dropped too.
    out = [
        (n, v)
        for n, v in ex.headers
        if n not in drop and not ("_" in n and n.replace("_", "-") in drop)
    ]
    if cfg.proxy.add_forwarded_headers:
        out.extend(
            forwarding_headers(
                ex.headers,
                peer_ip=request.peer_ip,
                scheme=request.scheme,
                host=request.headers.get("host"),
                peer_trusted=peer_trusted,
            )
        )
    out.append(("host", authority))
    out.append(("x-request-id", request.request_id))
    out.append(("x-fapi-interaction-id", request.interaction_id))
    out.extend(ctx.upstream_headers)
    return out


async def _request_body(
    ex: Exchange, headers: list[tuple[str, str]], max_body_bytes: int
) -> bytes | AsyncIterator[bytes] | None:
    """The body for the upstream: streamed, or de-chunked when small enough to buffer.

    A chunked body of up to BUFFER_CHUNKED_BYTES is read whole first and sent with a
    Content-Length, so an oversized body is refused before any byte reaches the
    upstream, and the upstream never parses client-chosen chunk framing.
    """
    if ex.body is None:
        return None
    if not ex.chunked:
        return ex.body.__aiter__()
    chunks, complete = await ex.body.read_prefix(min(BUFFER_CHUNKED_BYTES, max_body_bytes))
    if complete:
        data = b"".join(chunks)
        headers.append(("content-length", str(len(data))))
        return data
    return _chain(chunks, ex.body)


async def _chain(prefix: list[bytes], rest: BodyChannel) -> AsyncIterator[bytes]:
    for chunk in prefix:
        yield chunk
    async for chunk in rest:
        yield chunk


def _form_kind(request: RequestView) -> str | None:
    """The form media type a body may be parsed as, however loosely it is spelt."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        return None
    lowered = content_type.lower()
    if "x-www-form-urlencoded" in lowered:
        return "application/x-www-form-urlencoded"
    if "multipart/form-data" in lowered:
        return "multipart/form-data"
    return None


def _form_token_refusal() -> Decision:
    return Decision.deny(
        "token_in_body",
        "access tokens are accepted only in the Authorization header",
        headers=(("WWW-Authenticate", 'Bearer error="invalid_request"'),),
    )


def _body_failure(ex: Exchange) -> Decision | None:
    """The client-side reason an upstream exchange broke, if it was the body's fault."""
    error = ex.body.error if ex.body is not None else None
    if isinstance(error, BodyTooLargeError):
        return Decision.deny("body_too_large")
    if isinstance(error, BodyFramingError):
        return Decision.deny(error.reason, error.detail)
    return None


async def _forward(
    worker: Worker,
    state: WorkerState,
    conn: HttpProtocol,
    ex: Exchange,
    request: RequestView,
    ctx: Context,
    out: _Outcome,
    peer_trusted: bool,
) -> None:
    route = ctx.route
    assert route is not None
    name = route.mount.upstream
    target = state.upstreams.targets[name]
    headers = _upstream_headers(ex, request, state, ctx, peer_trusted, target.authority)
    path = route.upstream_path + ("?" + request.query if request.query else "")
    t_up = time.perf_counter()
    try:
        body: bytes | AsyncIterator[bytes] | None
        form = _form_kind(request) if ctx.check_form_token else None
        if form is not None and ex.body is not None:
            # RFC 6750 §2.2, FAPI-05: read the (bounded) form, refuse an access_token in it.
            body = await ex.body.read_all(state.config.limits.max_body_bytes)
            if is_token_in_form(body, form):
                _refuse(conn, ex, request, ctx, _form_token_refusal(), out)
                out.decided_by = "auth"
                return
            if ex.chunked:
                headers.append(("content-length", str(len(body))))
        else:
            body = await _request_body(ex, headers, state.config.limits.max_body_bytes)
        t_up = time.perf_counter()
        resp = await state.upstreams.request(name, ex.method, path, headers, body)
    except (UpstreamError, ClientGoneError, BodyTooLargeError, BodyFramingError) as exc:
        failure = _body_failure(ex)
        if failure is None and isinstance(exc, UpstreamError):
            failure = Decision.deny(exc.reason, exc.detail)
        if failure is None or conn.closed:
            out.status, out.reason = 499, "client_closed"
            ex.keep_alive = False
            return
        body_failed = _body_failure(ex) is not None
        _refuse(conn, ex, request, ctx, failure, out)
        out.decided_by = "http" if body_failed else "upstream"
        return
    out.upstream_ms = (time.perf_counter() - t_up) * 1000.0
    try:
        await _relay(conn, ex, request, ctx, resp, out)
    finally:
        resp.release()


async def _relay(
    conn: HttpProtocol,
    ex: Exchange,
    request: RequestView,
    ctx: Context,
    resp: UpstreamResponse,
    out: _Outcome,
) -> None:
    status = resp.status
    raw = resp.headers
    drop = HOP_BY_HOP | _ID_HEADERS | _FINGERPRINT_HEADERS | connection_tokens(raw)
    headers = [(n, v) for n, v in raw if n not in drop and n != "content-length"]
    no_body = ex.method == "HEAD" or status in _NO_BODY_STATUS or status < 200
    length = resp.content_length
    chunked = False
    if ex.method == "HEAD" and length is not None:
        headers.append(("content-length", str(length)))
    elif not no_body:
        if length is not None:
            headers.append(("content-length", str(length)))
        elif ex.http_version == "1.0":
            ex.keep_alive = False  # close-delimited body for an HTTP/1.0 client
        else:
            chunked = True
            headers.append(("transfer-encoding", "chunked"))
    headers.append(("x-request-id", request.request_id))
    headers.append(("x-fapi-interaction-id", request.interaction_id))
    headers.extend(ctx.response_headers)
    if not ex.complete:
        ex.keep_alive = False
    if not ex.keep_alive:
        headers.append(("connection", "close"))
    head = response_head(status, headers, ex.http_version)
    out.status = status
    if no_body:
        conn.write(head)
        out.bytes_out = len(head)
        return
    sent = 0
    first = True
    try:
        async for chunk in resp.chunks():
            payload = b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk
            conn.write(head + payload if first else payload)
            first = False
            sent += len(chunk)
            await conn.drain()
    except (UpstreamError, ClientGoneError) as exc:
        ex.keep_alive = False
        if conn.closed or isinstance(exc, ClientGoneError):
            out.status, out.reason = 499, "client_closed"
            return
        reason = "upstream_timeout" if exc.reason == "upstream_timeout" else "upstream_bad_response"
        if first:  # nothing sent yet: the client still gets a proper problem
            _refuse(conn, ex, request, ctx, Decision.deny(reason), out)
            return
        # Headers are out: the only honest signal left is to cut the connection.
        out.reason = reason
        if conn.transport is not None:
            conn.transport.abort()
        out.bytes_out = sent
        return
    if first:
        conn.write(head + (b"0\r\n\r\n" if chunked else b""))
    elif chunked:
        conn.write(b"0\r\n\r\n")
    out.bytes_out = len(head) + sent
