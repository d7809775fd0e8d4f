"""Side-by-side proxy benchmark: the upstream direct, nginx `proxy_pass`, and finward.

Run:  .venv/bin/python bench/run.py --rounds 5 --duration 8      (or `make bench`)

Throughput: wrk (1 thread, 32 connections) against each contender in interleaved rounds
(round 1: direct, nginx, finward; round 2: ...), a short warmup before every measurement.
Latency: an open-loop generator (this file, `_loadgen` mode) sends a fixed 1,000 req/s over
keep-alive connections to each contender in interleaved rounds and records every latency
from the request's *scheduled* send time, so a stall is not hidden (coordinated omission).

CPU placement on a 2-core machine: the proxy under test (nginx, finward) on core 1; the load
generator and the upstream (an nginx returning a ~1 KB JSON body from memory) on core 0.
"direct" therefore shares core 0 between wrk and the upstream.

Results: a table on stdout and JSON in bench/results/<timestamp>.json; `--write-docs` also
rewrites the "## Proxy throughput and latency" section of docs/benchmarks.md. Every server
listens on 127.0.0.1 only, every load run is bounded in time, and every process started
here is killed (by process group) on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import authkit
from authkit import AuthKit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
DOC = REPO / "docs" / "benchmarks.md"
SECTION = "## Proxy throughput and latency"
LOAD_CORE, PROXY_CORE = "0", "1"
CONTENDERS = (
    "direct",
    "nginx",
    "finward",
    "finward-limits-memory",
    "finward-limits-redis",
    "finward-mtls",
    "finward-dpop",
    "finward-dpop-ps256",
)
BASE_CONTENDERS = ("direct", "nginx", "finward")  # results files from before auth
# The DPoP contenders and the algorithm of the proofs their client signs.
DPOP_CONTENDERS = {"finward-dpop": "ES256", "finward-dpop-ps256": "PS256"}
AUTH_CONTENDERS = ("finward-mtls", *DPOP_CONTENDERS)
# Rate-limit contenders (issue 5) and their limit store: the same three limits each.
LIMIT_CONTENDERS = {"finward-limits-memory": "memory", "finward-limits-redis": "redis"}
# Contenders compared with passthrough finward (paired per round).
VS_PASSTHROUGH = (*LIMIT_CONTENDERS, *AUTH_CONTENDERS)
CONTENDER_PROCESS = {
    "direct": "nginx-upstream",
    "nginx": "nginx-proxy",
    **{name: name for name in ("finward", *LIMIT_CONTENDERS, *AUTH_CONTENDERS)},
}
# Issue item 11: req/s of each authenticated contender relative to passthrough finward.
AUTH_TARGETS = {"finward-mtls": 0.85, "finward-dpop": 0.50, "finward-dpop-ps256": 0.50}
# Issue 5, item 9: memory limits cost at most 5% of passthrough throughput. The Redis
# store's requirement is structural (one round trip per request for all its limits): its
# throughput ratio is reported without a target, its EVALSHA calls per request are counted.
LIMIT_TARGETS = {"finward-limits-memory": 0.95}
TARGETS = {**AUTH_TARGETS, **LIMIT_TARGETS}
LIMITS_SECTION = "## Rate-limit cost"
LIMIT_HEADER = "X-Client"  # the sliding window's key; wrk sends one constant value
LIMIT_CLIENT = "bench-client-1"
# Large enough that wrk is never refused: GCRA 1,000,000/s; a Berlin calendar day of 10^9;
# a sliding 60 s window of 1,000,000 (a log of one stamp per request: at ~10,000 req/s a
# 6-8 s run leaves ~80,000 stamps, a full minute of load would leave ~600,000).
BENCH_LIMITS = (
    ("burst", "gcra", "limit: 1000000, period_s: 1, burst: 1000000, key: [ip]"),
    (
        "daily",
        "fixed_window",
        "limit: 1000000000, calendar: day, timezone: Europe/Berlin, key: [ip]",
    ),
    ("minute", "sliding_window", f'limit: 1000000, period_s: 60, key: ["header:{LIMIT_HEADER}"]'),
)
BENCH_LIMITS_NAMES = ", ".join(n for n, _, _ in BENCH_LIMITS)
# Commands limits.lua calls inside Redis (counted in INFO commandstats like any other, but
# they are no round trips): what is left after them and our own INFO is what clients sent.
SCRIPT_COMMANDS = frozenset(
    re.findall(
        r"(?:redis\.p?call|read)\('([A-Z]+)'",
        (REPO / "src" / "finward" / "limits" / "limits.lua").read_text(),
    )
)
AUTH_TARGET_TEXT = {
    "finward-mtls": "JWT + mTLS binding (verified-token cache) costs ≤ 15% of passthrough",
    "finward-dpop": "JWT + DPoP, ES256 proofs (one P-256 ECDSA verification per request) "
    "≥ 0.5x passthrough",
    "finward-dpop-ps256": "JWT + DPoP, PS256 proofs (one RSA-2048 PSS verification per "
    "request) ≥ 0.5x passthrough",
}
# How the tables label each authenticated contender.
AUTH_LABEL = {
    "finward-mtls": "finward-mtls (ES256 token, cert header)",
    "finward-dpop": "finward-dpop (ES256 proofs)",
    "finward-dpop-ps256": "finward-dpop-ps256 (PS256 proofs)",
}
PROOF_MARGIN = 3.0  # DPoP proofs made per expected request
PROOF_GUESS_RPS = 4000.0  # expected DPoP contender req/s before anything was measured
REQUEST_PATH = "/v1/accounts/DE89370400440532013000"
READY = re.compile(r"finward listening on http://127\.0\.0\.1:(\d+)\b.*\(pid (\d+)\)")
WRK_MARK = "FINWARD_BENCH "
IDLE_THRESHOLD = 0.85  # a round starts when the machine is at least this idle (or gave up)
DRAIN_S = 10.0  # the latency generator waits this long past its schedule for late answers
# wrk's `done` hook: one JSON line with the figures we need (latencies in microseconds).
# `setup` keeps the threads so that `done` can read how many DPoP proofs each one used.
WRK_LUA = """
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local e = summary.errors
  local used, loaded = 0, 0
  for _, t in ipairs(threads) do
    used = used + (t:get("proofs_used") or 0)
    loaded = loaded + (t:get("proofs_loaded") or 0)
  end
  io.write(string.format(
    'FINWARD_BENCH {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%.1f,"p90_us":%.1f,'
    .. '"p99_us":%.1f,"p999_us":%.1f,"max_us":%.1f,"mean_us":%.1f,"err_connect":%d,'
    .. '"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,'
    .. '"proofs_used":%d,"proofs_loaded":%d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max,
    latency.mean, e.connect, e.read, e.write, e.status, e.timeout, used, loaded))
end
"""
# finward-mtls: the same token and client certificate on every request (wrk's static
# request), so finward's verified-token and parsed-certificate caches hit.
WRK_STATIC_HEADERS_LUA = """
wrk.headers[%s] = %s
"""
# DPoP contenders: every request carries the next never-used proof from the file given
# after `--`; when they run out, requests go without one (and are refused: non-2xx).
WRK_DPOP_LUA = """
proofs_used, proofs_loaded = 0, 0
local proofs = {}
local authorization = %s
init = function(args)
  for line in io.lines(args[1]) do
    proofs_loaded = proofs_loaded + 1
    proofs[proofs_loaded] = line
  end
end
request = function()
  local headers = {Authorization = authorization}
  if proofs_used < proofs_loaded then
    proofs_used = proofs_used + 1
    headers["DPoP"] = proofs[proofs_used]
  end
  return wrk.format(nil, nil, headers)
