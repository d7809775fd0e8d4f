"""Fixtures for the sandbox bank: one bank per session, one real server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yaml

from finward.sandbox.data import Bank, build_bank
from finward.sandbox.paths import spec_path
from finward.sandbox.server import start_sandbox
from tests.sandbox.sandbox_helpers import SandboxClient, SpecChecker


@pytest.fixture(scope="session")
def bank() -> Bank:
    return build_bank()


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    with spec_path().open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


@pytest.fixture(scope="session")
def spec_checker(spec: dict[str, Any]) -> SpecChecker:
    return SpecChecker(spec)


@pytest.fixture
async def sandbox_url(bank: Bank) -> AsyncIterator[str]:
    runner, port = await start_sandbox("127.0.0.1", 0, bank=bank)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(sandbox_url: str, spec_checker: SpecChecker) -> AsyncIterator[SandboxClient]:
    async with aiohttp.ClientSession() as session:
        yield SandboxClient(session, sandbox_url, spec_checker)
