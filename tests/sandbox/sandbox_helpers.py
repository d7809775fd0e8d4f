"""Test helpers for the sandbox: a spec-checking HTTP client over a real socket.

Every JSON response of a public operation is validated against the sandbox's own
OpenAPI document, so the spec and the implementation cannot drift apart unnoticed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import jsonschema
import referencing
from multidict import CIMultiDictProxy
from referencing.jsonschema import DRAFT202012

PSU_HEADER = "X-Finward-PSU-ID"
SPEC_URI = "urn:finward:sandbox-openapi"


class SpecChecker:
    """Finds the operation a concrete request hit and validates the response body."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        resource = referencing.Resource.from_contents(spec, default_specification=DRAFT202012)
        self.registry: referencing.Registry[Any] = referencing.Registry().with_resource(
            SPEC_URI, resource
        )
        self.templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
            for path in spec["paths"]
        ]

    def template_for(self, path: str) -> str | None:
        matches = [template for regex, template in self.templates if regex.match(path)]
        assert len(matches) <= 1, matches
        return matches[0] if matches else None

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = self.registry.resolver(SPEC_URI).lookup(node["$ref"]).contents
        return node

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        template = self.template_for(path)
        if template is None:
            return  # not a public operation (shadow endpoints, unknown paths)
        operation = self.spec["paths"][template].get(method.lower())
        if operation is None:
            return
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {template} answered undocumented {status}"
        response = self._resolve(responses[str(status)])
        schema = response["content"]["application/json"]["schema"]
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"{SPEC_URI}{schema['$ref']}"},
            registry=self.registry,
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )
        validator.validate(body)


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]

    @property
    def error_code(self) -> str:
        """The BG error code, after checking the whole error envelope."""
        messages = self.body["tppMessages"]
        assert len(messages) == 1 and messages[0]["category"] == "ERROR"
        assert isinstance(messages[0]["text"], str) and messages[0]["text"]
        code: str = messages[0]["code"]
        return code


class SandboxClient:
    """A real HTTP client for one running sandbox, checking replies against the spec."""

    def __init__(self, session: aiohttp.ClientSession, base: str, checker: SpecChecker) -> None:
        self.session = session
        self.base = base
        self.checker = checker

    async def request(
        self,
        method: str,
        path: str,
        *,
        psu: str | None = "psu-alice",
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if psu is not None:
            sent[PSU_HEADER] = psu
        async with self.session.request(
            method, self.base + path, params=params, headers=sent, json=json, data=data
        ) as response:
            assert response.content_type == "application/json"
            body = await response.json()
            reply = Reply(response.status, body, response.headers)
        self.checker.check(method, path.split("?")[0], reply.status, body)
        return reply

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("POST", path, **kwargs)
