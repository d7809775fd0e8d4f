"""Where the sandbox's package data lives (kept import-light: no aiohttp here)."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def spec_path() -> Path:
    """The sandbox's own OpenAPI 3.1 description (public endpoints only, no shadows)."""
    return _HERE / "openapi.yaml"