end
"""


def account_body() -> bytes:
    """A deterministic Berlin-Group-shaped account document of about 1 KB."""
    doc: dict[str, object] = {
        "account": {
            "resourceId": "3dc3d5b3-7023-4848-9853-f5400a64e80f",
            "iban": "DE89370400440532013000",
            "currency": "EUR",
            "name": "Main account",
            "product": "Girokonto",
            "cashAccountType": "CACC",
            "status": "enabled",
            "bic": "COBADEFFXXX",
            "usage": "PRIV",
            "balances": [
                {
                    "balanceAmount": {"currency": "EUR", "amount": f"{1000 + i}.{i:02d}"},
                    "balanceType": kind,
                    "referenceDate": "2026-11-29",
                }
                for i, kind in enumerate(("closingBooked", "expected", "interimAvailable"))
            ],
            "_links": {
                "balances": {"href": "/v1/accounts/3dc3d5b3-7023-4848-9853-f5400a64e80f/balances"},
                "transactions": {
                    "href": "/v1/accounts/3dc3d5b3-7023-4848-9853-f5400a64e80f/transactions"
                },
            },
        }
    }
    body = json.dumps(doc, separators=(",", ":"))
    body = body[:-2] + ',"note":"' + "x" * max(0, 1024 - len(body) - 10) + '"}}'
    assert not set("$'\\;") & set(body), "the body is pasted into an nginx string literal"
    return body.encode()


# -- processes --------------------------------------------------------------------------


class Processes:
    """Servers started by the harness; each in its own session, killed by process group."""

    def __init__(self, lifetime_s: float) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        # Backstop if this harness is killed outright: every server ends itself by then.
        self.lifetime = ["timeout", "-k", "10", f"{lifetime_s:.0f}"]

    def start(self, name: str, argv: list[str], cpu: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*self.lifetime, "taskset", "-c", cpu, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()

    def pid(self, name: str) -> int:
        return next(proc.pid for started, proc in self.procs if started == name)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in a process group (from /proc)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ... utime stime
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_idle_fraction(interval: float = 1.0) -> float:
    """Share of the whole machine's CPU time that was idle over `interval` seconds."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    idle0, total0 = sample()
    time.sleep(interval)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_for_idle(max_wait_s: float, threshold: float = IDLE_THRESHOLD) -> float:
    """Wait (at most `max_wait_s`) until others' work leaves the machine; return idle share."""
    deadline = time.monotonic() + max_wait_s
    idle = cpu_idle_fraction()
    while idle < threshold and time.monotonic() < deadline:
        idle = cpu_idle_fraction(2.0)
    if idle < threshold:
        print(f"  machine still busy ({1 - idle:.0%} CPU in use by others); going on", flush=True)
    return idle


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(
    proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float, expect: int = 200
) -> None:
    """Wait until `url` answers with status `expect` (401 for an authenticated API)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited ({proc.returncode}):\n{_tail(log)}")
        status, _ = http_get(url, {}, timeout=2)
        if status == expect:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s:\n{_tail(log)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_nginx(procs: Processes, template: str, run_dir: Path, cpu: str, **values: str) -> int:
    prefix = run_dir / template
    prefix.mkdir()
    port = free_port()
    conf = (BENCH / "nginx" / f"{template}.conf").read_text()
    for key, value in {"RUN_DIR": str(prefix), "PORT": str(port), **values}.items():
        conf = conf.replace(f"@{key}@", value)
    leftover = re.search(r"@[A-Z_]+@", conf)
    assert leftover is None, f"unfilled placeholder {leftover.group()} in {template}.conf"
    (prefix / "nginx.conf").write_text(conf)
    log = prefix / "stderr.log"
    argv = ["nginx", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", "nginx.conf"]
    proc = procs.start(f"nginx-{template}", argv, cpu, log)
    wait_until_ready(proc, f"http://127.0.0.1:{port}{REQUEST_PATH}", log, timeout=15)
    return port


class RedisForLimits:
    """The Redis server of finward-limits-redis and its command counters.

    By default a private `redis-server` on a free port (no persistence), on the load core
    beside the upstream: INFO commandstats then counts finward's commands alone, and its
    CPU time is read from /proc. With `--redis-url` a shared server is used instead (keys
    under a fresh prefix, deleted at the end); its counters then include others' commands.
    """

    def __init__(self, procs: Processes, run_dir: Path, url: str | None) -> None:
        import redis  # finward's own dependency; imported only when a Redis contender runs

        self.prefix = f"finward-bench-{os.urandom(4).hex()}"
        self.private = url is None
        self.pgid: int | None = None
        if url is None:
            port = free_port()
            data = run_dir / "redis"
            data.mkdir()
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
            argv += ["--save", "", "--appendonly", "no", "--dir", str(data)]
            proc = procs.start("redis", argv, LOAD_CORE, data / "stderr.log")
            self.pgid = proc.pid
            url = f"redis://127.0.0.1:{port}/0"
        self.base_url = url
        self.client = redis.Redis.from_url(url, socket_timeout=5)
        deadline = time.monotonic() + 15
        while True:
            try:
                self.client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.version = str(self.client.info("server")["redis_version"])

    @property
    def store_url(self) -> str:
        """The `rate_limits.store` URL (Redis's clock, the default `clock=server`)."""
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}prefix={self.prefix}"

    def snapshot(self) -> dict[str, float]:
        stats = self.client.info("commandstats")
        out = {k.removeprefix("cmdstat_"): float(v["calls"]) for k, v in stats.items()}
        out["_cpu"] = 0.0 if self.pgid is None else group_cpu_seconds(self.pgid)
        out["_memory"] = float(self.client.info("memory")["used_memory"])
        return out

    def delta(self, before: dict[str, float], requests: float, seconds: float) -> dict:
        """Commands per request between two snapshots (our INFO calls left out)."""
        after = self.snapshot()
        calls = {
            k: after[k] - before.get(k, 0.0)
            for k in after
            if not k.startswith("_") and k != "info" and after[k] - before.get(k, 0.0) > 0
        }
        top = {k: v for k, v in calls.items() if k.upper() not in SCRIPT_COMMANDS}
        inner = {k: v for k, v in calls.items() if k.upper() in SCRIPT_COMMANDS}
        n = max(1.0, requests)
        return {
            "redis_evalsha_per_request": calls.get("evalsha", 0.0) / n,
            "redis_top_level_per_request": sum(top.values()) / n,
            "redis_script_commands_per_request": sum(inner.values()) / n,
            "redis_cpu": (after["_cpu"] - before["_cpu"]) / seconds if self.private else -1.0,
            "redis_used_memory_mb": after["_memory"] / 2**20,
            "redis_calls": calls,  # type: ignore[dict-item]
        }

    def cleanup(self) -> None:
        for key in self.client.scan_iter(match=f"{self.prefix}:*", count=1000):
            self.client.unlink(key)
        self.client.close()


def rss_mb(pid: int) -> float:
    """Resident set size of one process, in MiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def http_get(url: str, headers: dict[str, str], timeout: float = 5) -> tuple[int, bytes]:
    """GET `url`; (status, body), also for 4xx/5xx; (0, b"") when nothing answered."""
    status, _, body = http_get_full(url, headers, timeout)
    return status, body


def http_get_full(
    url: str, headers: dict[str, str], timeout: float = 5
) -> tuple[int, dict[str, str], bytes]:
    """GET `url`; (status, response headers with lower-case names, body)."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
    except OSError:
        return 0, {}, b""


def finward_auth_yaml(name: str, kit: AuthKit, upstream_port: int) -> tuple[str, str]:
    """(top-level YAML, the API's `auth:` mapping) for an authenticated contender."""
    method = "mtls" if name == "finward-mtls" else "dpop"  # DPoP: every default alg
    top = (
        "auth:\n"
        "  issuers:\n"
        f"    - issuer: {json.dumps(authkit.ISSUER)}\n"
        f'      jwks_uri: "http://127.0.0.1:{upstream_port}/jwks"\n'
        "      allow_insecure_loopback: true\n"
        f"  audiences: [{json.dumps(authkit.AUDIENCE)}]\n"
        f"  public_base_url: {json.dumps(authkit.PUBLIC_BASE_URL)}\n"
    )
    if method == "mtls":
        top += (
            "proxy:\n"
            "  trusted_proxies: [127.0.0.1/32]\n"
            f"  client_cert_header: {authkit.CERT_HEADER}\n"
            f"  client_cert_ca: {json.dumps(str(kit.ca_path))}\n"
        )
    return top, f"{{sender_constraint: required, sender_method: {method}}}"


def finward_limits_yaml(store: str) -> str:
    """`rate_limits` with the three bench limits (BENCH_LIMITS) on `store`."""
    lines = ["rate_limits:", f"  store: {json.dumps(store)}", "  headers: true", "  limits:"]
    lines += [f"    - {{name: {n}, algorithm: {a}, {rest}}}" for n, a, rest in BENCH_LIMITS]
    return "\n".join(lines) + "\n"


def start_finward(
    procs: Processes,
    run_dir: Path,
    upstream_port: int,
    cpu: str,
    name: str = "finward",
    kit: AuthKit | None = None,
    limit_store: str | None = None,
) -> tuple[int, int]:
    """Start `finward serve --workers 1`; return its port and the Python process's pid."""
    prefix = run_dir / name
    prefix.mkdir()
    config = prefix / "finward.yaml"
    top, api_auth = ("", "") if kit is None else finward_auth_yaml(name, kit, upstream_port)
    if limit_store is not None:
        top += finward_limits_yaml(limit_store)
    config.write_text(
        "version: 1\n"
        "listen: {host: 127.0.0.1, port: 0}\n"
        "admin: {enabled: true, host: 127.0.0.1, port: 0}\n"
        "upstreams:\n"
        f'  bank: {{url: "http://127.0.0.1:{upstream_port}"}}\n'
        "apis:\n"
        "  - name: bench\n"
        f"    spec: {json.dumps(str(BENCH / 'bench-api.yaml'))}\n"
        "    upstream: bank\n"
        + (f"    auth: {api_auth}\n" if api_auth else "")
        + top
        + f"logging: {{access_log: {json.dumps(str(prefix / 'access.log'))}, level: warning}}\n"
    )
    log = prefix / "stderr.log"
    finward = Path(sys.executable).with_name("finward")
    proc = procs.start(name, [str(finward), "serve", "-c", str(config), "-w", "1"], cpu, log)
    expect = 200 if kit is None else 401  # no credentials: refused
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = READY.search(log.read_text(errors="replace"))
        if found:
            port = int(found.group(1))
            url = f"http://127.0.0.1:{port}{REQUEST_PATH}"
            wait_until_ready(proc, url, log, timeout=15, expect=expect)
            return port, int(found.group(2))
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited ({proc.returncode}):\n{_tail(log)}")
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready after 60s:\n{_tail(log)}")


