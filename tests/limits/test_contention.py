"""Accuracy under contention (issue 5 item 4): two gateway processes, two workers each,
one Redis, one key hammered through real sockets for a bounded time.

Every admitted response carries ``RateLimit: "<name>";r=<remaining>;t=<reset>``. With a
fixed window of ``LIMIT`` per ``WINDOW_S``, an exact limiter admits, in each window,
requests whose ``r`` values are exactly ``LIMIT-1, LIMIT-2, ..., 0`` once each: a
duplicate or a missing value would be an overshoot or a lost count, and more than
``LIMIT`` admissions in one window is an overshoot by definition. A window in which a
request was refused must be full (all ``LIMIT`` admitted): anything else refused an
admissible request. Windows are told apart by the moment the response says the window
ends (receive time + ``t``), rounded to the window grid.

A GCRA limit on a second key is checked against its definition from the outside: over
the whole run, admissions never exceed ``burst + rate x elapsed`` and, since the
clients always offer more than the rate, fall short of ``rate x elapsed`` by at most
one burst of slack.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.harness import TEST_SPEC, Upstream
from tests.procs import Proc, start, stop
from tests.services import TEST_REDIS_URL, deleting_keys, require_redis, with_params

pytestmark = [pytest.mark.slow, pytest.mark.redis]

LIMIT = 60
WINDOW_S = 4
GCRA_RATE = 20  # per second
GCRA_BURST = 10
DURATION_S = 9.0  # bounded: covers at least two full fixed windows
CONNECTIONS = 12  # spread over 2 processes x 2 workers
_RATELIMIT = re.compile(r'"([a-z0-9_-]+)";r=(\d+);t=(\d+)')


@pytest.fixture
def store_url() -> Iterator[str]:
    client = require_redis()
    prefix = f"finward-test-{uuid.uuid4().hex[:12]}"
    with deleting_keys(client, f"{prefix}:*"):
        yield with_params(TEST_REDIS_URL, prefix=prefix, timeout_ms="375")
    client.close()


def _config(path: Path, upstream: str, store: str) -> Path:
    path.write_text(
        f"""version: 1
listen: {{host: 127.0.0.1, port: 0}}
admin: {{enabled: true, host: 127.0.0.1, port: 0, token: "${{FW_TEST_TOKEN}}"}}
upstreams:
  test: {{url: "{upstream}"}}
apis:
  - name: test-api
    spec: {TEST_SPEC}
    upstream: test
rate_limits:
  store: "{store}"
  limits:
    - name: window
      algorithm: fixed_window
      limit: {LIMIT}
      period_s: {WINDOW_S}
      key: ["header:X-Hammer"]
      apply_to: {{operations: [echoGet]}}
    - name: smooth
      algorithm: gcra
      limit: {GCRA_RATE}
      period_s: 1
      burst: {GCRA_BURST}
      key: ["header:X-Hammer"]
      apply_to: {{operations: [getItem]}}
logging: {{access_log: "off"}}
server: {{workers: 2, shutdown_grace_s: 5}}
"""
    )
    return path


async def _hammer(urls: list[str], deadline: float) -> list[tuple[float, int, str | None]]:
    """(receive time, status, RateLimit header) of every response until ``deadline``."""
    results: list[tuple[float, int, str | None]] = []
    timeout = aiohttp.ClientTimeout(total=5)

    async def client(url: str) -> None:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.time() < deadline:
                async with session.get(url, headers={"X-Hammer": "one-key"}) as response:
                    await response.read()
                    results.append(
                        (time.time(), response.status, response.headers.get("RateLimit"))
                    )

    await asyncio.gather(*(client(urls[i % len(urls)]) for i in range(CONNECTIONS)))
    return results


def _remaining(header: str | None, name: str) -> tuple[int, int] | None:
    for found, r, t in _RATELIMIT.findall(header or ""):
        if found == name:
            return int(r), int(t)
    return None


async def test_fixed_window_and_gcra_are_exact_across_processes(
    tmp_path: Path, upstream: Upstream, store_url: str
) -> None:
    config = _config(tmp_path / "finward.yaml", upstream.url, store_url)
    gateways: list[Proc] = [start(config), start(config)]
    try:
        deadline = time.time() + DURATION_S
        window_results, gcra_results = await asyncio.gather(
            _hammer([f"{g.url}/echo" for g in gateways], deadline),
            _hammer([f"{g.url}/items/one" for g in gateways], deadline),
        )
    finally:
        for gateway in gateways:
            stop(gateway)

    # -- fixed window: exact per window ------------------------------------------------
    assert {status for _, status, _ in window_results} <= {200, 429}
    admitted: dict[int, list[int]] = defaultdict(list)
    refused: Counter[int] = Counter()
    for received, status, header in window_results:
        state = _remaining(header, "window")
        assert state is not None, header
        remaining, reset = state
        window_end = round((received + reset) / WINDOW_S) * WINDOW_S
        if status == 200:
            admitted[window_end].append(remaining)
        else:
            refused[window_end] += 1
    full_windows = 0
    for window_end, values in admitted.items():
        assert len(values) <= LIMIT, f"window ending {window_end}: {len(values)} admitted"
        assert len(values) == len(set(values)), f"window ending {window_end}: duplicate r"
        if refused[window_end]:
            # A refusal is allowed only once the window is full.
            assert sorted(values) == list(range(LIMIT)), f"window ending {window_end}"
            full_windows += 1
    assert full_windows >= 2, "the run must fill at least two windows to prove anything"

    # -- GCRA: within its definition over the run ----------------------------------------
    times = [received for received, status, _ in gcra_results if status == 200]
    assert times, "nothing admitted"
    elapsed = max(received for received, _, _ in gcra_results) - min(
        received for received, _, _ in gcra_results
    )
    # The client sees admissions a little after Redis made them: allow 0.25 s of slack
    # on either side of the measured span.
    upper = GCRA_BURST + GCRA_RATE * (elapsed + 0.25)
    lower = GCRA_RATE * (elapsed - 0.25) - GCRA_BURST
    assert len(times) <= math.ceil(upper), (len(times), upper)
    assert len(times) >= lower, (len(times), lower)
    assert any(status == 429 for _, status, _ in gcra_results)
