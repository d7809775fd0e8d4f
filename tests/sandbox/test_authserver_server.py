"""Starting and stopping the sandbox AS: the async helper and `finward sandbox authserver`."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request

import aiohttp
import jwt
import pytest
from typer.testing import CliRunner

from finward.cli.main import app as cli
from finward.clock import FakeClock
from finward.sandbox.authserver.app import _is_loopback
from finward.sandbox.authserver.keys import SigningKeys
from finward.sandbox.authserver.server import authserver_of, start_authserver
from tests.auth.dpop_client import signer
from tests.sandbox.authserver_helpers import INITECH, basic

LISTENING = re.compile(r"authserver listening on http://127\.0\.0\.1:(\d+)")


def _keys() -> SigningKeys:
    return SigningKeys(algorithms=["ES256"])


async def test_start_authserver_binds_a_free_port_and_names_it_in_the_issuer() -> None:
    runner, port = await start_authserver("127.0.0.1", 0, keys=_keys())
    try:
        assert port > 0 and authserver_of(runner).config.issuer == f"http://127.0.0.1:{port}"
        url = f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            assert (await response.json())["issuer"] == f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_issuer_and_the_dpop_htu_follow_a_configured_public_url() -> None:
    issuer = "https://as.sandbox.example"
    clock = FakeClock()
    runner, port = await start_authserver(
        "127.0.0.1", 0, issuer=issuer, keys=SigningKeys(clock, algorithms=["ES256"]), clock=clock
    )
    try:
        proof = signer("ES256").proof(
            htm="POST", htu=issuer + "/token", iat=int(clock.now()), ath=None, jti="issuer-1"
        )
        headers = {
            "Authorization": basic(*INITECH),
            "DPoP": proof,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/.well-known/openid-configuration") as response:
                assert (await response.json())["token_endpoint"] == issuer + "/token"
            body = "grant_type=client_credentials"
            async with session.post(url + "/token", data=body, headers=headers) as response:
                assert response.status == 200, await response.text()
    finally:
        await runner.cleanup()


async def test_start_authserver_reports_a_busy_port_and_leaves_nothing_running() -> None:
    runner, port = await start_authserver("127.0.0.1", 0, keys=_keys())
    try:
        with pytest.raises(OSError):
            await start_authserver("127.0.0.1", port, keys=_keys())
    finally:
        await runner.cleanup()


async def test_bad_configuration_fails_before_anything_listens() -> None:
    with pytest.raises(ValueError, match="issuer"):
        await start_authserver("127.0.0.1", 0, issuer="as.example", keys=_keys())
    with pytest.raises(TypeError):
        await start_authserver("127.0.0.1", 0, keys=_keys(), no_such_option=1)


@pytest.mark.parametrize(
    ("remote", "allowed"),
    [("127.0.0.1", True), ("::1", True), ("127.8.0.1", True), ("10.0.0.1", False), (None, False)],
)
def test_key_rotation_is_a_loopback_only_hook(remote: str | None, allowed: bool) -> None:
    assert _is_loopback(remote) is allowed


def test_the_cli_lists_the_authserver_command() -> None:
    shown = CliRunner().invoke(cli, ["sandbox", "authserver", "--help"])
    assert shown.exit_code == 0 and "--gateway-secret" in shown.output


@pytest.mark.slow
def test_authserver_command_announces_itself_answers_and_stops_on_sigterm() -> None:
    command = [
        sys.executable,
        "-c",
        "from finward.cli.main import main; main()",
        *("sandbox", "authserver", "--port", "0", "--audience", "bank-api"),
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None and process.stderr is not None
            line = process.stdout.readline()
            match = LISTENING.fullmatch(line.strip())
            assert match, line
            url = f"http://127.0.0.1:{match.group(1)}"
            request = urllib.request.Request(
                url + "/token",
                data=b"grant_type=client_credentials&alg=PS256",
                headers={"Authorization": basic(*INITECH)},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                token = json.load(response)["access_token"]
            with urllib.request.urlopen(url + "/jwks", timeout=10) as response:
                assert len(json.load(response)["keys"]) == 3  # ES256, PS256, EdDSA
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["aud"] == "bank-api" and claims["iss"] == url
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert token not in process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()
