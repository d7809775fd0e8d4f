"""Load finward.yaml: read, substitute ``${ENV}``, validate, check, build.

Every problem is collected before anything is raised, so ``finward config check`` shows
the whole list at once instead of one fix-and-rerun round per mistake:

1. the file itself (size, encoding, YAML syntax, duplicate keys) — fatal, stops here;
2. ``${ENV}`` substitution (missing variables, malformed expressions);
3. JSON Schema (schema.json), sorted by location;
4. semantic checks (references, files, URLs, networks), in document order;
5. each API's OpenAPI document, loaded by finward.openapi.

No problem text contains a secret: admin.token, anything named like a token, password
or key, a state store URL with a password, and anything that came from the environment
is never quoted, and any such value that still slips into a message is replaced by
``***``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from finward.config.build import build_config
from finward.config.checks import CheckContext, check_semantics
from finward.config.envsubst import substitute_env
from finward.config.model import GatewayConfig
from finward.config.problems import (
    Location,
    Problem,
    format_location,
    is_secret_location,
    is_under,
    scrub,
    shorten,
)
from finward.config.schema_errors import IsSecret, coerce_substituted, collect_schema_problems
from finward.config.yamlfile import read_yaml_file
from finward.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ConfigReport:
    """The outcome of loading a config file: a config, or the problems (never both)."""

    config: GatewayConfig | None
    problems: tuple[str, ...]
    operation_count: int = 0  # across every API's OpenAPI document


def config_schema() -> dict[str, Any]:
    """The JSON Schema of finward.yaml (a fresh copy on every call)."""
    text = resources.files("finward.config").joinpath("schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Load and fully check a config file; raise ConfigError listing every problem.

    ``environ`` is what ``${NAME}`` reads (default: ``os.environ``).
    """
    report = inspect_config(path, environ=environ)
    if report.config is None:
        raise ConfigError(list(report.problems))
    return report.config


def check_config(path: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """Return the problems in a config file; an empty list means it is valid."""
    return list(inspect_config(path, environ=environ).problems)


def inspect_config(path: Path, *, environ: Mapping[str, str] | None = None) -> ConfigReport:
    """Load a config file and report on it, without raising for invalid configs."""
    path = Path(path)
    document, file_problems = read_yaml_file(path)
    if file_problems:
        return ConfigReport(None, tuple(p.format() for p in file_problems))
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else f"a single {type(document).__name__}"
        problem = Problem((), f"expected a mapping of settings, got {kind}")
        return ConfigReport(None, (problem.format(),))

    substitution = substitute_env(document, os.environ if environ is None else environ)
    env_locations = substitution.locations

    credentials = _urls_with_credentials(substitution.document)

    def is_secret(location: Location) -> bool:
        return location in env_locations or location in credentials or is_secret_location(location)

    schema = config_schema()
    document = coerce_substituted(substitution.document, env_locations, schema)
    base_dir = Path(os.path.abspath(path)).parent
    problems = [
        *collect_schema_problems(document, schema, is_secret),
        *check_semantics(document, CheckContext(base_dir, is_secret)),
    ]
    # A value that could not be substituted is reported once, as such, not again as
    # "expected an integer" or "file not found".
    problems = [p for p in problems if not is_under(p.location, substitution.failed)]
    problems = [*substitution.problems, *problems]
    operation_count = 0
    if isinstance(document.get("apis"), list):
        spec_problems, operation_count = _load_specs(
            document["apis"], base_dir, problems, is_secret
        )
        problems += spec_problems

    secrets = {*substitution.used_values, *_secret_values(document, credentials)}
    if problems:
        return ConfigReport(None, tuple(scrub((p.format() for p in problems), secrets)))
    secret_locations = {format_location(loc) for loc in {*env_locations, *credentials}}
    secret_locations.update(
        format_location(loc) for loc, _ in _secret_named(document, (), credentials)
    )
    config = build_config(document, base_dir, path, frozenset(secret_locations))
    return ConfigReport(config, (), operation_count)


def _load_specs(
    apis: list[Any], base_dir: Path, problems: list[Problem], is_secret: IsSecret
) -> tuple[list[Problem], int]:
    """Load each API's OpenAPI document whose entry is otherwise sound."""
    # Imported here: finward.openapi is heavier than config checking needs until this
    # point, and importing it lazily keeps `finward config schema` instant.
    from finward.openapi.loader import SpecError, load_spec

    spec_problems: list[Problem] = []
    operations = 0
    for index, api in enumerate(apis):
        location: Location = ("apis", index, "spec")
        if not isinstance(api, dict) or not isinstance(api.get("spec"), str):
            continue
        if any(is_under(p.location, [location]) for p in problems):
            continue  # the file is missing or unreadable; already reported
        name = api.get("name")
        label = name if isinstance(name, str) else f"apis[{index}]"
        # The spec's own path is not shown if it came from the environment.
        secret = is_secret(location)
        try:
            spec = load_spec(base_dir / api["spec"], api=label)
        except SpecError as exc:
            where = f"{exc.file} at {exc.pointer}" if exc.pointer else str(exc.file)
            where = "" if secret else f" {shorten(where, 200)}"
            message = f"invalid OpenAPI document{where}: {shorten(exc.message, 300)}"
            spec_problems.append(Problem(location, message, exc.hint))
        except RecursionError:
            spec_problems.append(Problem(location, "OpenAPI document is nested too deeply"))
        except Exception as exc:
            # `config check` must report, not crash, whatever the spec loader trips over;
            # the type names the bug for a report, the text is left out (it may quote paths).
            message = f"could not load the OpenAPI document (internal error: {type(exc).__name__})"
            spec_problems.append(Problem(location, message, "please report this"))
        else:
            operations += len(spec.operations)
    return spec_problems, operations


def _urls_with_credentials(document: Any) -> frozenset[Location]:
    """auth.state_store and rate_limits.store when they hold a password
    (redis://:password@host)."""
    found: set[Location] = set()
    for section, key in (("auth", "state_store"), ("rate_limits", "store")):
        parent = document.get(section) if isinstance(document, dict) else None
        store = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(store, str) and "@" in store:
            found.add((section, key))
    return frozenset(found)


def _secret_named(
    node: Any, location: Location, credentials: frozenset[Location]
) -> Iterator[tuple[Location, str]]:
    """(location, value) of every non-empty string under a secret-looking key."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _secret_named(value, (*location, key), credentials)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _secret_named(value, (*location, index), credentials)
    elif (
        isinstance(node, str) and node and (is_secret_location(location) or location in credentials)
    ):
        yield location, node


def _secret_values(document: Any, credentials: frozenset[Location]) -> set[str]:
    return {value for _, value in _secret_named(document, (), credentials)}
