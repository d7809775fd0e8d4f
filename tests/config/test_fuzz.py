"""Property: whatever the file contains, the loader returns a config or raises ConfigError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finward.config.loader import config_schema, load_config
from finward.config.model import GatewayConfig
from finward.errors import ConfigError

from .conftest import SPEC
from .schema_walk import key_paths

# Real key names make the generated documents reach the semantic checks, not only
# the "unknown key" path.
KEYS = sorted({path.split(".")[-1].removesuffix("[]") for path, _ in key_paths(config_schema())})
ENVIRON = {"A": "x", "PORT": "8080", "URL": "http://127.0.0.1:1"}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            "/",
            "spec.yaml",
            "http://127.0.0.1:8081",
            "bank",
            "${A}",
            "${MISSING}",
            "${",
            "$${",
            "10.0.0.0/8",
            "0.0.0.0",
            "required",
            "none",
            "\x00",
            "../" * 3,
            "a" * 300,
            "::1",
        ]
    ),
    st.text(max_size=20),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=30,
)
yaml_tokens = st.sampled_from(
    [
        "\n",
        "  ",
        ": ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a ",
        "*a",
        "<<: ",
        "!!binary ",
        "? ",
        "---\n",
        "'",
        '"',
        "#",
        "|",
        ">",
        "!!python/name:os.system ",
        "\t",
        "%YAML 1.1\n",
        "\\x",
    ]
)
yaml_texts = st.lists(
    st.one_of(yaml_tokens, st.sampled_from(KEYS), st.text(max_size=5)), max_size=40
).map("".join)


def _check(folder: Path, text: str) -> None:
    path = folder / "finward.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        config = load_config(path, environ=ENVIRON)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
    else:
        assert isinstance(config, GatewayConfig)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz")
    (path / "spec.yaml").write_text(SPEC)
    return path


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents)
def test_loader_only_raises_config_error_on_structured_documents(
    folder: Path, document: Any
) -> None:
    _check(folder, yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=yaml_texts)
def test_loader_only_raises_config_error_on_yaml_ish_text(folder: Path, text: str) -> None:
    _check(folder, text)


@settings(max_examples=100, deadline=None)
@given(
    sections=st.dictionaries(
        st.sampled_from(["listen", "admin", "upstreams", "apis", "limits", "proxy", "server"]),
        documents,
        max_size=4,
    )
)
def test_loader_only_raises_config_error_near_valid_configs(
    folder: Path, sections: dict[str, Any]
) -> None:
    base: dict[str, Any] = {
        "upstreams": {"bank": {"url": "http://127.0.0.1:8081"}},
        "apis": [{"name": "a", "spec": "spec.yaml", "upstream": "bank"}],
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    _check(folder, yaml.safe_dump(base, allow_unicode=True))