def check_contender(name: str, port: int, body: bytes, kit: AuthKit | None = None) -> None:
    """The contender answers the upstream body; an authenticated one only with credentials."""
    url = f"http://127.0.0.1:{port}{REQUEST_PATH}"

    def expect(what: str, headers: dict[str, str], status: int) -> None:
        got, content = http_get(url, headers)
        if got != status or (status == 200 and content != body):
            detail = content[:300].decode(errors="replace")
            raise RuntimeError(f"{name}: {what}: answered {got}, not {status}: {detail}")

    if name in LIMIT_CONTENDERS:
        for attempt in ("first", "second"):
            got, headers, content = http_get_full(url, {LIMIT_HEADER: LIMIT_CLIENT})
            policy, state = headers.get("ratelimit-policy", ""), headers.get("ratelimit", "")
            missing = [n for n, _, _ in BENCH_LIMITS if f'"{n}"' not in policy + state]
            if got != 200 or content != body or not policy or not state or missing:
                raise RuntimeError(
                    f"{name}: {attempt} GET: answered {got}, RateLimit-Policy {policy!r}, "
                    f"RateLimit {state!r} (want 200, the body and all of {BENCH_LIMITS_NAMES})"
                )
        return
    if name not in AUTH_CONTENDERS:
        expect("plain GET", {}, 200)
        return
    assert kit is not None
    expect("no credentials", {}, 401)
    if name == "finward-mtls":
        headers = kit.mtls_headers()
        expect("token and its certificate", headers, 200)
        expect("token and its certificate, again (cached)", headers, 200)
        expect("token without the certificate", {"Authorization": headers["Authorization"]}, 401)
        expect("certificate without the token", {authkit.CERT_HEADER: kit.cert_header}, 401)
        return
    alg = DPOP_CONTENDERS[name]
    other = next(a for a in DPOP_CONTENDERS.values() if a != alg)
    headers = kit.dpop_headers(alg)
    proof = kit.proof(REQUEST_PATH, alg)
    expect(f"token and a fresh {alg} proof", {**headers, "DPoP": proof}, 200)
    expect("token and the same proof again (replay)", {**headers, "DPoP": proof}, 401)
    expect("token without a proof", headers, 401)
    expect(
        f"token and a proof by the other client's {other} key",
        {**headers, "DPoP": kit.proof(REQUEST_PATH, other)},
        401,
    )
    fresh = kit.proof(REQUEST_PATH, alg)
    expect(f"token and another fresh {alg} proof", {**headers, "DPoP": fresh}, 200)


# -- load -------------------------------------------------------------------------------


def run_wrk(
    port: int, seconds: float, lua: Path, connections: int, script_args: tuple[str, ...] = ()
) -> dict[str, float]:
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    argv += ["--timeout", "5s", "-s", str(lua), f"http://127.0.0.1:{port}{REQUEST_PATH}"]
    if script_args:
        argv += ["--", *script_args]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith(WRK_MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")
    raw = json.loads(line[len(WRK_MARK) :])
    errors = sum(v for k, v in raw.items() if k.startswith("err_"))
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "p999_ms": raw["p999_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "requests": raw["requests"],
        "bytes_per_response": raw["bytes"] / max(1, raw["requests"]),
        "errors": errors,
        "non_2xx": raw["err_status"],  # wrk counts status >= 400 here
        "proofs_used": raw["proofs_used"],
        "proofs_loaded": raw["proofs_loaded"],
    }


class WrkScripts:
    """The wrk script for each contender; fresh DPoP proof files for the DPoP ones."""

    def __init__(self, run_dir: Path, kit: AuthKit | None) -> None:
        self.run_dir, self.kit = run_dir, kit
        self.plain = run_dir / "report.lua"
        self.plain.write_text(WRK_LUA)
        self.lua = {name: self.plain for name in BASE_CONTENDERS}
        limits = run_dir / "limits.lua"
        limits.write_text(
            WRK_STATIC_HEADERS_LUA % (json.dumps(LIMIT_HEADER), json.dumps(LIMIT_CLIENT)) + WRK_LUA
        )
        self.lua |= {name: limits for name in LIMIT_CONTENDERS}
        if kit is not None:
            mtls = run_dir / "mtls.lua"
            mtls.write_text(
                "".join(
                    WRK_STATIC_HEADERS_LUA % (json.dumps(k), json.dumps(v))
                    for k, v in kit.mtls_headers().items()
                )
                + WRK_LUA
            )
            self.lua["finward-mtls"] = mtls
            for name, alg in DPOP_CONTENDERS.items():
                dpop = run_dir / f"{name}.lua"
                dpop.write_text(
                    WRK_DPOP_LUA % json.dumps(kit.dpop_headers(alg)["Authorization"]) + WRK_LUA
                )
                self.lua[name] = dpop
        self.batch = 0

    def proofs(self, name: str, seconds: float, expected_rps: float) -> tuple[Path, int, float]:
        """A new file of never-used proofs for `seconds` at `expected_rps`; (path, count, s)."""
        assert self.kit is not None
        self.batch += 1
        count = math.ceil(PROOF_MARGIN * expected_rps * seconds) + 500
        path = self.run_dir / f"proofs-{self.batch}.txt"
        for old in self.run_dir.glob("proofs-*.txt"):
            old.unlink()  # each file is used once; they add up to hundreds of MB
        took = self.kit.write_proofs(path, count, REQUEST_PATH, DPOP_CONTENDERS[name])
        return path, count, took


def measure(
    name: str,
    port: int,
    scripts: WrkScripts,
    warmup: float,
    seconds: float,
    connections: int,
    expected_rps: float,
    cpu_group: int | None = None,
    measured_rps: float = 0.0,
    python_pid: int | None = None,
    redis: RedisForLimits | None = None,
) -> dict[str, float]:
    """A warmup and a measured wrk run; for a DPoP contender each gets its own fresh proofs.

    A DPoP contender's warmup proofs are sized from `expected_rps`, the measured run's
    from the larger of the rate the warmup reached and `measured_rps` (an earlier round's).
    """
    lua = scripts.lua[name]
    made: dict[str, float] = {}
    if name in DPOP_CONTENDERS:
        path, count, took = scripts.proofs(name, warmup, expected_rps)
        warm = run_wrk(port, warmup, lua, connections, (str(path),))
        warm_gen = took
        # Made after the warmup; a proof is at most (making time + `seconds`) old when used.
        path, count, took = scripts.proofs(name, seconds, max(warm["rps"], measured_rps))
        made = {
            "proofs_made": count,
            "proof_gen_s": took,
            "warmup_proof_gen_s": warm_gen,
            "warmup_rps": warm["rps"],
            "warmup_non_2xx": warm["non_2xx"],
        }
        args: tuple[str, ...] = (str(path),)
    else:
        run_wrk(port, warmup, lua, connections)
        args = ()
    counters = None if redis is None else redis.snapshot()
    cpu = 0.0 if cpu_group is None else group_cpu_seconds(cpu_group)
    r = run_wrk(port, seconds, lua, connections, args)
    if cpu_group is not None:
        r["server_cpu"] = (group_cpu_seconds(cpu_group) - cpu) / seconds
        r["rps_per_core"] = r["rps"] / max(r["server_cpu"], 0.01)
    if redis is not None and counters is not None:
        r |= redis.delta(counters, r["requests"], seconds)
    if python_pid is not None:
        r["rss_mb"] = rss_mb(python_pid)
    r |= made
    if name in DPOP_CONTENDERS and r["proofs_used"] >= r["proofs_loaded"]:
        r["proofs_exhausted"] = 1
    return r


def run_loadgen(
    port: int, rate: int, seconds: float, connections: int, credentials: Path | None = None
) -> dict[str, float]:
    argv = ["taskset", "-c", LOAD_CORE, sys.executable, __file__, "_loadgen", str(port)]
    argv += [str(rate), f"{seconds:g}", str(connections)]
    if credentials is not None:
        argv.append(str(credentials))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def loadgen_credentials(name: str, kit: AuthKit | None, run_dir: Path, total: int) -> Path | None:
    """A JSON file telling the latency generator which headers (and proofs) to send."""
    if name not in AUTH_CONTENDERS:
        return None
    assert kit is not None
    spec: dict[str, object] = {"headers": kit.mtls_headers(), "proofs": None}
    if name in DPOP_CONTENDERS:
        alg = DPOP_CONTENDERS[name]
        proofs = run_dir / "latency-proofs.txt"
        kit.write_proofs(proofs, total + 1000, REQUEST_PATH, alg)
        spec = {"headers": kit.dpop_headers(alg), "proofs": str(proofs)}
    path = run_dir / f"latency-{name}.json"
    path.write_text(json.dumps(spec))
    return path


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        await reader.readexactly(int(lower[at + 17 : end]))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while size := int((await reader.readline()).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        while (await reader.readline()) != b"\r\n":
            pass
    return status


async def open_loop(
    port: int, rate: int, seconds: float, connections: int, credentials: dict | None = None
) -> dict[str, float]:
    """Send `rate` req/s for `seconds` over keep-alive connections; never wait for answers.

    `credentials`: {"headers": {...}} sent with every request and, with "proofs" (a file,
    one DPoP proof a line), a never-used proof in each request's `DPoP` header.
    """
    head = f"GET {REQUEST_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    for key, value in ((credentials or {}).get("headers") or {}).items():
        head += f"{key}: {value}\r\n"
    request = (head + "\r\n").encode()
    proofs: list[bytes] = []
    if credentials and credentials.get("proofs"):
        proofs = Path(credentials["proofs"]).read_bytes().split()
    next_proof = 0

    def next_request() -> bytes:
        nonlocal next_proof
        if not proofs or next_proof >= len(proofs):
            return request  # no proofs, or none left (then refused: counted as an error)
        next_proof += 1
        return head.encode() + b"DPoP: " + proofs[next_proof - 1] + b"\r\n\r\n"

    queue: asyncio.Queue[float | None] = asyncio.Queue()
    corrected: list[float] = []  # from the scheduled send time
    service: list[float] = []  # from the moment the request was written
    failures = unanswered = 0
    total = int(rate * seconds)
    start = time.perf_counter() + 0.25  # after the connections are open
    give_up = start + seconds + DRAIN_S  # requests still queued then are counted, not sent

    async def connection() -> None:
        nonlocal failures, unanswered
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (due := await queue.get()) is not None:
            sent = time.perf_counter()
            if sent > give_up:
                unanswered += 1
                continue
            try:
                writer.write(next_request())
                status = await asyncio.wait_for(_read_response(reader), timeout=5)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                failures += 1
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            done = time.perf_counter()
            if status != 200:
                failures += 1
                continue
            corrected.append(done - due)
            service.append(done - sent)
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(due)
    sent_for = time.perf_counter() - start
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*workers), timeout=DRAIN_S + 10)
    return {
        "scheduled": total,
        "completed": len(corrected),
        "errors": failures + unanswered,
        "unanswered": unanswered,
        "offered_rps": total / sent_for,
        # A request that failed or never got an answer counts as infinitely slow.
        **_percentiles("", corrected + [math.inf] * (failures + unanswered)),
        **_percentiles("service_", service + [math.inf] * (failures + unanswered)),
    }


