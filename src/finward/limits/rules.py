"""Which limits each operation counts, compiled once per configuration (re)load.

Per request the policy only looks up ``(api, METHOD, path template)`` here; rule
selection (``apply_to``), weights (``costs``) and key parsing all happen at load time.
A ``costs`` or ``apply_to`` entry that matches no operation is a configuration error
(a typo must not silently leave an expensive operation at the default cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from finward.config.model import RateLimitConfig, RateLimitsConfig
from finward.errors import ConfigError
from finward.limits.algorithms import MAX_CHECKS, compile_rule
from finward.limits.base import LimitRule
from finward.limits.keys import IDENTITY_PARTS, KeyPart, KeyPartError, parse_key_part
from finward.openapi.model import LoadedSpec, Operation

OperationRef = tuple[str, str, str]  # (api name, METHOD, path template)
_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})


@dataclass(frozen=True, slots=True)
class AppliedLimit:
    """One limit as it applies to one operation: the rule, its key parts, the cost."""

    rule: LimitRule
    parts: tuple[KeyPart, ...]
    cost: int
    needs_principal: bool  # an identity or claim part: skipped without a caller


def limit_rule(cfg: RateLimitConfig, defaults: RateLimitsConfig) -> LimitRule:
    return LimitRule(
        name=cfg.name,
        algorithm=cfg.algorithm,
        limit=cfg.limit,
        period_s=cfg.period_s,
        burst=cfg.burst or 0,
        calendar=cfg.calendar,
        timezone=cfg.timezone,
        lease_s=cfg.lease_s,
        on_store_error=cfg.on_store_error or defaults.on_store_error,
    )


def key_parts(cfg: RateLimitConfig) -> tuple[KeyPart, ...]:
    """Parsed key parts (the config check already refused bad ones)."""
    try:
        return tuple(parse_key_part(part) for part in cfg.key)
    except KeyPartError as exc:
        raise ConfigError([f"rate_limits.limits.{cfg.name}.key: {exc} ({exc.hint})"]) from None


def compile_limits(
    config: RateLimitsConfig,
    specs: Sequence[tuple[str, LoadedSpec]],
    phase: str | None = None,
) -> dict[OperationRef, tuple[AppliedLimit, ...]]:
    """Limits by operation, in configuration order; operations without any are absent.

    ``phase`` keeps only the limits of that phase (``before_auth``, ``after_auth``)."""
    problems: list[str] = []
    out: dict[OperationRef, list[AppliedLimit]] = {}
    for index, cfg in enumerate(config.limits):
        if phase is not None and cfg.phase != phase:
            continue
        base = f"rate_limits.limits[{index}]"
        try:
            parts = key_parts(cfg)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        rule = limit_rule(cfg, config)
        try:
            compile_rule(rule)  # the stores' own bounds (burst x period, periods, leases)
        except ValueError as exc:
            problems.append(f"{base}: {exc}")
            continue
        selected = _select(base, cfg, specs, problems)
        costs = _costs(base, cfg, selected, problems)
        for name, cost in [("cost", cfg.cost), *(("costs." + k, v) for k, v in cfg.costs.items())]:
            if cost > rule.capacity:
                problems.append(
                    f"{base}.{name}: {cost} is more than the limit allows at once "
                    f"({rule.capacity}), so these requests could never pass"
                )
        needs_principal = any(p.kind in IDENTITY_PARTS or p.kind == "claim" for p in parts)
        for ref, _ in selected:
            cost = costs.get(ref, cfg.cost)
            out.setdefault(ref, []).append(AppliedLimit(rule, parts, cost, needs_principal))
    for (api, method, path), limits in out.items():
        if len(limits) > MAX_CHECKS:
            problems.append(
                f"rate_limits.limits: {len(limits)} limits apply to {method} {path} of API "
                f"{api}; at most {MAX_CHECKS} can (narrow them with apply_to)"
            )
    if problems:
        raise ConfigError(problems)
    return {ref: tuple(limits) for ref, limits in out.items()}


def _select(
    base: str,
    cfg: RateLimitConfig,
    specs: Sequence[tuple[str, LoadedSpec]],
    problems: list[str],
) -> list[tuple[OperationRef, Operation]]:
    """The operations ``apply_to`` selects (every one when it is empty)."""
    scope = cfg.apply_to
    in_apis = [
        (api, op)
        for api, spec in specs
        if not scope.apis or api in scope.apis
        for op in spec.operations
    ]
    tags_seen = {tag for _, op in in_apis for tag in op.tags}
    for position, tag in enumerate(scope.tags):
        if tag not in tags_seen:
            problems.append(
                f"{base}.apply_to.tags[{position}]: no operation of the selected APIs has the "
                f"tag {tag!r} (tags: {', '.join(sorted(tags_seen)) or 'none'})"
            )
    for position, name in enumerate(scope.operations):
        if not any(_matches(name, op) for _, op in in_apis):
            problems.append(
                f"{base}.apply_to.operations[{position}]: no operation of the selected APIs "
                f"has the operationId or METHOD /path {name!r} (check the spelling against "
                "the OpenAPI document)"
            )
    selected = []
    for api, op in in_apis:
        if scope.tags and not any(tag in scope.tags for tag in op.tags):
            continue
        if scope.operations and not any(_matches(name, op) for name in scope.operations):
            continue
        selected.append(((api, op.method, op.path_template), op))
    return selected


def _costs(
    base: str,
    cfg: RateLimitConfig,
    selected: list[tuple[OperationRef, Operation]],
    problems: list[str],
) -> dict[OperationRef, int]:
    costs: dict[OperationRef, int] = {}
    for name, cost in cfg.costs.items():
        hits = [ref for ref, op in selected if _matches(name, op)]
        if not hits:
            problems.append(
                f"{base}.costs.{name}: no operation this limit applies to has this "
                "operationId or METHOD /path (check the spelling, and apply_to)"
            )
        for ref in hits:
            costs[ref] = cost
    return costs


def _matches(name: str, op: Operation) -> bool:
    if op.operation_id is not None and name == op.operation_id:
        return True
    method, _, path = name.strip().partition(" ")
    method = method.upper()
    return method in _METHODS and method == op.method and path.strip() == op.path_template
