"""The route table: which declared API operation a request path and method are.

Positive security model: a request that matches no declared operation never
reaches an upstream. The table is a segment trie compiled once from the mounted
specs, so a match costs about the number of path segments, whatever the number
of operations.

Matching rules (OpenAPI 3.x, "Path Templating Matching": concrete paths before
templated ones):

* At each segment a literal child is tried first, then mixed segments such as
  ``{name}.json`` (most literal text first), then a whole-segment ``{param}``;
  on a dead end the search backtracks, so ``/a/{x}/c`` still matches ``/a/b/c``
  when ``/a/b/d`` exists. Each trie node is visited at most once per match.
* The method takes part in the search: the first path template (in that order)
  that declares the method wins. Only when no matching template declares it is
  the answer 405, with every method the matching templates declare. HEAD is not
  implied by GET: only declared operations pass.
* Literals compare with the percent-decoded segment, parameters capture it
  decoded. A segment that decodes to ``/``, NUL, ``.`` or ``..``, is not valid
  UTF-8 once decoded, or is empty, never matches a template: another policy
  rejects non-canonical paths first, but the upstream path keeps the client's
  raw encoding, so the table must not become the way to smuggle a traversal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from finward.errors import ConfigError
from finward.openapi.model import Operation

_PARAM: Final = re.compile(r"\{([^{}]*)\}")
# Characters a base path or a path template literal may not contain: they would
# never appear in a decoded request segment (or mean something else in a URL).
_FORBIDDEN_LITERAL: Final = re.compile(r"[{}?#\x00]")


@dataclass(frozen=True, slots=True)
class Mount:  # one configured API
    api: str
    base_path: str
    upstream: str
    upstream_path_prefix: str
    operations: tuple[Operation, ...]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    operation: Operation
    mount: Mount
    path_params: dict[str, str]  # percent-decoded values
    # upstream_path_prefix + the raw received path with base_path stripped
    # (the client's raw encoding is kept).
    upstream_path: str


@dataclass(frozen=True, slots=True)
class RouteMiss:
    reason: str  # 'route_not_found' or 'method_not_allowed'
    allowed: tuple[str, ...]  # for the Allow header on 405, sorted


_NOT_FOUND: Final = RouteMiss("route_not_found", ())


@dataclass(frozen=True, slots=True)
class _SegmentPattern:
    """A segment mixing literal text and parameters, e.g. ``{a}-{b}.json``.

    Matched without regular expressions, in linear time: prefix and suffix are
    checked, then each parameter takes the text up to the leftmost occurrence of
    the literal after it (at least one character). Adjacent parameters are
    refused at compile time, so this choice is the only ambiguity, and it is fixed.
    """

    prefix: str
    separators: tuple[str, ...]  # the literal text between consecutive parameters
    suffix: str

    @property
    def literal_length(self) -> int:
        return len(self.prefix) + len(self.suffix) + sum(map(len, self.separators))

    def match(self, segment: str) -> list[str] | None:
        prefix, suffix = self.prefix, self.suffix
        if len(segment) <= len(prefix) + len(suffix) + len(self.separators):
            return None  # too short for one character per parameter
        if not segment.startswith(prefix) or not segment.endswith(suffix):
            return None
        body = segment[len(prefix) : len(segment) - len(suffix)]
        values: list[str] = []
        start = 0
        for separator in self.separators:
            end = body.find(separator, start + 1)
            if end < 0:
                return None
            values.append(body[start:end])
            start = end + len(separator)
        if start >= len(body):
            return None
        values.append(body[start:])
        return values


@dataclass(frozen=True, slots=True)
class _Endpoint:
    operation: Operation
    mount: Mount
    param_names: tuple[str, ...]  # in template order, one per captured value
    base_depth: int  # segments of the mount's base path
    upstream_prefix: str  # the mount's upstream_path_prefix, trailing '/' removed


class _Node:
    __slots__ = ("endpoints", "literals", "mixed", "param")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.mixed: list[tuple[_SegmentPattern, _Node]] = []
        self.param: _Node | None = None
        self.endpoints: dict[str, _Endpoint] = {}


# A parsed template segment: a literal, a whole-segment parameter, or a mixed pattern.
_Segment = str | _SegmentPattern | None


class Router:
    """Compiled route table over every mounted API; immutable once compiled."""

    __slots__ = ("_max_depth", "_operation_count", "_root")

    def __init__(self, root: _Node, max_depth: int, operation_count: int) -> None:
        self._root = root
        self._max_depth = max_depth
        self._operation_count = operation_count

    @classmethod
    def compile(cls, mounts: Sequence[Mount]) -> Router:
        """Build the trie; raise ``ConfigError`` listing every invalid or ambiguous route."""
        problems: list[str] = []
        root = _Node()
        max_depth = count = 0
        seen_apis: set[str] = set()
        for mount in mounts:
            if mount.api in seen_apis:
                problems.append(f"api {mount.api!r} is mounted twice")
            seen_apis.add(mount.api)
            base = _normalise_base(mount.base_path)
            if base is None:
                problems.append(
                    f"api {mount.api!r}: base_path {mount.base_path!r} must be '' or "
                    "'/segment[/segment...]' without '//', '.', '..', '{}', '?' or '#'"
                )
                continue
            base_segments = base.split("/")[1:] if base else []
            for op in mount.operations:
                parsed = _parse_template(op.path_template)
                if isinstance(parsed, str):
                    problems.append(f"api {mount.api!r}: {op.method} {op.path_template}: {parsed}")
                    continue
                segments, names = parsed
                node = root
                for segment in (*base_segments, *segments):
                    node = _child(node, segment)
                existing = node.endpoints.get(op.method)
                if existing is not None:
                    problems.append(
                        f"ambiguous route: {op.method} {base}{op.path_template} "
                        f"(api {mount.api!r}) and {existing.operation.method} "
                        f"{_mounted(existing)} (api {existing.mount.api!r}) match the same "
                        "requests; remove one, or mount the APIs at different base paths"
                    )
                    continue
                node.endpoints[op.method] = _Endpoint(
                    op, mount, names, len(base_segments), mount.upstream_path_prefix.rstrip("/")
                )
                max_depth = max(max_depth, len(base_segments) + len(segments))
                count += 1
        if problems:
            raise ConfigError(problems)
        _order_mixed(root)
        return cls(root, max_depth, count)

    @property
    def operation_count(self) -> int:
        return self._operation_count

    def match(self, method: str, raw_path: str) -> RouteMatch | RouteMiss:
        """Find the operation for ``method`` and the raw (percent-encoded) path."""
        if not raw_path.startswith("/"):
            return _NOT_FOUND
        raw_segments = raw_path[1:].split("/") if raw_path != "/" else []
        if len(raw_segments) > self._max_depth:
            return _NOT_FOUND  # checked before any decoding work
        segments = raw_segments
        if "%" in raw_path or "\x00" in raw_path or "/." in raw_path:
            # Slow path only for paths that need it; most paths are plain ASCII.
            segments = []
            for raw in raw_segments:
                decoded = _decode(raw)
                if decoded is None:
                    return _NOT_FOUND
                segments.append(decoded)
        values: list[str] = []
        allowed: set[str] = set()
        endpoint = _search(self._root, segments, 0, method, values, allowed)
        if endpoint is None:
            if allowed:
                return RouteMiss("method_not_allowed", tuple(sorted(allowed)))
            return _NOT_FOUND
        rest = raw_segments[endpoint.base_depth :]
        upstream_path = endpoint.upstream_prefix + "/" + "/".join(rest) if rest else ""
        return RouteMatch(
            endpoint.operation,
            endpoint.mount,
            # One captured value per name, by construction of the trie.
            dict(zip(endpoint.param_names, values)),  # noqa: B905
            upstream_path or endpoint.upstream_prefix or "/",
        )


def _search(
    node: _Node, segments: list[str], index: int, method: str, values: list[str], allowed: set[str]
) -> _Endpoint | None:
    """Depth-first, literal > mixed > parameter; ``values`` holds the captures on success."""
    # Where a node has only literal children there is nothing to backtrack to: descend
    # in a loop (base paths such as /open-banking/v4.0/aisp are all like this).
    while index < len(segments) and node.param is None and not node.mixed:
        literal = node.literals.get(segments[index])
        if literal is None:
            return None
        node, index = literal, index + 1
    if index == len(segments):
        endpoint = node.endpoints.get(method)
        if endpoint is None:
            allowed.update(node.endpoints)
        return endpoint
    segment = segments[index]
    child = node.literals.get(segment)
    if child is not None:
        found = _search(child, segments, index + 1, method, values, allowed)
        if found is not None:
            return found
    for pattern, child in node.mixed:
        captured = pattern.match(segment)
        if captured is not None:
            values.extend(captured)
            found = _search(child, segments, index + 1, method, values, allowed)
            if found is not None:
                return found
            del values[len(values) - len(captured) :]
    if node.param is not None and segment:
        values.append(segment)
        found = _search(node.param, segments, index + 1, method, values, allowed)
        if found is not None:
            return found
        values.pop()
    return None


def _decode(raw: str) -> str | None:
    """Percent-decode one segment; None for a segment no template may ever match."""
    if "%" in raw:
        try:
            raw = unquote(raw, errors="strict")
        except UnicodeDecodeError:
            return None
        if "/" in raw:
            return None
    if "\x00" in raw or raw == "." or raw == "..":
        return None
    return raw


def _child(node: _Node, segment: _Segment) -> _Node:
    if segment is None:
        if node.param is None:
            node.param = _Node()
        return node.param
    if isinstance(segment, str):
        return node.literals.setdefault(segment, _Node())
    for pattern, child in node.mixed:
        if pattern == segment:
            return child
    child = _Node()
    node.mixed.append((segment, child))
    return child


def _order_mixed(node: _Node) -> None:
    """Most literal text first, then a fixed order, so the answer never depends on spec order."""
    node.mixed.sort(key=lambda item: (-item[0].literal_length, repr(item[0])))
    for child in (*node.literals.values(), *(c for _, c in node.mixed)):
        _order_mixed(child)
    if node.param is not None:
        _order_mixed(node.param)


def _parse_template(template: str) -> tuple[list[_Segment], tuple[str, ...]] | str:
    """Split a path template into trie segments and parameter names, or explain why not."""
    if not template.startswith("/"):
        return "a path template must start with '/'"
    raw_segments = template[1:].split("/") if template != "/" else []
    segments: list[_Segment] = []
    names: list[str] = []
    for raw in raw_segments:
        pieces = _PARAM.split(raw)  # literal, name, literal, name, ..., literal
        literals, seg_names = pieces[0::2], pieces[1::2]
        if any(_FORBIDDEN_LITERAL.search(lit) for lit in literals):
            return f"segment {raw!r} has a stray '{{', '}}', '?', '#' or NUL"
        if not seg_names:
            if raw in ("", ".", ".."):
                return "empty, '.' and '..' segments can never match a canonical path"
            segments.append(raw)
            continue
        if "" in seg_names:
            return f"segment {raw!r} has a parameter without a name"
        if "" in literals[1:-1]:
            return f"segment {raw!r} has adjacent parameters, which cannot be told apart"
        names.extend(seg_names)
        if raw == "{" + seg_names[0] + "}":
            segments.append(None)
        else:
            segments.append(_SegmentPattern(literals[0], tuple(literals[1:-1]), literals[-1]))
    if len(set(names)) != len(names):
        return "a parameter name appears twice"
    return segments, tuple(names)


def _normalise_base(base_path: str) -> str | None:
    base = base_path.rstrip("/")
    if not base:
        return ""
    if not base.startswith("/") or _FORBIDDEN_LITERAL.search(base):
        return None
    if any(s in ("", ".", "..") for s in base[1:].split("/")):
        return None
    return base


def _mounted(endpoint: _Endpoint) -> str:
    base = _normalise_base(endpoint.mount.base_path) or ""
    return base + endpoint.operation.path_template
