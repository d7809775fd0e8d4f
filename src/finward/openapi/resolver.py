"""Reading spec files and resolving ``$ref``s across them, without any network.

A spec may be split over many files (``./schemas/a.yaml#/Account``,
``../common.yaml#/components/parameters/X``, whole-file refs). Each ref resolves
relative to the file it is written in. Targets are inlined, one shared resolved
object per target, so a spec with thousands of refs stays small; a ref met again
while its own target is still being resolved is a cycle, and stays a ref with an
absolute ``file:`` URI (see ``finward.openapi.model``).

Remote refs are refused: a gateway that fetched parts of its contract over the
network at start-up could be handed a different contract by whoever controls
that server or the path to it.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote, urlsplit

import yaml

from finward.errors import FinwardError

# The largest published open-banking spec (UK OB account info 4.0) is ~0.6 MB;
# 32 MiB leaves ample headroom while bounding what a wrong path (a log file, a
# disk image) or a hostile file can make the loader read into memory.
MAX_SPEC_BYTES: Final = 32 * 1024 * 1024
# Distinct files one spec may pull in through $ref; the same bound for the same reason.
MAX_SPEC_FILES: Final = 256
# Depth of the resolved tree. Real specs stay below ~40 even fully inlined; the
# bound turns a pathological document into a clear error instead of a RecursionError.
MAX_NESTING: Final = 128
# Hops of a ref pointing to a ref pointing to a ref... before we call it a loop.
MAX_REF_HOPS: Final = 32

# libyaml's C parser is ~10x faster on the 0.5 MB open-banking specs. Safe loaders
# only: the full loader can instantiate arbitrary Python objects from tags.
_YamlLoader: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Walk contexts: whether a mapping's "$ref" is a reference, and which keys hold data.
_NORMAL, _NAMES, _LITERAL, _EXAMPLE, _EXAMPLE_NAMES = range(5)
# Characters left as they are when a JSON pointer is written as a URI fragment.
_FRAGMENT_SAFE: Final = "/~!$&'()*+,;=:@"
# Keys whose value maps user-chosen names to objects: the names are never keywords,
# so a property called "$ref" or "example" is not mistaken for one.
_NAME_MAP_KEYS: Final = frozenset(
    {
        *("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"),
        *("schemas", "responses", "parameters", "requestBodies", "headers", "links"),
        *("securitySchemes", "callbacks", "content", "encoding", "pathItems", "webhooks"),
        *("paths", "variables"),
    }
)
# Keys whose value is instance data, never a schema: a "$ref" inside is just data.
_LITERAL_KEYS: Final = frozenset({"example", "enum", "const", "default"})

Loc = tuple["Loc | None", str] | None  # reversed JSON-pointer path, built without copying


class SpecError(FinwardError):
    """The spec cannot be loaded; the message names the file, the location and a hint."""

    def __init__(
        self, message: str, *, file: Path, pointer: str = "", hint: str | None = None
    ) -> None:
        self.message = message
        self.file = file
        self.pointer = pointer
        self.hint = hint
        text = f"{file}: at {pointer or '/'} (JSON pointer): {message}"
        super().__init__(f"{text}. Hint: {hint}" if hint else text)


def escape_token(token: str) -> str:
    """RFC 6901 §3: '~' is written '~0' and '/' is written '~1' inside a pointer token."""
    return token.replace("~", "~0").replace("/", "~1")


def format_pointer(loc: Loc) -> str:
    parts: list[str] = []
    while loc is not None:
        loc, token = loc
        parts.append(escape_token(token))
    return "".join("/" + p for p in reversed(parts))


def key_text(key: object) -> str:
    """YAML 1.1 reads ``200:`` as an int and ``2024-01-01:`` as a date; JSON keys are text."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, _dt.date):
        return key.isoformat()
    return "null" if key is None else str(key)


