"""Every shipped example passes `finward config check`, from a fresh clone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import trustme

from finward.config.loader import check_config, inspect_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


@pytest.fixture(scope="module")
def environ(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the examples read from ${...}: real certificate files and an admin token."""
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.private_key_pem.write_to_path(str(folder / "server-key.pem"))
    server.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
    ca.cert_pem.write_to_path(str(folder / "tpp-ca.pem"))
    return {
        "FINWARD_TLS_CERT": str(folder / "server.pem"),
        "FINWARD_TLS_KEY": str(folder / "server-key.pem"),
        "FINWARD_CLIENT_CA": str(folder / "tpp-ca.pem"),
        "FINWARD_ADMIN_TOKEN": "example-admin-token-0123456789abcdef",
        "FINWARD_DPOP_NONCE_SECRET": "example-dpop-nonce-secret-0123456789abcdef",
    }


def test_there_are_examples() -> None:
    assert {p.name for p in EXAMPLE_FILES} >= {
        "finward.yaml",
        "finward-tls.yaml",
        "finward-auth.yaml",
        "finward-limits.yaml",
    }


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_example_passes_config_check(path: Path, environ: dict[str, str]) -> None:
    assert check_config(path, environ=environ) == []
    report = inspect_config(path, environ=environ)
    assert report.config is not None and report.config.apis
    assert report.operation_count > 0


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_example_references_only_files_inside_the_repository(path: Path) -> None:
    repo = EXAMPLES.parent
    for match in re.finditer(r"^\s*-?\s*spec:\s*(\S+)", path.read_text(), re.MULTILINE):
        target = (path.parent / match.group(1)).resolve()
        assert target.is_relative_to(repo), target


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_example_points_editors_at_the_schema(path: Path) -> None:
    first = path.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../src/finward/config/schema.json"
    assert (path.parent / "../src/finward/config/schema.json").is_file()
