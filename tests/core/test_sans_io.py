"""The policy core is sans-IO (DESIGN.md): a lint rule, enforced as a test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE_PACKAGES = [
    "core",
    "auth",
    "limits",
    "validation",
    "masking",
    "decision.py",
    "http.py",
    "errors.py",
    "clock.py",
]
FORBIDDEN = {
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "aiohttp",
    "httptools",
    "uvloop",
    "httpx",
    "requests",
    "urllib.request",
    "http.client",
    "sqlite3",
    "redis",
    "psycopg",
    "asyncpg",
    "subprocess",
    "threading",
}
SRC = Path(__file__).resolve().parents[2] / "src" / "finward"


def _core_files() -> list[Path]:
    files: list[Path] = []
    for entry in CORE_PACKAGES:
        path = SRC / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_core_module_does_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
    bad = {
        name for name in imported if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert bad == set(), f"{path.name} imports I/O modules {bad}; move the I/O to an adapter"