def read_document(path: Path) -> Any:
    """Read one YAML or JSON file, with the size checked before parsing."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        raise SpecError(
            f"cannot read the file ({exc.strerror or exc})",
            file=path,
            hint="check the path; relative $refs resolve from the folder of the referring file",
        ) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(
            f"the file is larger than {MAX_SPEC_BYTES} bytes",
            file=path,
            hint="is this really an OpenAPI document? Split it into several files",
        )
    try:
        if path.suffix.lower() == ".json":
            return json.loads(data)
        return yaml.load(data, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(
            f"invalid YAML: {where}{exc.problem}", file=path, hint="fix the syntax"
        ) from None
    except (yaml.YAMLError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise SpecError(f"cannot parse the file: {exc}", file=path, hint="fix the syntax") from None


class SpecResolver:
    """Resolves the refs of one spec; owns the parsed files it has read."""

    def __init__(self, root: Path, root_document: Any, openapi_version: str) -> None:
        self._root = root
        self._openapi_31 = openapi_version == "3.1"
        self._documents: dict[Path, Any] = {root: root_document}
        self._resolved: dict[str, Any] = {}  # canonical URI -> resolved target
        self._active: set[str] = set()  # targets being resolved right now (cycle check)
        # YAML anchors/aliases make shared (even self-containing) subtrees: memoise
        # by identity so "billion laughs" documents cost their size, not their expansion.
        self._walked: dict[tuple[int, int], Any] = {}
        self._walking: set[int] = set()

    def document(self, path: Path) -> Any:
        doc = self._documents.get(path, self)
        if doc is self:
            if len(self._documents) >= MAX_SPEC_FILES:
                raise SpecError(
                    f"the spec references more than {MAX_SPEC_FILES} files",
                    file=path,
                    hint="bundle the spec into fewer files",
                )
            doc = self._documents[path] = read_document(path)
        return doc

    def resolve(self, node: Any, base: Path, loc: Loc) -> Any:
        """Return ``node`` (found in file ``base`` at ``loc``) with its refs resolved."""
        return self._walk(node, base, loc, 0, _NORMAL)

    def step(self, ref: str, base: Path, loc: Loc) -> tuple[Any, Path, Loc]:
        """Follow one ``$ref`` (written in ``base`` at ``loc``) without resolving inside it."""
        target, pointer = self._locate(ref, base, loc)
        return (
            self._lookup(target, pointer, ref, base, (loc, "$ref")),
            target,
            _pointer_loc(pointer),
        )

    def resolve_uri(self, uri: str) -> Any:
        """Resolve an absolute ``file:`` ref, as left on schema cycles."""
        resolved = self._resolved.get(uri, self)
        if resolved is not self:
            return resolved
        file_part, _, fragment = uri.partition("#")
        known = {p.as_uri(): p for p in self._documents}
        if file_part not in known:
            raise SpecError(
                f"{uri!r} is not a file of this spec",
                file=self._root,
                hint="only refs produced by the loader can be resolved",
            )
        return self._inline(known[file_part], unquote(fragment), uri, self._root, None, 0)

    def _walk(self, node: Any, base: Path, loc: Loc, depth: int, ctx: int) -> Any:
        if depth > MAX_NESTING:
            raise SpecError(
                f"nested deeper than {MAX_NESTING} levels",
                file=base,
                pointer=format_pointer(loc),
                hint="is a schema including itself without a $ref?",
            )
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ctx in (_NORMAL, _EXAMPLE):
                return self._inline_ref(node, ref, base, loc, depth)
        elif not isinstance(node, list):
            return node.isoformat() if isinstance(node, _dt.date) else node
        memo_key = (id(node), ctx)
        memo = self._walked.get(memo_key, self)
        if memo is not self:
            return memo
        if id(node) in self._walking:
            raise SpecError("a YAML alias contains itself", file=base, pointer=format_pointer(loc))
        self._walking.add(id(node))
        out: Any
        try:
            if isinstance(node, list):
                child_ctx = _LITERAL if ctx == _LITERAL else _NORMAL
                out = [
                    self._walk(v, base, (loc, str(i)), depth + 1, child_ctx)
                    for i, v in enumerate(node)
                ]
            else:
                out = {}
                for key, value in node.items():
                    name = key_text(key)
                    out[name] = self._walk(
                        value, base, (loc, name), depth + 1, _child_context(ctx, name, value)
                    )
        finally:
            self._walking.discard(id(node))
        self._walked[memo_key] = out
        return out

    def _inline_ref(self, node: dict[Any, Any], ref: str, base: Path, loc: Loc, depth: int) -> Any:
        target_file, pointer = self._locate(ref, base, loc)
        target = self._inline(target_file, pointer, ref, base, (loc, "$ref"), depth)
        if len(node) == 1 or not self._openapi_31:
            # OpenAPI 3.0 Reference Object: "any properties added SHALL be ignored".
            return target
        # Walk sibling values one by one: the memo is keyed by identity, so a
        # temporary container must never enter it.
        extra = {
            name: self._walk(v, base, (loc, name), depth + 1, _child_context(_NORMAL, name, v))
            for name, v in ((key_text(k), v) for k, v in node.items() if k != "$ref")
        }
        if extra.keys() <= {"summary", "description"} and isinstance(target, dict):
            return {**target, **extra}  # 3.1 Reference Object: these two override
        # 3.1 Schema Object: $ref is a keyword applied beside its siblings.
        return {**extra, "allOf": [*extra.get("allOf", ()), target]}

    def _inline(
        self, file: Path, pointer: str, ref: str, referrer: Path, loc: Loc, depth: int
    ) -> Any:
        uri = f"{file.as_uri()}#{quote(pointer, safe=_FRAGMENT_SAFE)}"
        resolved = self._resolved.get(uri, self)
        if resolved is not self:
            return resolved
        if uri in self._active:
            return {"$ref": uri}  # cycle: keep a back-edge instead of recursing
        raw = self._lookup(file, pointer, ref, referrer, loc)
        self._active.add(uri)
        try:
            resolved = self._walk(raw, file, _pointer_loc(pointer), depth + 1, _NORMAL)
        finally:
            self._active.discard(uri)
        if isinstance(resolved, dict) and resolved.keys() == {"$ref"} and resolved["$ref"] == uri:
            raise SpecError(
                f"$ref {ref!r} only leads back to itself",
                file=referrer,
                pointer=format_pointer(loc),
                hint="a chain of $refs must end at a real object",
            )
        self._resolved[uri] = resolved
        return resolved

    def _locate(self, ref: str, base: Path, loc: Loc) -> tuple[Path, str]:
        file_part, _, fragment = ref.partition("#")
        target = base
        if file_part:
            split = urlsplit(file_part)
            if split.scheme or split.netloc:
                raise SpecError(
                    f"$ref {ref!r} is a URL; finward never fetches spec parts over the network",
                    file=base,
                    pointer=format_pointer((loc, "$ref")),
                    hint="save the referenced file beside the spec and use a relative path",
                )
            if file_part.startswith("/") or split.query:
                raise SpecError(
                    f"$ref {ref!r} is not a relative file reference",
                    file=base,
                    pointer=format_pointer((loc, "$ref")),
                    hint="write it relative to this file, e.g. './schemas/account.yaml#/Account'",
                )
            target = (base.parent / unquote(file_part)).resolve()
        pointer = unquote(fragment)  # a fragment is percent-encoded (RFC 6901 §6)
        if pointer and not pointer.startswith("/"):
            raise SpecError(
                f"$ref {ref!r} has a fragment that is not a JSON pointer",
                file=base,
                pointer=format_pointer((loc, "$ref")),
                hint="use '#/components/...'; $anchor and plain-name fragments are not supported",
            )
        return target, pointer

    def _lookup(self, file: Path, pointer: str, ref: str, referrer: Path, loc: Loc) -> Any:
        """The raw node at ``pointer`` in ``file``; errors point at the $ref in ``referrer``."""
        try:
            node = self.document(file)
        except SpecError as exc:
            raise SpecError(
                f"$ref {ref!r} cannot be loaded: {exc.file}: {exc.message}",
                file=referrer,
                pointer=format_pointer(loc),
                hint=exc.hint,
            ) from None
        for raw_token in pointer.split("/")[1:]:
            token = raw_token.replace("~1", "/").replace("~0", "~")  # RFC 6901 §4 order
            found: Any = self
            if isinstance(node, dict):
                found = node.get(token, self)
                if found is self:  # YAML may have read the key as an int or a date
                    found = next((v for k, v in node.items() if key_text(k) == token), self)
            elif isinstance(node, list) and token.isdigit() and token == str(int(token)):
                found = node[int(token)] if int(token) < len(node) else self
            if found is self:
                raise SpecError(
                    f"$ref {ref!r} points to nothing: {file.name} has no {token!r} there",
                    file=referrer,
                    pointer=format_pointer(loc),
                    hint="check the JSON pointer; '/' in a key is written '~1' and '~' is '~0'",
                )
            node = found
        return node


def _pointer_loc(pointer: str) -> Loc:
    loc: Loc = None
    for raw in pointer.split("/")[1:]:
        loc = (loc, raw.replace("~1", "/").replace("~0", "~"))
    return loc


def _child_context(ctx: int, key: str, value: Any) -> int:
    if ctx == _LITERAL:
        return _LITERAL
    if ctx == _NAMES:
        return _NORMAL  # the key was a name; the value is an object (or a ref to one)
    if ctx == _EXAMPLE_NAMES:
        return _EXAMPLE
    if key in _LITERAL_KEYS or key.startswith("x-") or (ctx == _EXAMPLE and key == "value"):
        return _LITERAL
    if key == "examples":
        # OpenAPI: a map of Example Objects; JSON Schema 2020-12: an array of instances.
        return _LITERAL if isinstance(value, list) else _EXAMPLE_NAMES
    if key in _NAME_MAP_KEYS and isinstance(value, dict):
        return _NAMES
    return _NORMAL