def _percentiles(prefix: str, seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds) or [float("nan")]

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {f"{prefix}p50_ms": at(0.50), f"{prefix}p99_ms": at(0.99), f"{prefix}max_ms": at(1.0)}


def loadgen_main(args: list[str]) -> None:
    port, rate, seconds, connections = int(args[0]), int(args[1]), float(args[2]), int(args[3])
    credentials = json.loads(Path(args[4]).read_text()) if len(args) > 4 else None
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(json.dumps(runner(open_loop(port, rate, seconds, connections, credentials))))


# -- profile (optional; needs py-spy, which is not a project dependency) -----------------


def profile_finward(
    pid: int,
    port: int,
    seconds: float,
    run_dir: Path,
    scripts: WrkScripts,
    name: str = "finward",
    expected_rps: float = PROOF_GUESS_RPS,
) -> list[str]:
    """Sample a finward contender with py-spy under wrk load; summarise where time goes."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return ["py-spy not found: `.venv/bin/pip install py-spy` to profile"]
    raw = run_dir / f"{name}-profile.txt"
    args: tuple[str, ...] = ()
    if name in DPOP_CONTENDERS:  # made before py-spy starts: not in the samples
        args = (str(scripts.proofs(name, seconds, expected_rps)[0]),)
    argv = ["taskset", "-c", LOAD_CORE, spy, "record", "--pid", str(pid), "--format", "raw"]
    argv += ["--function", "--rate", "250", "--nonblocking", "-o", str(raw)]
    argv += ["--duration", f"{seconds + 1:g}"]
    spy_proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        wrk = run_wrk(port, seconds, scripts.lua[name], 32, args)
        spy_proc.wait(timeout=seconds + 30)
    finally:
        if spy_proc.poll() is None:
            spy_proc.kill()
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    by_package: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames, count = stack.split(";"), int(count_text)
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        package = _package(frames[-1])
        by_package[package] = by_package.get(package, 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    report = [
        f"py-spy on {name}: {total} busy samples while wrk ran at {wrk['rps']:,.0f} req/s"
        + (f" ({wrk['non_2xx']:.0f} non-2xx)" if wrk["non_2xx"] else "")
    ]
    report.append("self time by package (leaf frame):")
    report += _top(by_package, total, 8)
    report.append("self time by function:")
    report += _top(own, total, 15)
    report.append("inclusive time, finward functions:")
    entry = ("<module>", "main (", "serve (", "Runner.run", "run (")
    ours = {f: n for f, n in inclusive.items() if "finward/" in f and not f.startswith(entry)}
    report += _top(ours, total, 12)
    return report


def _package(frame: str) -> str:
    """`StreamWriter._write (aiohttp/http_writer.py:97)` -> `aiohttp`; `uuid.py:721` -> `uuid`."""
    if not frame.strip():
        return "(native code)"
    where = frame.rpartition("(")[2].rstrip(")").rpartition(":")[0] or frame
    parts = where.split("/")
    if parts[0] == "finward" and len(parts) > 2:
        return f"finward.{parts[1]}"
    return parts[0].removesuffix(".py")


def _top(counts: dict[str, int], total: int, n: int) -> list[str]:
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:n]
    return [
        f"  {100 * count / max(1, total):5.1f}%  {name.strip() or '(native code)'}"
        for name, count in ranked
    ]


# -- report -----------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break

    def version(argv: list[str], pattern: str) -> str:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        found = re.search(pattern, out.stdout + out.stderr)
        return found.group(0) if found else "unknown"

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30
        ).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD")
    if rev and git("status", "--porcelain", "--", "src"):
        rev += " with uncommitted changes in src/"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": version(["nginx", "-v"], r"nginx/\S+"),
        "wrk": "wrk " + version(["wrk", "--version"], r"(?<=/)\d[\w.+~-]*"),
        "git": rev or "unknown",
        "loadavg_at_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def summarise(rounds: list[dict[str, dict[str, float]]], keys: tuple[str, ...]) -> dict:
    names = rounds[0].keys()
    return {
        name: {key: statistics.median(r[name][key] for r in rounds) for key in keys}
        for name in names
    }


def paired_median(rounds: list[dict[str, dict[str, float]]], a: str, b: str, key: str) -> float:
    """Median over rounds of a/b (key 'rps') or a-b (latencies), each pair from one round."""
    if key.startswith("rps"):
        return statistics.median(r[a][key] / r[b][key] for r in rounds)
    return statistics.median(r[a][key] - r[b][key] for r in rounds)


def _names(result: dict) -> tuple[str, ...]:
    """The contenders a result measured (files from before --contenders: the first three)."""
    return tuple(result["config"].get("contenders", BASE_CONTENDERS))


def throughput_table(result: dict) -> list[str]:
    t = result["throughput"]
    med, ratio, per_core = t["median"], t["ratio_to_nginx"], t["per_core_ratio_to_nginx"]
    lines = [
        "| contender | req/s | p50 ms | p99 ms | ratio to nginx | server CPU "
        "| req/s per server core | per-core ratio to nginx | non-2xx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in _names(result):
        m = med[name]
        r, pc = ratio.get(name), per_core.get(name)
        lines.append(
            f"| {name} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} "
            f"| {'—' if r is None else f'{r:.3f}x'} | {m['server_cpu']:.0%} "
            f"| {m['rps_per_core']:,.0f} | {'—' if pc is None else f'{pc:.3f}x'} "
            f"| {_non_2xx(result, name)} |"
        )
    return lines


def _non_2xx(result: dict, name: str) -> str:
    """Total non-2xx responses (and other errors) over every round's measured run."""
    rounds = result["throughput"]["rounds"]
    non = sum(r[name].get("non_2xx", 0) for r in rounds)
    other = sum(r[name]["errors"] for r in rounds) - non
    return f"{non:,.0f}" + (f" (+{other:,.0f} socket errors)" if other else "")


