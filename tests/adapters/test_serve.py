"""`finward serve` as a real process: workers, admin, reload under load, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.harness import TEST_SPEC, Upstream
from tests.procs import TOKEN, Proc, cli_command, start, stop

pytestmark = pytest.mark.slow


def write_config(
    path: Path, upstream_url: str, *, workers: int = 1, extra_api: bool = False
) -> Path:
    apis = f"""
  - name: test-api
    spec: {TEST_SPEC}
    upstream: test
"""
    if extra_api:
        apis += f"""
  - name: second
    spec: {TEST_SPEC}
    upstream: test
    base_path: /second
"""
    path.write_text(
        f"""version: 1
listen: {{host: 127.0.0.1, port: 0}}
admin: {{enabled: true, host: 127.0.0.1, port: 0, token: "${{FW_TEST_TOKEN}}"}}
upstreams:
  test: {{url: "{upstream_url}"}}
apis:{apis}
logging: {{access_log: "off"}}
server: {{workers: {workers}, shutdown_grace_s: 5}}
"""
    )
    return path


@pytest.fixture
def tmp_config(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "finward.yaml"


@pytest.fixture
async def served(upstream: Upstream, tmp_config: Path) -> AsyncIterator[Proc]:
    proc = start(write_config(tmp_config, upstream.url))
    yield proc
    stop(proc)


async def test_bad_config_exits_2_with_located_problems(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "version: 1\nupstreams: {bank: {url: 'http://127.0.0.1:1'}}\n"
        "apis:\n  - {name: a, spec: nope.yaml, upstream: bnk}\n"
    )
    result = subprocess.run(cli_command("serve", "-c", str(cfg)), capture_output=True, timeout=60)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert "apis[0].upstream: unknown upstream 'bnk' (known: bank)" in err
    assert "Traceback" not in err


async def test_serves_and_admin_endpoints(served: Proc) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(served.url + "/items/abc") as r:
            assert r.status == 200
        async with s.get(served.url + "/admin") as r:
            assert r.status == 404
        async with s.get(served.admin + "/healthz", headers={"X-Request-ID": "probe-7"}) as r:
            assert r.status == 200 and (await r.json()) == {"status": "ok"}
            assert r.headers["X-Request-ID"] == "probe-7"
            assert r.headers["x-fapi-interaction-id"]
        async with s.get(served.admin + "/readyz") as r:
            assert r.status == 200
        async with s.get(served.admin + "/metrics") as r:
            text = await r.text()
        assert (
            'finward_requests_total{api="test-api",route="/items/{itemId}",'
            'method="GET",status="200",reason=""} 1' in text
        )
        assert (
            'finward_requests_total{api="",route="",method="",'
            'status="404",reason="route_not_found"} 1' in text
        )
        assert "finward_request_duration_seconds_bucket" in text
        async with s.post(served.admin + "/admin/reload") as r:
            assert r.status == 401
            assert (await r.json(content_type=None))["reason"] == "admin_unauthorized"
        async with s.post(
            served.admin + "/admin/reload", headers={"Authorization": "Bearer wrong"}
        ) as r:
            assert r.status == 401
        async with s.post(
            served.admin + "/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as r:
            assert r.status == 200 and (await r.json())["reloaded"] is True
        async with s.get(served.admin + "/metrics") as r:
            text = await r.text()
        assert 'finward_gateway_events_total{kind="admin_auth_failed",outcome="failure"} 2' in text
        assert 'finward_gateway_events_total{kind="admin_action",outcome="success"} 1' in text


async def test_sigterm_drains_in_flight_request(served: Proc) -> None:
    async with aiohttp.ClientSession() as s:
        pending = asyncio.ensure_future(s.get(served.url + "/slow?s=1"))
        await asyncio.sleep(0.3)
        served.popen.send_signal(signal.SIGTERM)
        r = await pending
        assert r.status == 200
        r.release()
    assert await asyncio.to_thread(served.popen.wait, 20) == 0


async def _load(url: str, stop_at: float, results: list[int], errors: list[str]) -> None:
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < stop_at:
            try:
                async with s.get(url) as r:
                    await r.read()
                    results.append(r.status)
            except aiohttp.ClientError as exc:
                errors.append(repr(exc))


async def test_twenty_reloads_under_load_lose_nothing(upstream: Upstream, tmp_config: Path) -> None:
    proc = start(write_config(tmp_config, upstream.url, workers=2))
    try:
        results: list[int] = []
        errors: list[str] = []
        stop_at = time.monotonic() + 12
        load = [
            asyncio.ensure_future(_load(proc.url + "/items/x", stop_at, results, errors))
            for _ in range(4)
        ]
        async with aiohttp.ClientSession() as s:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            for i in range(20):
                write_config(tmp_config, upstream.url, workers=2, extra_api=i % 2 == 0)
                if i % 2:
                    proc.popen.send_signal(signal.SIGHUP)
                    await asyncio.sleep(0.3)
                else:
                    async with s.post(proc.admin + "/admin/reload", headers=headers) as r:
                        assert r.status == 200, await r.text()
                    # The swap took effect in every worker: the new mount answers.
                    for _ in range(4):
                        async with s.get(proc.url + "/second/items/y") as r2:
                            assert r2.status == 200
                    await asyncio.sleep(0.2)
            # A broken configuration is refused; the old one keeps serving.
            tmp_config.write_text(
                tmp_config.read_text().replace("upstream: test\n", "upstream: nope\n", 1)
            )
            async with s.post(proc.admin + "/admin/reload", headers=headers) as r:
                assert r.status == 422
                assert "unknown upstream 'nope'" in (await r.json())["detail"]
            async with s.get(proc.url + "/items/z") as r:
                assert r.status == 200
            async with s.get(proc.admin + "/admin/status", headers=headers) as r:
                assert len((await r.json())["pids"]) == 2
        await asyncio.gather(*load)
        assert errors == []
        assert len(results) > 200
        assert set(results) == {200}
    finally:
        assert stop(proc) == 0


async def test_dead_worker_is_replaced(upstream: Upstream, tmp_config: Path) -> None:
    proc = start(write_config(tmp_config, upstream.url, workers=2))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(proc.admin + "/admin/status", headers=headers) as r:
                pids = (await r.json())["pids"]
            os.kill(pids[0], signal.SIGKILL)
            deadline = time.monotonic() + 10
            new: list[int] = []
            while time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                async with s.get(proc.admin + "/admin/status", headers=headers) as r:
                    new = (await r.json())["pids"]
                if len(new) == 2 and pids[0] not in new:
                    break
            assert len(new) == 2 and pids[0] not in new
            for _ in range(10):
                async with s.get(proc.url + "/items/x") as r:
                    assert r.status == 200
    finally:
        assert stop(proc) == 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_finward_reload_command(upstream: Upstream, tmp_path: Path) -> None:
    """`finward reload` goes through the admin API with the token, else SIGHUP via the pid file."""
    admin_port = _free_port()
    config = write_config(tmp_path / "finward.yaml", upstream.url)
    text = config.read_text().replace("port: 0, token", f"port: {admin_port}, token")
    text = text.replace("server: {", f"server: {{pid_file: {tmp_path / 'finward.pid'}, ")
    config.write_text(text)
    proc = start(config)
    env = {**os.environ, "FW_TEST_TOKEN": TOKEN}
    try:
        result = subprocess.run(
            cli_command("reload", "-c", str(config)), capture_output=True, env=env, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert b'"reloaded":true' in result.stdout
        # A broken file is refused by the running gateway, and the command says so.
        config.write_text(text.replace("upstream: test", "upstream: nope"))
        result = subprocess.run(
            cli_command("reload", "-c", str(config)), capture_output=True, env=env, timeout=60
        )
        assert result.returncode == 2  # the CLI itself refuses to send a broken file
        assert b"unknown upstream 'nope'" in result.stderr
        config.write_text(text.replace(', token: "${FW_TEST_TOKEN}"', ""))
        result = subprocess.run(
            cli_command("reload", "-c", str(config)),
            capture_output=True,
            env={k: v for k, v in env.items() if k != "FINWARD_ADMIN_TOKEN"},
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(b"sent SIGHUP to ")
        async with aiohttp.ClientSession() as s, s.get(proc.url + "/items/a") as r:
            assert r.status == 200
    finally:
        assert stop(proc) == 0


async def test_port_in_use_is_a_clear_error(upstream: Upstream, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "finward.yaml", upstream.url)
        config.write_text(
            config.read_text().replace(
                "listen: {host: 127.0.0.1, port: 0}", f"listen: {{host: 127.0.0.1, port: {port}}}"
            )
        )
        result = subprocess.run(
            cli_command("serve", "-c", str(config)),
            capture_output=True,
            timeout=60,
            env={**os.environ, "FW_TEST_TOKEN": TOKEN},
        )
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "cannot start: Address already in use" in err and f"listen 127.0.0.1:{port}" in err
    assert "Traceback" not in err
