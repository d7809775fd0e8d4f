"""Compile a configuration into the immutable structures the data plane reads."""

from __future__ import annotations

from dataclasses import dataclass

from finward.config.model import GatewayConfig
from finward.core.canonical import CanonicalPathPolicy
from finward.core.pipeline import Pipeline
from finward.core.route_policy import RoutingPolicy
from finward.core.routing import Mount, Router
from finward.openapi.loader import load_spec


@dataclass(frozen=True, slots=True)
class CompiledGateway:
    """Everything a request needs, built once per configuration (re)load."""

    config: GatewayConfig
    router: Router
    pipeline: Pipeline


def compile_gateway(config: GatewayConfig) -> CompiledGateway:
    mounts = []
    for api in config.apis:
        spec = load_spec(api.spec, api=api.name)
        mounts.append(
            Mount(
                api=api.name,
                base_path=api.base_path,
                upstream=api.upstream,
                upstream_path_prefix=api.upstream_path_prefix,
                operations=spec.operations,
            )
        )
    router = Router.compile(mounts)
    pipeline = Pipeline([CanonicalPathPolicy(), RoutingPolicy(router)])
    return CompiledGateway(config=config, router=router, pipeline=pipeline)