def _verdict(result: dict, name: str, ratio: float) -> str:
    """met / missed; a contender with refused requests has no valid figure."""
    if _non_2xx(result, name) != "0":
        return "**not valid** (non-2xx responses; see flagged runs)"
    return "met" if ratio >= TARGETS[name] else "**missed**"


def auth_table(result: dict) -> list[str]:
    """Authenticated contenders against passthrough finward, paired per round."""
    t = result["throughput"]
    names = [n for n in AUTH_CONTENDERS if n in t.get("ratio_to_passthrough", {})]
    if not names:
        return []
    lines = [
        "| contender | req/s | passthrough req/s | ratio to passthrough | per-core ratio "
        "| target | non-2xx | DPoP proofs made / used per run | seconds to make them |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name in names:
        ratio = t["ratio_to_passthrough"][name]
        per_core = t["per_core_ratio_to_passthrough"][name]
        target = AUTH_TARGETS[name]
        verdict = _verdict(result, name, ratio)
        rounds = t["rounds"]
        proofs = took = "—"
        if name in DPOP_CONTENDERS:
            made = statistics.median(r[name].get("proofs_made", 0) for r in rounds)
            used = statistics.median(r[name].get("proofs_used", 0) for r in rounds)
            proofs = f"{made:,.0f} / {used:,.0f}"
            if all("proof_gen_s" in r[name] for r in rounds):
                took = f"{statistics.median(r[name]['proof_gen_s'] for r in rounds):.1f}"
        lines.append(
            f"| {AUTH_LABEL.get(name, name)} | {t['median'][name]['rps']:,.0f} "
            f"| {t['median']['finward']['rps']:,.0f} "
            f"| **{ratio:.3f}x** | {per_core:.3f}x | ≥ {target:.2f}x: {verdict} "
            f"| {_non_2xx(result, name)} | {proofs} | {took} |"
        )
    return lines


def _redis_figure(result: dict, key: str) -> float | None:
    """Median over rounds of a finward-limits-redis counter (None if not measured)."""
    rounds = [r["finward-limits-redis"] for r in result["throughput"]["rounds"]]
    values = [r[key] for r in rounds if key in r]
    return statistics.median(values) if values else None


def limits_table(result: dict) -> list[str]:
    """Rate-limit contenders against passthrough finward, paired per round."""
    t = result["throughput"]
    names = [n for n in LIMIT_CONTENDERS if n in t.get("ratio_to_passthrough", {})]
    if not names:
        return []
    rounds = t["rounds"]
    lines = [
        "| contender | store | req/s | passthrough req/s | ratio to passthrough "
        "| per-core ratio | µs per request over passthrough | target | non-2xx "
        "| worker RSS MiB (passthrough) | Redis EVALSHA / request | Redis commands sent / request "
        "| Redis CPU |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        ratio = t["ratio_to_passthrough"][name]
        per_core = t["per_core_ratio_to_passthrough"][name]
        extra = statistics.median(
            1e6 / r[name]["rps_per_core"] - 1e6 / r["finward"]["rps_per_core"] for r in rounds
        )
        target = (
            f"≥ {LIMIT_TARGETS[name]:.2f}x: {_verdict(result, name, ratio)}"
            if name in LIMIT_TARGETS
            else "— (one round trip per request)"
        )
        rss = "—"
        if all("rss_mb" in r[name] and "rss_mb" in r["finward"] for r in rounds):
            rss = (
                f"{max(r[name]['rss_mb'] for r in rounds):.0f} "
                f"({max(r['finward']['rss_mb'] for r in rounds):.0f})"
            )
        evalsha = sent = cpu = "—"
        if name == "finward-limits-redis":
            e = _redis_figure(result, "redis_evalsha_per_request")
            top = _redis_figure(result, "redis_top_level_per_request")
            c = _redis_figure(result, "redis_cpu")
            evalsha = "—" if e is None else f"**{e:.3f}**"
            sent = "—" if top is None else f"{top:.3f}"
            cpu = "—" if c is None or c < 0 else f"{c:.0%}"
        lines.append(
            f"| {name} | {LIMIT_CONTENDERS[name]} | {t['median'][name]['rps']:,.0f} "
            f"| {t['median']['finward']['rps']:,.0f} | **{ratio:.3f}x** | {per_core:.3f}x "
            f"| {extra:+.1f} | {target} | {_non_2xx(result, name)} | {rss} "
            f"| {evalsha} | {sent} | {cpu} |"
        )
    return lines


def limits_targets(result: dict) -> list[str]:
    """Issue 5, item 9: the memory store's 5% budget and the Redis store's round trips."""
    t = result["throughput"]
    ratios = t.get("ratio_to_passthrough", {})
    lines = []
    if "finward-limits-memory" in ratios:
        name = "finward-limits-memory"
        ratio = ratios[name]
        lines.append(
            f"- memory rate limits (3 limits) cost ≤ 5% of passthrough: **{ratio:.3f}x** "
            f"passthrough req/s (≥ {LIMIT_TARGETS[name]:.2f}x) — {_verdict(result, name, ratio)}"
            f" (per server core: {t['per_core_ratio_to_passthrough'][name]:.3f}x)"
        )
    if "finward-limits-redis" in ratios:
        name = "finward-limits-redis"
        evalsha = _redis_figure(result, "redis_evalsha_per_request")
        top = _redis_figure(result, "redis_top_level_per_request")
        if evalsha is None or top is None:
            verdict = "not measured"
        else:
            ok = round(top, 2) <= 1.0 and _non_2xx(result, name) == "0"
            verdict = f"**{evalsha:.3f}** EVALSHA and {top:.3f} commands sent per request — " + (
                "met" if ok else "**missed**"
            )
        lines.append(
            "- Redis rate limits (3 limits) cost at most one Redis round trip per request: "
            f"{verdict} (throughput, no target: **{ratios[name]:.3f}x** passthrough req/s, "
            f"per server core {t['per_core_ratio_to_passthrough'][name]:.3f}x)"
        )
    return lines


def render_limits_section(result: dict) -> str:
    """The "## Rate-limit cost" section of docs/benchmarks.md (figures only)."""
    m, cfg = result["machine"], result["config"]
    t = result["throughput"]
    names = [n for n in ("finward", *LIMIT_CONTENDERS) if n in t["median"]]
    per_round = "; ".join(
        f"{n} " + " / ".join(f"{r[n]['rps']:,.0f}" for r in t["rounds"]) for n in names
    )
    redis_where = cfg.get("redis", "")
    flags = [f for f in result.get("flags", []) if any(n in f for n in LIMIT_CONTENDERS)]
    yaml = [
        "```yaml",
        "rate_limits:",
        "  store: memory://        # finward-limits-memory",
        "  # store: redis://127.0.0.1:PORT/0?prefix=finward-bench-…   # finward-limits-redis",
        "  headers: true",
        "  limits:",
        *(f"    - {{name: {n}, algorithm: {a}, {rest}}}" for n, a, rest in BENCH_LIMITS),
        "```",
    ]
    calls: dict[str, list[float]] = {}
    for r in t["rounds"]:
        redis_round = r.get("finward-limits-redis", {})
        n = max(1.0, redis_round.get("requests", 1.0))
        for cmd, count in redis_round.get("redis_calls", {}).items():
            calls.setdefault(cmd, []).append(count / n)
    breakdown = ", ".join(
        f"{cmd.upper()} {statistics.median(v):.2f}"
        for cmd, v in sorted(calls.items(), key=lambda kv: -statistics.median(kv[1]))
    )
    redis_lines: list[str] = []
    if breakdown:
        redis_lines = [
            "Redis commands per request served, by name (medians of the rounds; INFO "
            "commandstats counts the commands a script calls too, and those are no round "
            f"trips): {breakdown}. Commands sent by finward (all but those `limits.lua` "
            "calls inside Redis) per request: "
            f"{_redis_figure(result, 'redis_top_level_per_request'):.3f}; Redis's own "
            f"memory after the last run: {_redis_figure(result, 'redis_used_memory_mb'):.1f} "
            "MiB.",
            "",
        ]
    return "\n".join(
        [
            LIMITS_SECTION,
            "",
            f"Command: `{result['command']}` (from the repository root; not run in CI). "
            f"Measured {result['started'][:10]}, git `{m['git']}`.",
            "",
            f"Machine: {m['nproc']} cores ({m['cpu']}), Linux {m['kernel']}, Python "
            f"{m['python']}, {m['nginx']}, {m['wrk']}"
            + (f", Redis {m['redis']}" if "redis" in m else "")
            + f"; load average at start {m['loadavg_at_start']}.",
            "",
            f"Issue 5, item 9: memory limits cost at most 5% of passthrough throughput; Redis "
            "limits cost at most one Redis round trip per request for all its limits. Both "
            "rate-limit contenders are `finward serve --workers 1` on the proxy core, like "
            f"passthrough *finward*, measured in the same {cfg['rounds']} interleaved rounds "
            f"(`wrk -t1 -c{cfg['connections']} -d{cfg['duration_s']:g}s`, "
            f"{cfg['warmup_s']:g} s warmup), with the same three limits on every request, "
            "limits high enough that nothing is refused (any non-2xx response flags the run), "
            f"and `RateLimit-Policy` / `RateLimit` headers on every response. wrk sends "
            f"`{LIMIT_HEADER}: {LIMIT_CLIENT}` to both (passthrough finward does not get it), "
            "so every request counts against one key per limit. The Redis store uses Redis's "
            "clock (`clock=server`, the default: one `TIME` inside the script) and runs one "
            f"script (EVALSHA) per request for all three limits; Redis is a {redis_where}, "
            "with no persistence.",
            "",
            *yaml,
            "",
            "Ratios are medians of the per-round ratios to passthrough finward; *µs per "
            "request over passthrough* is the median per-round difference of CPU time per "
            "request (1 / req/s per server core). *Redis EVALSHA / request* is the growth of "
            "Redis's `cmdstat_evalsha` calls during the measured run divided by the requests "
            "wrk completed (a few requests still in flight when wrk stops are served but not "
            "counted, so it can read a hair above 1); *Redis commands sent / request* adds "
            "every other command a client sent (INFO from the harness left out). *Redis "
            "CPU* is the Redis server's CPU time per second of load (load core).",
            "",
            *limits_table(result),
            "",
            f"req/s per round: {per_round}.",
            "",
            *redis_lines,
            *limits_targets(result),
            "",
            *(["Flagged runs:", "", *(f"- {f}" for f in flags), ""] if flags else []),
        ]
    )


def latency_table(result: dict) -> list[str]:
    lat = result["latency"]
    diffs = lat.get("p99_diff_to_direct", {})
    lines = [
        "| contender | p50 ms | p99 ms | max ms | service p50 ms | service p99 ms "
        "| p99 - direct p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in _names(result):
        if name not in lat["median"]:
            continue
        m = lat["median"][name]
        diff = diffs.get(name)
        lines.append(
            f"| {name} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['max_ms']:.2f} "
            f"| {m['service_p50_ms']:.2f} | {m['service_p99_ms']:.2f} "
            f"| {'—' if diff is None or name == 'direct' else f'{diff:+.2f}'} "
            f"| {m['errors']:.0f} |"
        )
    return lines


def targets(result: dict) -> list[str]:
    t = result["throughput"]
    lines = []
    if "finward" in t["ratio_to_nginx"]:
        ratio, per_core = t["ratio_to_nginx"]["finward"], t["per_core_ratio_to_nginx"]["finward"]
        lines.append(
            f"- finward 1 worker ≥ 0.10x nginx req/s: **{ratio:.3f}x** — "
            + ("met" if ratio >= 0.10 else "**missed**")
            + f" (per server core: {per_core:.3f}x)"
        )
    lines += limits_targets(result)
    for name, ratio in t.get("ratio_to_passthrough", {}).items():
        if name not in AUTH_TARGETS:
            continue
        target = AUTH_TARGETS[name]
        per_core = t["per_core_ratio_to_passthrough"][name]
        lines.append(
            f"- {AUTH_TARGET_TEXT[name]}: **{ratio:.3f}x** passthrough req/s (≥ {target:.2f}x) — "
            + _verdict(result, name, ratio)
            + f" (per server core: {per_core:.3f}x)"
        )
    lat = result.get("latency")
    if lat is not None and lat.get("p99_diff_ms") is not None:
        diff, nginx = lat["p99_diff_ms"], lat.get("nginx_p99_diff_ms")
        lines.append(
            f"- finward p99 ≤ direct p99 + 2 ms at {lat['rate']:,} req/s: **{diff:+.2f} ms** — "
            + ("met" if diff <= 2.0 else "**missed**")
            + ("" if nginx is None else f" (nginx, same rounds: {nginx:+.2f} ms)")
        )
    return lines


def render_section(result: dict) -> str:
    m, cfg = result["machine"], result["config"]
    names = _names(result)
    t = result["throughput"]
    per_round = "; ".join(
        f"{name} " + " / ".join(f"{r[name]['rps']:,.0f}" for r in t["rounds"])
        for name in names
        if name.startswith("finward")
    )
    auth = [n for n in names if n in AUTH_CONTENDERS]
    auth_lines: list[str] = []
    if auth:
        auth_lines = [
            "Authentication cost (issue item 11): each authenticated contender against "
            "passthrough finward from the same round; the ratio is the median of the "
            "per-round ratios. *finward-mtls*: an ES256 access token bound to the client "
            "certificate (`cnf.x5t#S256`), the certificate passed as a trusted terminator's "
            "`X-SSL-Client-Cert` header; wrk sends the same token and certificate every "
            "time, so finward's verified-token and parsed-certificate caches hit. "
            "*finward-dpop* and *finward-dpop-ps256*: an ES256 access token bound to the "
            "client's DPoP key (`cnf.jkt`; the token itself comes from the cache) and on "
            "every request a fresh DPoP proof (its own `jti`, made just before the run, "
            "never replayed) that finward must verify and record in its replay cache; "
            "the client's key and proof algorithm differ: P-256 and ES256 for "
            "*finward-dpop*, RSA-2048 and PS256 (RSASSA-PSS, SHA-256) for "
            "*finward-dpop-ps256*. Proofs are made before each warmup and each run "
            f"(about {_proof_rates(result)}, on the load core, outside the measured "
            f"time; *seconds to make them* is the median for one measured run's batch) "
            f"for {PROOF_MARGIN:g}x the requests expected; a run that used them all up, "
            "or had any non-2xx response, is flagged below.",
            "",
            *auth_table(result),
            "",
        ]
    lat_rate = cfg["latency_rate"]
    finward_rps = t["median"].get("finward", {}).get("rps")
    load_note: list[str] = []
    if finward_rps is not None:
        own = [
            f"{n}: {lat_rate / t['median'][n]['rps']:.0%}"
            for n in DPOP_CONTENDERS
            if n in t["median"]
        ]
        also = f" ({', '.join(own)} of its own)" if own else ""
        load_note = [
            f"At {lat_rate:,} req/s finward runs at about {lat_rate / finward_rps:.0%} of "
            f"the single-core throughput measured above{also}, so its tail includes queueing "
            "behind other requests; nginx and the upstream run at a few per cent of theirs.",
            "",
        ]
    latency: list[str] = []
    if "latency" in result:
        latency = [
            f"Latency at a fixed {lat_rate:,} req/s (open-loop generator in "
            f"`bench/run.py`, {cfg['latency_connections']} keep-alive connections, "
            f"{cfg['latency_s']:g} s per contender, {cfg['rounds']} interleaved rounds; "
            "the authenticated contenders send the same credentials as under wrk, "
            "the DPoP contenders a fresh proof per request). "
            "Latency counts from the scheduled send time (no coordinated omission); "
            "*service* counts from the moment the request was written; *p99 - direct* is "
            "the median of the per-round differences.",
            "",
            *latency_table(result),
            "",
            *load_note,
        ]
    flags = result.get("flags", [])
    return "\n".join(
        [
            SECTION,
            "",
            f"Command: `{result['command']}` (from the repository root; not run in CI). "
            f"Measured {result['started'][:10]}, git `{m['git']}`.",
            "",
            f"Machine: {m['nproc']} cores ({m['cpu']}), Linux {m['kernel']}, Python "
            f"{m['python']}, {m['nginx']}, {m['wrk']}; load average at start "
            f"{m['loadavg_at_start']}.",
            "",
            f"Throughput: `wrk -t1 -c{cfg['connections']} -d{cfg['duration_s']:g}s` per "
            f"contender, {cfg['rounds']} interleaved rounds ({', '.join(names)}; "
            f"{cfg['warmup_s']:g} s warmup before each), GET of a 1 KB JSON document. "
            "Medians over rounds; each ratio is the median of per-round ratios. *server CPU* "
            "is the CPU time of the contender's own processes (the upstream's, for *direct*) "
            "per second of load, read from /proc; *req/s per server core* divides req/s by "
            "it, which moves less than raw req/s when the shared machine is busy. *non-2xx* "
            "adds up every round's measured run.",
            "",
            *throughput_table(result),
            "",
            f"req/s per round: {per_round}. {_busy_note(result)}",
            "",
            *auth_lines,
            *latency,
            *targets(result),
            "",
            *(["Flagged runs:", "", *(f"- {f}" for f in flags), ""] if flags else []),
            "Set-up: the upstream is one nginx worker answering from memory (`return 200`); "
            "it also serves the bench issuer's JWKS at `/jwks`. "
            "nginx is Debian's, one worker, plain `proxy_pass` with a keep-alive upstream pool "
            '(`proxy_http_version 1.1`, `Connection ""`), access log to a file. finward runs '
            "`finward serve --workers 1` with routing against `bench/bench-api.yaml`, request "
            "ids and the JSON access log to a file; each finward contender is its own "
            "process. CPU placement (`taskset`): the proxy under "
            "test on core 1; wrk or the latency generator and the upstream on core 0, so "
            "*direct* shares one core between client and server.",
            "",
            "Caveats: two cores, shared with other work on the machine; single runs move by "
            "several per cent (more when others' test suites run: then nginx, whose requests "
            "cross both cores twice, loses most, and its *server CPU* drops below 100%), which "
            "is why only same-run ratios and medians are quoted. With one core for the proxy "
            "and one for client plus upstream, nginx can be held back by the client side; the "
            "per-core ratio does not have that bias. The Python latency generator adds its own "
            "scheduling jitter (about 1 ms timer resolution) to every contender alike. A proxy "
            "on core 1 adds two cross-core wake-ups per request; in this virtual machine they "
            "show in the p99 even for nginx (compare its p99 difference above; in earlier "
            "runs on a busier machine they cost it milliseconds), so part of every proxy's "
            "gap to direct is the machine, not the proxy's work.",
            "",
            *_profile_lines(result),
        ]
    )


def _proof_rate(result: dict, name: str) -> str:
    """Median proofs made per second for a DPoP contender (its measured runs' batches)."""
    rounds = result["throughput"]["rounds"]
    rates = [
        r[name]["proofs_made"] / r[name]["proof_gen_s"]
        for r in rounds
        if r.get(name, {}).get("proof_gen_s")
    ]
    if not rates:
        return "?"
    rate = statistics.median(rates)
    return f"{round(rate, -3 if rate >= 10_000 else -2):,.0f}"


def _proof_rates(result: dict) -> str:
    """'about 28,000 a second for ES256, 3,400 for PS256' for the DPoP contenders run."""
    names = [n for n in DPOP_CONTENDERS if n in _names(result)]
    return ", ".join(f"{_proof_rate(result, n)} a second for {DPOP_CONTENDERS[n]}" for n in names)


def _busy_note(result: dict) -> str:
    rounds = result["throughput"]["rounds"]
    if "nginx" not in rounds[0]:
        return ""
    starved = sum(1 for r in rounds if r["nginx"]["server_cpu"] < 0.9)
    if not starved:
        return "nginx used at least 90% of its core in every round."
    return (
        f"In {starved} of {len(rounds)} rounds nginx used less than 90% of its core: other "
        "work on the machine held it back, which flatters the req/s ratio; the per-core "
        "ratio is the steadier figure."
    )


def _profile_lines(result: dict) -> list[str]:
    if "profile" not in result:
        return []
    return [
        f"Where finward's CPU goes (`--profile {result['config'].get('profile_s', 8):g}`: "
        f"py-spy sampling the {result['config'].get('profile_contender', 'finward')} "
        "process under the same wrk load; percentages of busy "
        "samples, line numbers are where each function starts; `Runner.run` self time is the "
        "uvloop event loop and the socket system calls, which run in native code):",
        "",
        "```text",
        *result["profile"],
        "```",
        "",
    ]


def write_docs(section: str, heading: str = SECTION) -> None:
    """Replace the `heading` section (up to the next `## `) of the docs, or append it."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    start = text.find(heading + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("" if end < 0 else "\n" + text[end + 1 :])
    DOC.write_text(text)


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=8.0, help="seconds of wrk per measurement")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk before each")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument(
        "--contenders",
        type=_contender_list,
        default=CONTENDERS,
        help=f"comma-separated, in round order (default: all: {','.join(CONTENDERS)})",
    )
    p.add_argument("--latency-rate", type=int, default=1000, help="req/s of the latency test")
    p.add_argument("--latency-seconds", type=float, default=10.0)
    p.add_argument("--latency-connections", type=int, default=32)
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        help="before each round, wait up to this many seconds for other work to stop",
    )
    p.add_argument("--profile", type=float, default=0, help="seconds of py-spy on finward")
    p.add_argument(
        "--profile-contender",
        choices=[c for c in CONTENDERS if c.startswith("finward")],
        default="finward",
        help="which finward contender --profile samples",
    )
    p.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    p.add_argument(
        "--write-limits-docs",
        action="store_true",
        help=f"update only the '{LIMITS_SECTION[3:]}' section of docs/benchmarks.md",
    )
    p.add_argument(
        "--redis-url",
        help="Redis for finward-limits-redis, e.g. redis://127.0.0.1:6379/15 (default: a "
        "private redis-server started on the load core)",
    )
    p.add_argument("--keep-run-dir", action="store_true", help="keep configs and logs")
    p.add_argument("--docs-from", type=Path, help="only rewrite the docs from a results file")
    p.add_argument(
        "--limits-docs-from",
        type=Path,
        help=f"only rewrite the '{LIMITS_SECTION[3:]}' section from a results file",
    )
    return p.parse_args(argv)


def _contender_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"want distinct names from {', '.join(CONTENDERS)}; got {text!r}"
        )
    return names


def _flag(result: dict, where: str, r: dict[str, float]) -> None:
    """Record a run whose figures include refused or failed requests."""
    if not r["errors"] and not r.get("proofs_exhausted"):
        return
    note = (
        f"{where}: {r.get('non_2xx', 0):,.0f} non-2xx, "
        f"{r['errors'] - r.get('non_2xx', 0):,.0f} socket errors"
        + (" (DPoP proofs ran out)" if r.get("proofs_exhausted") else "")
    )
    result.setdefault("flags", []).append(note)
    print(f"  FLAGGED {note}", flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.docs_from is not None:
        write_docs(render_section(json.loads(args.docs_from.read_text())))
        print(f"updated {DOC.relative_to(REPO)} ({SECTION}) from {args.docs_from}")
        return 0
    if args.limits_docs_from is not None:
        write_docs(
            render_limits_section(json.loads(args.limits_docs_from.read_text())), LIMITS_SECTION
        )
        print(f"updated {DOC.relative_to(REPO)} ({LIMITS_SECTION}) from {args.limits_docs_from}")
        return 0
    if args.rounds < 1 or not (1 <= args.duration <= 60) or args.latency_seconds > 60:
        raise SystemExit("need --rounds ≥ 1, 1 ≤ --duration ≤ 60, --latency-seconds ≤ 60")
    if args.warmup + args.duration > 40:
        raise SystemExit("need --warmup + --duration ≤ 40 (DPoP proofs are valid for 60 s)")
    names: tuple[str, ...] = args.contenders
    if args.write_docs and (set(names) != set(CONTENDERS) or args.skip_latency):
        raise SystemExit("--write-docs needs every contender and the latency test")
    if args.write_limits_docs and not {"finward", *LIMIT_CONTENDERS} <= set(names):
        raise SystemExit("--write-limits-docs needs finward, " + " and ".join(LIMIT_CONTENDERS))
    if args.profile > 0 and args.profile_contender not in names:
        raise SystemExit(f"--profile-contender {args.profile_contender} is not a contender")
    if any(n in VS_PASSTHROUGH for n in names) and "finward" not in names:
        print("note: without the finward contender no ratio to passthrough is computed")
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install -y nginx wrk util-linux)")
    needs_redis = "finward-limits-redis" in names
    if needs_redis and args.redis_url is None and shutil.which("redis-server") is None:
        raise SystemExit("redis-server not found (apt-get install -y redis-server, or --redis-url)")
    # The harness itself (DPoP proof making, /proc sampling) stays off the proxy core; every
    # server and load generator is placed by its own `taskset`.
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    started = dt.datetime.now(dt.UTC)
    command = " ".join([".venv/bin/python", "bench/run.py", *argv])
    result: dict = {
        "started": started.isoformat(timespec="seconds"),
        "command": command,
        "machine": machine(),
        "config": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "threads": 1,
            "contenders": list(names),
            "latency_rate": args.latency_rate,
            "latency_s": args.latency_seconds,
            "latency_connections": args.latency_connections,
            "placement": {
                "proxy_under_test": PROXY_CORE,
                "load_and_upstream": LOAD_CORE,
                "harness_and_proof_making": LOAD_CORE,
            },
            "path": REQUEST_PATH,
            "profile_s": args.profile,
            "profile_contender": args.profile_contender,
            "wait_idle_s": args.wait_idle,
            "dpop_proof_margin": PROOF_MARGIN,
            "rate_limits": [f"{n}: {a}, {rest}" for n, a, rest in BENCH_LIMITS],
            "redis": "private redis-server on the load core"
            if args.redis_url is None
            # never the URL itself: it may hold a password
            else "shared server given by --redis-url",
        },
    }
    run_dir = Path(tempfile.mkdtemp(prefix="finward-bench-"))
    n = len(names)
    per_round = n * (args.warmup + args.duration + 15) + n * (args.latency_seconds + DRAIN_S + 8)
    per_round += 2 * (args.wait_idle + 3)
    per_round += 120 * sum(n in DPOP_CONTENDERS for n in names)  # making proofs (PS256: slow)
    procs = Processes(lifetime_s=args.rounds * per_round + args.profile + 300)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind through `finally`
    redis_server: RedisForLimits | None = None
    try:
        body = account_body()
        kit = None
        if any(name in AUTH_CONTENDERS for name in names):
            kit = AuthKit.create(run_dir)
            kit.self_check(REQUEST_PATH)
        jwks = kit.jwks_json() if kit else '{"keys":[]}'
        scripts = WrkScripts(run_dir, kit)
        upstream = start_nginx(procs, "upstream", run_dir, LOAD_CORE, BODY=body.decode(), JWKS=jwks)
        ports = {"direct": upstream}
        if "nginx" in names:
            ports["nginx"] = start_nginx(
                procs, "proxy", run_dir, PROXY_CORE, UPSTREAM_PORT=str(upstream)
            )
        if needs_redis:
            redis_server = RedisForLimits(procs, run_dir, args.redis_url)
            result["machine"]["redis"] = redis_server.version
        pids: dict[str, int] = {}
        for name in names:
            if name.startswith("finward"):
                store = None
                if name in LIMIT_CONTENDERS:
                    memory = LIMIT_CONTENDERS[name] == "memory"
                    store = "memory://" if memory else redis_server.store_url  # type: ignore[union-attr]
                ports[name], pids[name] = start_finward(
                    procs,
                    run_dir,
                    upstream,
                    PROXY_CORE,
                    name,
                    kit if name in AUTH_CONTENDERS else None,
                    store,
                )
        groups = {n: procs.pid(CONTENDER_PROCESS[n]) for n in names}
        for name in names:
            check_contender(name, ports[name], body, kit)
        print(f"body {len(body)} B; ports {ports}; run dir {run_dir}", flush=True)

        rounds: list[dict[str, dict[str, float]]] = []
        dpop_rps: dict[str, float] = {}  # each DPoP contender's last measured req/s
        for i in range(1, args.rounds + 1):
            this: dict[str, dict[str, float]] = {}
            idle = wait_for_idle(args.wait_idle)
            for name in names:
                # DPoP warmup proofs are sized from the contender's last figure or, before
                # there is one, from passthrough finward's (an upper bound) or a guess.
                expected = (
                    dpop_rps.get(name) or this.get("finward", {}).get("rps") or PROOF_GUESS_RPS
                )
                this[name] = r = measure(
                    name,
                    ports[name],
                    scripts,
                    args.warmup,
                    args.duration,
                    args.connections,
                    expected,
                    groups[name],
                    dpop_rps.get(name, 0.0),
                    pids.get(name),
                    redis_server if name == "finward-limits-redis" else None,
                )
                if name in DPOP_CONTENDERS:
                    dpop_rps[name] = r["rps"]
                r["loadavg"] = float(Path("/proc/loadavg").read_text().split()[0])
                r["idle_before_round"] = idle
                proofs = (
                    f"  proofs {r['proofs_used']:,.0f}/{r['proofs_made']:,.0f} "
                    f"(made in {r['proof_gen_s']:.1f} s; warmup's in "
                    f"{r['warmup_proof_gen_s']:.1f} s)"
                    if "proofs_made" in r
                    else ""
                )
                if "redis_evalsha_per_request" in r:
                    proofs += (
                        f"  EVALSHA/request {r['redis_evalsha_per_request']:.3f}  "
                        f"top-level commands/request {r['redis_top_level_per_request']:.3f}"
                        + (f"  redis cpu {r['redis_cpu']:.0%}" if r["redis_cpu"] >= 0 else "")
                    )
                print(
                    f"round {i} {name:18} {r['rps']:>9,.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                    f"p99 {r['p99_ms']:6.2f} ms  non-2xx {r['non_2xx']:.0f}  "
                    f"errors {r['errors']:.0f}  server cpu {r['server_cpu']:.0%}  "
                    f"load {r['loadavg']:.2f}{proofs}",
                    flush=True,
                )
                _flag(result, f"round {i} {name}", r)
            rounds.append(this)
        keys = ("rps", "p50_ms", "p99_ms", "errors", "server_cpu", "rps_per_core")
        with_nginx = "nginx" in names
        auth = [n for n in VS_PASSTHROUGH if n in names and "finward" in names]
        result["throughput"] = {
            "rounds": rounds,
            "median": summarise(rounds, keys),
            "ratio_to_nginx": {
                n: paired_median(rounds, n, "nginx", "rps") for n in names if with_nginx
            },
            "per_core_ratio_to_nginx": {
                n: paired_median(rounds, n, "nginx", "rps_per_core") for n in names if with_nginx
            },
            "ratio_to_passthrough": {n: paired_median(rounds, n, "finward", "rps") for n in auth},
            "per_core_ratio_to_passthrough": {
                n: paired_median(rounds, n, "finward", "rps_per_core") for n in auth
            },
        }
        print(
            "\n".join(
                ["", *throughput_table(result), "", *auth_table(result), "", *limits_table(result)]
            ),
            flush=True,
        )

        if not args.skip_latency:
            lat_rounds: list[dict[str, dict[str, float]]] = []
            total = int(args.latency_rate * args.latency_seconds)
            for i in range(1, args.rounds + 1):
                this = {}
                wait_for_idle(args.wait_idle)
                for name in names:
                    credentials = loadgen_credentials(name, kit, run_dir, total)
                    this[name] = r = run_loadgen(
                        ports[name],
                        args.latency_rate,
                        args.latency_seconds,
                        args.latency_connections,
                        credentials,
                    )
                    print(
                        f"latency round {i} {name:18} offered {r['offered_rps']:,.0f} req/s  "
                        f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
                        f"errors {r['errors']:.0f}",
                        flush=True,
                    )
                    if r["errors"]:
                        note = f"latency round {i} {name}: {r['errors']:.0f} failed or unanswered"
                        result.setdefault("flags", []).append(note)
                        print(f"  FLAGGED {note}", flush=True)
                lat_rounds.append(this)
            lat_keys = ("p50_ms", "p99_ms", "max_ms", "service_p50_ms", "service_p99_ms")
            result["latency"] = {
                "rate": args.latency_rate,
                "rounds": lat_rounds,
                "median": summarise(lat_rounds, (*lat_keys, "errors", "offered_rps")),
                "p99_diff_to_direct": {
                    n: paired_median(lat_rounds, n, "direct", "p99_ms") for n in names
                },
            }
            if "finward" in names:
                result["latency"]["p99_diff_ms"] = paired_median(
                    lat_rounds, "finward", "direct", "p99_ms"
                )
                result["latency"]["p50_diff_ms"] = paired_median(
                    lat_rounds, "finward", "direct", "p50_ms"
                )
            if "nginx" in names:
                result["latency"]["nginx_p99_diff_ms"] = paired_median(
                    lat_rounds, "nginx", "direct", "p99_ms"
                )
            print("\n".join(["", *latency_table(result)]), flush=True)
        print("\n".join(["", *targets(result)]), flush=True)

        if args.profile > 0:
            name = args.profile_contender
            expected = result["throughput"]["median"][name]["rps"]
            report = profile_finward(
                pids[name], ports[name], args.profile, run_dir, scripts, name, expected
            )
            result["profile"] = report
            print("\n".join(["", *report]), flush=True)
    finally:
        if redis_server is not None:
            try:
                redis_server.cleanup()
            except Exception as exc:  # report it; still stop every process
                print(f"could not delete the bench's Redis keys: {exc}", file=sys.stderr)
        procs.stop_all()
        result["machine"]["loadavg_at_end"] = " ".join(
            Path("/proc/loadavg").read_text().split()[:3]
        )
        if not args.keep_run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults: {out.relative_to(REPO)}")
    if args.write_docs and "latency" in result:
        write_docs(render_section(result))
        print(f"updated {DOC.relative_to(REPO)} ({SECTION})")
    if args.write_docs or args.write_limits_docs:
        write_docs(render_limits_section(result), LIMITS_SECTION)
        print(f"updated {DOC.relative_to(REPO)} ({LIMITS_SECTION})")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_loadgen"]:
        loadgen_main(sys.argv[2:])
    else:
        sys.exit(main(sys.argv[1:]))
