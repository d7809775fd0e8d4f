"""Helpers for config tests: write a config (and a small OpenAPI spec) into tmp_path."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

SPEC = """\
openapi: 3.0.3
info: {title: Accounts, version: "1"}
paths:
  /accounts:
    get:
      responses: {"200": {description: ok}}
  /accounts/{id}:
    get:
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {"200": {description: ok}}
"""

# The smallest complete config: one upstream, one API (two operations).
MINIMAL = """\
version: 1
upstreams:
  bank: {url: "http://127.0.0.1:8081"}
apis:
  - {name: accounts, spec: spec.yaml, upstream: bank}
"""

WriteConfig = Callable[[str], Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write ``text`` (dedented) as tmp_path/finward.yaml, next to spec.yaml."""
    (tmp_path / "spec.yaml").write_text(SPEC)

    def write(text: str) -> Path:
        path = tmp_path / "finward.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    return write
