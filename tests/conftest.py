"""Fixtures shared by every test folder (the helpers live in tests/harness.py)."""

from collections.abc import Mapping
from typing import Any

import pytest
import uvloop

from tests.harness import gateway, upstream
from tests.services import make_server, redis_server_binary

__all__ = ["gateway", "make_server", "redis_server_binary", "upstream"]


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Any]:
    """Run async tests on uvloop, the loop finward serves on in production."""
    return {"uvloop": uvloop.new_event_loop}
