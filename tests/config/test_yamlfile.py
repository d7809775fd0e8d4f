"""The file itself: size, encoding, syntax, duplicate keys, aliases, nesting."""

from __future__ import annotations

from pathlib import Path

import pytest

from finward.config.loader import check_config, load_config
from finward.config.yamlfile import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, MAX_CONFIG_NODES
from finward.errors import ConfigError

from .conftest import MINIMAL, WriteConfig


def test_duplicate_keys_are_refused_with_both_lines(write_config: WriteConfig) -> None:
    path = write_config(
        """\
        listen:
          port: 8080
          host: 127.0.0.1
          port: 9090
        """
    )
    assert check_config(path, environ={}) == [
        "listen.port: duplicate key on line 4 (first on line 2) "
        "(YAML would silently keep only the last one; remove one of them)"
    ]


def test_every_duplicate_key_is_reported(write_config: WriteConfig) -> None:
    path = write_config(
        """\
        version: 1
        upstreams:
          bank: {url: "http://a"}
          bank: {url: "http://b"}
        version: 1
        """
    )
    problems = check_config(path, environ={})
    assert [p.split(":")[0] for p in problems] == ["upstreams.bank", "version"]


def test_anchors_aliases_and_merge_keys_are_allowed(write_config: WriteConfig) -> None:
    path = write_config(
        """\
        upstreams:
          bank: &bank
            url: "http://127.0.0.1:8081"
            timeouts: &fast {connect_s: 1, read_s: 2, total_s: 3}
          bank2:
            <<: *bank
            url: "http://127.0.0.1:8082"
        apis:
          - {name: a, spec: spec.yaml, upstream: bank}
        """
    )
    config = load_config(path, environ={})
    assert config.upstreams["bank2"].url == "http://127.0.0.1:8082"
    assert config.upstreams["bank2"].timeouts == config.upstreams["bank"].timeouts
    assert config.upstreams["bank2"].timeouts.total_s == 3.0


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    # Not valid YAML either: if it were parsed, the message would say so.
    path.write_bytes(b"version: 1\n" + b"{" * MAX_CONFIG_BYTES)
    assert check_config(path, environ={}) == [
        f"{path}: file is {MAX_CONFIG_BYTES + 11} bytes, more than the limit of {MAX_CONFIG_BYTES}"
    ]


def test_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    padding = MAX_CONFIG_BYTES - len("version: 1\n")
    path.write_bytes(b"version: 1\n" + b"#" * (padding - 1) + b"\n")
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert check_config(path, environ={}) == []


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert check_config(path, environ={}) == [
        f"(root): the document expands to more than {MAX_CONFIG_NODES} values "
        "(too many YAML aliases; is this an alias bomb?)"
    ]


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("apis: &loop [*loop]\n")
    problems = check_config(path, environ={})
    assert "apis[0]: an alias refers to its own parent" in problems


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("x: " + "[" * 5000 + "]" * 5000 + "\n")
    assert check_config(path, environ={}) == [
        f"{path}: invalid YAML: nested deeper than {MAX_CONFIG_DEPTH} levels"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "listen:\n  port: 80\n   host: x\n",
            "{path}: invalid YAML at line 3, column 8: mapping values are not allowed here",
        ),
        (
            "listen: [1, 2\n",
            "{path}: invalid YAML at line 2, column 1: expected ',' or ']', but got "
            "'<stream end>' (while parsing a flow sequence on line 1)",
        ),
        ("a: *nope\n", "{path}: invalid YAML at line 1, column 4: found undefined alias 'nope'"),
        ("version: 1\n---\nversion: 1\n", None),
        ("x: !!python/object:os.system {}\n", None),
    ],
)
def test_invalid_yaml_is_reported_with_its_position(
    tmp_path: Path, text: str, expected: str | None
) -> None:
    path = tmp_path / "finward.yaml"
    path.write_text(text)
    problems = check_config(path, environ={})
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: invalid YAML at line ")
    if expected is not None:
        assert problems[0] == expected.format(path=path)


def test_yaml_error_does_not_quote_the_offending_line(tmp_path: Path) -> None:
    path = tmp_path / "finward.yaml"
    path.write_text('admin:\n  token: "tok-9f8e7d6c5b4a39281706"\n   bad: [\n')
    (problem,) = check_config(path, environ={})
    assert "tok-9f8e7d6c5b4a39281706" not in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("on: 1\n", "on: key on line 1 is not a string"),
        ("listen:\n  8080: x\n", "listen['8080']: key on line 2 is not a string"),
        ("? [a, b]\n: x\n", "['?']: key on line 1 is not a string"),
    ],
)
def test_non_string_keys_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "finward.yaml"
    path.write_text(text)
    (problem,) = check_config(path, environ={})
    assert problem == expected + (
        " (quote it; in YAML 1.1 on/off/yes/no are booleans and 80 is a number)"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "{path}: the file is empty (expected a mapping of settings)"),
        (b"# only a comment\n", "{path}: the file is empty (expected a mapping of settings)"),
        (b"- a\n- b\n", "(root): expected a mapping of settings, got a list"),
        (b"just text\n", "(root): expected a mapping of settings, got a single str"),
        (b"version: 1\nname: caf\xe9\n", "{path}: not UTF-8 text (invalid byte at offset 20)"),
        (b"a: \x1b[31m\n", "{path}: invalid YAML: character #x001b is not allowed (at offset 3)"),
    ],
)
def test_unusable_documents_are_reported(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "finward.yaml"
    path.write_bytes(content)
    assert check_config(path, environ={}) == [expected.format(path=path)]


def test_utf8_bom_is_accepted(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert check_config(path, environ={}) == []


def test_missing_file_and_directory_are_reported(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert check_config(missing, environ={}) == [f"{missing}: file not found"]
    assert check_config(tmp_path, environ={}) == [f"{tmp_path}: is a directory, not a config file"]
    with pytest.raises(ConfigError, match="file not found"):
        load_config(missing, environ={})
