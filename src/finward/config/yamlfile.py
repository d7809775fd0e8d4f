"""Read finward.yaml into plain Python data, refusing what YAML would silently accept.

- Size-capped before parsing, nesting-capped while parsing, and alias expansion capped
  before constructing: a config file is trusted input, but it is also what an operator
  pastes from a ticket, and a "billion laughs" file must not hang ``config check``.
- Safe loader only (no Python object tags).
- Duplicate keys are an error: YAML keeps the last one silently, so a second ``port:``
  further down a long file overrides the first without a word.
- Mapping keys must be strings: ``on:`` is the boolean True in YAML 1.1 and ``8080:`` is
  an integer; neither can be a setting name.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from finward.config.problems import Location, Problem, shorten

# 1 MiB: a policy with hundreds of APIs is a few dozen KiB; anything near this is a
# mistake (a spec or a log passed instead of the config), and is refused unread.
MAX_CONFIG_BYTES = 1_048_576

# Deeper than any real config; keeps PyYAML's recursive composer and our own walkers
# far from Python's recursion limit.
MAX_CONFIG_DEPTH = 64

# Nodes after alias expansion. Aliases are shared, not copied, by the YAML loader, but
# everything that walks the result (schema validation, substitution) visits each use:
# nine levels of ten aliases is 10^9 visits from a few hundred bytes ("billion laughs").
MAX_CONFIG_NODES = 100_000

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _ConfigYamlError(Exception):
    """Raised from inside the composer when a structural limit is exceeded."""


class _ConfigLoader(yaml.SafeLoader):
    """The safe loader plus a nesting limit (checked as nodes are composed)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_CONFIG_DEPTH:
                raise _ConfigYamlError(f"nested deeper than {MAX_CONFIG_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _NodeCheck:
    """Walks the composed node graph once: duplicates, key types, cycles, size."""

    def __init__(self) -> None:
        self.problems: list[tuple[int, Problem]] = []  # (line, problem)

    def run(self, root: Node) -> None:
        sizes: dict[int, int] = {}
        if self._size(root, (), sizes, set()) > MAX_CONFIG_NODES:
            self.problems.append(
                (
                    0,
                    Problem(
                        (),
                        f"the document expands to more than {MAX_CONFIG_NODES} values",
                        "too many YAML aliases; is this an alias bomb?",
                    ),
                )
            )

    def _size(self, node: Node, location: Location, sizes: dict[int, int], open_: set[int]) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            line = node.start_mark.line + 1
            self.problems.append((line, Problem(location, "an alias refers to its own parent")))
            sizes[key] = MAX_CONFIG_NODES + 1  # stop here; the document is rejected anyway
            return sizes[key]
        open_.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                total += self._size(item, (*location, index), sizes, open_)
        elif isinstance(node, MappingNode):
            self._check_keys(node, location)
            for key_node, value_node in node.value:
                name = key_node.value if isinstance(key_node, ScalarNode) else "?"
                total += 1 + self._size(value_node, (*location, str(name)), sizes, open_)
        open_.discard(key)
        sizes[key] = total
        return total

    def _check_keys(self, node: MappingNode, location: Location) -> None:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE_TAG:
                continue  # `<<: *base` then overriding a key is the point of merging
            if not isinstance(key_node, ScalarNode) or key_node.tag != _STR_TAG:
                shown = shorten(str(key_node.value)) if isinstance(key_node, ScalarNode) else "?"
                problem = Problem(
                    (*location, shown),
                    f"key on line {line} is not a string",
                    "quote it; in YAML 1.1 on/off/yes/no are booleans and 80 is a number",
                )
                self.problems.append((line, problem))
                continue
            name = key_node.value
            if name in seen:
                problem = Problem(
                    (*location, name),
                    f"duplicate key on line {line} (first on line {seen[name]})",
                    "YAML would silently keep only the last one; remove one of them",
                )
                self.problems.append((line, problem))
            else:
                seen[name] = line


def read_yaml_file(path: Path) -> tuple[Any, list[Problem]]:
    """Return the parsed document, or ``(None, problems)`` if the file is unusable."""
    label = str(path)
    text, problem = _read_text(path)
    if problem is not None:
        return None, [Problem((), problem, label=label)]
    try:
        # The reader checks every character up front, in the constructor.
        loader = _ConfigLoader(text)
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else 0
        message = f"invalid YAML: character #x{code:04x} is not allowed"
        return None, [Problem((), f"{message} (at offset {exc.position})", label=label)]
    try:
        root = loader.get_single_node()
        if root is None:
            return None, [
                Problem((), "the file is empty", "expected a mapping of settings", label=label)
            ]
        check = _NodeCheck()
        check.run(root)
        if check.problems:
            # By line, as the user reads the file (the walk visits parents first).
            return None, [problem for _, problem in sorted(check.problems, key=lambda p: p[0])]
        return loader.construct_document(root), []
    except _ConfigYamlError as exc:
        return None, [Problem((), f"invalid YAML: {exc}", label=label)]
    except yaml.MarkedYAMLError as exc:
        return None, [_yaml_problem(exc, label)]
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        # ValueError: PyYAML's int/float/timestamp constructors on odd scalars.
        return None, [Problem((), f"invalid YAML: {type(exc).__name__}", label=label)]
    finally:
        loader.dispose()


def _read_text(path: Path) -> tuple[str, str | None]:
    """Read at most MAX_CONFIG_BYTES (+1 to detect more) of UTF-8 text."""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            return "", "is a directory, not a config file"
        if info.st_size > MAX_CONFIG_BYTES:
            return "", _too_large(info.st_size)
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return "", "file not found"
    except PermissionError:
        return "", "file is not readable (check its permissions)"
    except (OSError, ValueError) as exc:
        return "", f"cannot read the file ({type(exc).__name__})"
    if len(data) > MAX_CONFIG_BYTES:  # a pipe or a file that grew after stat
        return "", _too_large(len(data))
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return "", f"not UTF-8 text (invalid byte at offset {exc.start})"


def _too_large(size: int) -> str:
    return f"file is {size} bytes, more than the limit of {MAX_CONFIG_BYTES}"


def _yaml_problem(exc: yaml.MarkedYAMLError, label: str) -> Problem:
    # Only PyYAML's problem text and position: str(exc) also quotes the offending
    # line, which may hold a secret.
    mark = exc.problem_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    hint = None
    if exc.context:
        context_mark = exc.context_mark
        hint = exc.context + (f" on line {context_mark.line + 1}" if context_mark else "")
    problem = shorten(exc.problem or "syntax error", 120)
    return Problem((), f"invalid YAML{where}: {problem}", hint, label=label)
