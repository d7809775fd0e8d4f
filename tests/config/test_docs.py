"""docs/configuration.md documents every key of schema.json, so docs cannot drift."""

from __future__ import annotations

from pathlib import Path

from finward.config.loader import config_schema

from .schema_walk import key_paths

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_schema_key_is_documented() -> None:
    text = DOC.read_text()
    missing = [path for path, _ in key_paths(config_schema()) if f"`{path}`" not in text]
    assert missing == []


def test_documented_defaults_match_the_schema() -> None:
    """Each key's heading line in the reference gives the schema default verbatim."""
    text = DOC.read_text()
    for path, node in key_paths(config_schema()):
        if "default" not in node or isinstance(node["default"], dict | list):
            continue
        default = node["default"]
        rendered = (
            "null"
            if default is None
            else str(default).lower()
            if isinstance(default, bool)
            else f'"{default}"'
            if isinstance(default, str)
            else str(default)
        )
        assert f"`{path}` | " in text, path
        row = next(line for line in text.splitlines() if line.startswith(f"| `{path}` | "))
        assert f"`{rendered}`" in row, (path, rendered, row)


def test_docs_mention_the_tools() -> None:
    text = DOC.read_text()
    for phrase in (
        "finward config schema",
        "finward config check",
        "finward config show",
        "yaml-language-server: $schema=",
        "${NAME:-default}",
        "$${",
    ):
        assert phrase in text, phrase
