"""What each operation demands of its caller, compiled once from configuration and spec.

Precedence: an ``operations`` entry (by operationId or ``METHOD /template``) beats a
``tags`` entry (first matching tag in the operation's tag order), which beats the API's
own settings. Scopes default to the operation's OpenAPI ``security`` requirement: the
token must cover one alternative completely (OpenAPI 3.x "Security Requirement Object":
alternatives are OR-ed, schemes inside one are AND-ed). Only ``oauth2`` and
``openIdConnect`` schemes carry scopes; an alternative made only of other schemes (an API
key the gateway sets, for instance) needs no scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from finward.config.model import AccessRule, ApiAuthConfig, TokenMode
from finward.errors import ConfigError
from finward.openapi.model import LoadedSpec, Operation

PSD2_ROLES = frozenset({"PSP_AS", "PSP_PI", "PSP_AI", "PSP_IC"})
_SCOPED_SCHEMES = frozenset({"oauth2", "openidconnect"})
_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"})


@dataclass(frozen=True, slots=True)
class OperationAuth:
    """The effective authentication and authorisation rule of one operation."""

    token: TokenMode  # never "spec": resolved here to required/optional
    sender_constraint: str  # "required" | "optional"
    sender_method: str  # "mtls" | "dpop" | "any"
    # Alternatives of scope sets; the token must hold every scope of at least one.
    # () means no scope is needed.
    scope_alternatives: tuple[frozenset[str], ...]
    tpp_roles: frozenset[str]  # any one of them; empty: no eIDAS identification needed
    error_format: str  # "problem" | "berlin-group"

    @property
    def accepts_dpop(self) -> bool:
        return self.sender_method in ("dpop", "any")

    def scopes_missing(self, held: frozenset[str]) -> frozenset[str] | None:
        """None when ``held`` covers an alternative; else the smallest missing set."""
        if not self.scope_alternatives:
            return None
        best: frozenset[str] | None = None
        for needed in self.scope_alternatives:
            missing = needed - held
            if not missing:
                return None
            if best is None or len(missing) < len(best):
                best = missing
        return best


def operation_key(op: Operation) -> str:
    return f"{op.method} {op.path_template}"


def compile_rules(
    api_name: str, auth: ApiAuthConfig, spec: LoadedSpec
) -> dict[tuple[str, str], OperationAuth]:
    """Rules keyed by (METHOD, path template) for every operation of ``spec``.

    Raises ``ConfigError`` naming the configuration location when an ``operations`` key
    matches no operation of the spec (a typo must not silently leave an operation on
    the API default).
    """
    schemes = _scheme_types(spec)
    problems: list[str] = []
    for operation in spec.operations:
        for alternative in operation.security or ():
            for name in alternative:
                if name not in schemes:
                    where = operation.operation_id or operation_key(operation)
                    problems.append(
                        f"apis.{api_name}: operation {where} requires security scheme "
                        f"{name!r}, which components.securitySchemes does not define (or "
                        "its $ref does not resolve); scopes could not be enforced"
                    )
    by_id = {op.operation_id: op for op in spec.operations if op.operation_id}
    by_key = {operation_key(op): op for op in spec.operations}
    overrides: dict[str, AccessRule] = {}
    for key, rule in auth.operations.items():
        op = by_id.get(key) or by_key.get(_normalise_key(key))
        if op is None:
            problems.append(
                f"apis.{api_name}.auth.operations.{key}: no operation of the spec has this "
                "operationId or METHOD /path (check the spelling against the OpenAPI document)"
            )
            continue
        overrides[operation_key(op)] = rule
    tags = set().union(*(op.tags for op in spec.operations)) if spec.operations else set()
    for tag in auth.tags:
        if tag not in tags:
            problems.append(
                f"apis.{api_name}.auth.tags.{tag}: no operation of the spec has this tag "
                f"(tags in the spec: {', '.join(sorted(tags)) or 'none'})"
            )
    if problems:
        raise ConfigError(problems)
    rules: dict[tuple[str, str], OperationAuth] = {}
    for op in spec.operations:
        layers = [auth.tags[t] for t in op.tags if t in auth.tags][:1]
        own = overrides.get(operation_key(op))
        if own is not None:
            layers.append(own)
        rules[(op.method, op.path_template)] = _effective(auth, layers, op, schemes)
    return rules


def _effective(
    api: ApiAuthConfig,
    layers: list[AccessRule],
    op: Operation,
    schemes: Mapping[str, str],
) -> OperationAuth:
    token: TokenMode = api.token
    sender_constraint: str = api.sender_constraint
    sender_method: str = api.sender_method
    scopes = api.scopes
    roles: tuple[str, ...] = api.tpp_roles
    for layer in layers:
        token = layer.token or token
        sender_constraint = layer.sender_constraint or sender_constraint
        sender_method = layer.sender_method or sender_method
        scopes = layer.scopes if layer.scopes is not None else scopes
        roles = layer.tpp_roles if layer.tpp_roles is not None else roles
    if scopes is not None:
        alternatives: tuple[frozenset[str], ...] = (frozenset(scopes),) if scopes else ()
    else:
        alternatives = _spec_scopes(op, schemes)
    if token == "spec":
        token = "required" if _spec_requires_credentials(op) else "optional"
    return OperationAuth(
        token=token,
        sender_constraint=sender_constraint,
        sender_method=sender_method,
        scope_alternatives=alternatives,
        tpp_roles=frozenset(roles),
        error_format=api.error_format,
    )


def _spec_requires_credentials(op: Operation) -> bool:
    security = op.security
    if not security:  # absent or explicitly []
        return False
    return all(len(alternative) > 0 for alternative in security)  # {} makes it optional


def _spec_scopes(op: Operation, schemes: Mapping[str, str]) -> tuple[frozenset[str], ...]:
    """The scope sets of the alternatives a token can satisfy.

    ``{}`` (anonymous allowed) means no scope is enforced. Alternatives without any
    OAuth 2.0 / OpenID Connect scheme (an API key alone) are ones a token does not
    satisfy, so they are left out: a caller that reached this check with a token must
    cover one of the token alternatives.
    """
    if not op.security:
        return ()
    alternatives = []
    for alternative in op.security:
        if not alternative:
            return ()
        oauth = [name for name in alternative if schemes.get(name) in _SCOPED_SCHEMES]
        if not oauth:
            continue
        alternatives.append(frozenset(s for name in oauth for s in alternative[name]))
    if any(not needed for needed in alternatives):
        return ()  # an OAuth alternative without scopes: any valid token will do
    return tuple(alternatives)


def _scheme_types(spec: LoadedSpec) -> dict[str, str]:
    components = spec.document.get("components")
    raw = components.get("securitySchemes") if isinstance(components, Mapping) else None
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, str] = {}
    for name, scheme in raw.items():
        ref = scheme.get("$ref") if isinstance(scheme, Mapping) else None
        if isinstance(ref, str):
            scheme = _resolve_ref(spec, ref)
        if isinstance(scheme, Mapping) and isinstance(scheme.get("type"), str):
            out[str(name)] = str(scheme["type"]).lower()
    return out


def _resolve_ref(spec: LoadedSpec, ref: str) -> object:
    """A securitySchemes ``$ref`` (same file or a relative file); None if it fails."""
    try:
        return spec.resolver.resolve({"$ref": ref}, spec.path, None)
    except Exception:  # an unresolvable ref leaves the scheme undefined: reported above
        return None


def _normalise_key(key: str) -> str:
    method, _, path = key.strip().partition(" ")
    method = method.upper()
    return f"{method} {path.strip()}" if method in _METHODS else key
