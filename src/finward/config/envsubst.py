"""``${NAME}`` / ``${NAME:-default}`` substitution in string scalars.

Substitution runs on the parsed document, never on the YAML text: a value that comes
from the environment is always one string, so a secret containing ``: `` or a newline
cannot add keys or change the structure of the file (the YAML injection that text-level
templating such as ``envsubst < finward.yaml`` allows).

Rules:

- ``${NAME}`` is replaced by the variable's value; unset is a problem.
- ``${NAME:-default}`` uses ``default`` when NAME is unset *or empty* (as in POSIX sh).
  The default is literal text up to the first ``}``: no nesting, no further expansion.
- ``$${`` is a literal ``${``. Any other ``$`` is left as it is.
- Only string values are substituted; mapping keys are not.

Every location that had a substitution is recorded: its value came from outside the
file and is treated as a secret (never echoed in problems, masked by ``config show``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from finward.config.problems import Location, Problem

# POSIX shell variable names (IEEE 1003.1, 3.235 "Name").
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_LITERAL_HINT = "write '$${' for a literal '${'"


@dataclass(slots=True)
class Expansion:
    """The result of expanding one string."""

    value: str
    substituted: bool = False
    # Values taken from the environment (not defaults): the secrets to scrub.
    used_values: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Substitution:
    """The document with every ``${...}`` replaced, and what that touched."""

    document: Any
    locations: frozenset[Location]
    used_values: frozenset[str]
    problems: tuple[Problem, ...]
    # Locations whose value could not be computed; later checks skip them so one
    # missing variable is reported once, not again as "not an integer".
    failed: frozenset[Location]


def expand(text: str, environ: Mapping[str, str]) -> Expansion:
    """Expand the ``${...}`` expressions in one string (a linear scan, no regex search)."""
    result = Expansion(value=text)
    if "$" not in text:
        return result
    out: list[str] = []
    i = 0
    while True:
        j = text.find("$", i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        if text.startswith("$${", j):
            out.append("${")
            i = j + 3
        elif text.startswith("${", j):
            end = text.find("}", j + 2)
            if end < 0:
                result.error = f"unterminated '${{' ({_LITERAL_HINT})"
                break
            name, has_default, default = text[j + 2 : end].partition(":-")
            if not _NAME.fullmatch(name):
                # The expression is not echoed: it may be a mistyped secret.
                result.error = (
                    "invalid '${...}' expression: a variable name is letters, digits and '_', "
                    f"not starting with a digit ({_LITERAL_HINT})"
                )
                break
            value = environ.get(name)
            if has_default and not value:
                out.append(default)
            elif value is None:
                result.missing.append(name)
            else:
                out.append(value)
                if value:
                    result.used_values.append(value)
            result.substituted = True
            i = end + 1
        else:
            out.append("$")
            i = j + 1
    result.value = "".join(out)
    return result


def substitute_env(document: Any, environ: Mapping[str, str]) -> Substitution:
    """Return a copy of ``document`` with every string scalar expanded.

    The copy also un-shares YAML aliases: each location gets its own value, so a
    location-keyed record of secrets stays accurate.
    """
    locations: set[Location] = set()
    used: set[str] = set()
    problems: list[Problem] = []
    failed: set[Location] = set()

    def walk(node: Any, location: Location) -> Any:
        if isinstance(node, dict):
            return {key: walk(value, (*location, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item, (*location, index)) for index, item in enumerate(node)]
        if not isinstance(node, str):
            return node
        expansion = expand(node, environ)
        if expansion.error is not None:
            problems.append(Problem(location, expansion.error))
            failed.add(location)
            return node
        for name in dict.fromkeys(expansion.missing):
            problems.append(
                Problem(
                    location,
                    f"environment variable {name} is not set",
                    f"set it, or give a default: ${{{name}:-value}}",
                )
            )
            failed.add(location)
        if expansion.substituted:
            locations.add(location)
            used.update(expansion.used_values)
        return expansion.value

    return Substitution(
        document=walk(document, ()),
        locations=frozenset(locations),
        used_values=frozenset(used),
        problems=tuple(problems),
        failed=frozenset(failed),
    )
