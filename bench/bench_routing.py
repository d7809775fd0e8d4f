"""Route matching cost: the five real specs, and synthetic tables of 10 to 10 000 operations.

Run:  .venv/bin/python bench/bench_routing.py

Prints a table and writes it as the "## Route matching" section of docs/benchmarks.md
(other sections of that file are left alone). Every figure is a median over repeated
rounds measured in the same run, and the trie is compared side by side with a linear
scan over compiled regexes (what a naive gateway does), so the ratios mean something
on a shared two-core machine.
"""

from __future__ import annotations

import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from finward.core.routing import Mount, RouteMatch, Router
from finward.openapi.loader import load_spec
from finward.openapi.model import Operation

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / ".." / "shared" / "specs"
DOC = REPO / "docs" / "benchmarks.md"
COMMAND = ".venv/bin/python bench/bench_routing.py"
SECTION = "## Route matching"
ROUNDS = 15
ROUND_SECONDS = 0.05  # each round repeats the workload for at least this long
FILLER = "x7Qz1"
SIZES = (10, 100, 1_000, 10_000)
_PARAM = re.compile(r"\{[^{}]+\}")


def synthetic_operation(method: str, template: str) -> Operation:
    return Operation("synthetic", method, template, None, (), None, (), None, {}, {}, {})


def real_mounts() -> list[Mount]:
    mounts = []
    for path in sorted(SPECS.glob("*.yaml")):
        spec = load_spec(path, api=path.stem)
        # Mount where the spec says it lives (UK OB payments and VRP share /pisp).
        base = "/" + spec.servers[0].split("://", 1)[-1].split("/", 1)[-1] if spec.servers else ""
        mounts.append(Mount(path.stem, base.rstrip("/"), "bank", "", spec.operations))
    return mounts


def synthetic_mount(size: int) -> Mount:
    """Open-banking shaped resources: list, create, read, status, sub-resource per name."""
    shapes = [
        ("GET", "/res{i}"),
        ("POST", "/res{i}"),
        ("GET", "/res{i}/{{id}}"),
        ("GET", "/res{i}/{{id}}/status"),
        ("DELETE", "/res{i}/{{id}}/items/{{itemId}}"),
    ]
    ops = []
    for n in range(size):
        method, template = shapes[n % len(shapes)]
        ops.append(synthetic_operation(method, template.format(i=n // len(shapes))))
    return Mount("synthetic", "/api", "bank", "", tuple(ops))


def workload(mounts: Sequence[Mount], picks: Sequence[int]) -> list[tuple[str, str]]:
    """For each picked operation a hit (its filled template) and a miss variant."""
    ops = [(m, op) for m in mounts for op in m.operations]
    requests = []
    for k, index in enumerate(picks):
        m, op = ops[index]
        path = m.base_path + _PARAM.sub(FILLER, op.path_template)
        requests.append((op.method, path))
        variants = [path + "/zz-unknown", m.base_path + "/zz-unknown" + path, "/nowhere" + path]
        requests.append(("TRACE" if k % 2 else op.method, variants[k % len(variants)]))
    return requests


def synthetic_picks(size: int, count: int, seed: int) -> list[int]:
    """The same mix of shapes at every size; only which resource varies."""
    rng = random.Random(seed)
    resources = max(1, size // 5)
    return [(rng.randrange(resources) * 5 + k % 5) % size for k in range(count)]


class LinearScan:
    """The baseline: try every operation's regex in turn."""

    def __init__(self, mounts: Sequence[Mount]) -> None:
        self.routes = [
            (op.method, re.compile(re.escape(m.base_path) + _template_regex(op.path_template)))
            for m in mounts
            for op in m.operations
        ]

    def match(self, method: str, path: str) -> bool:
        return any(meth == method and rx.fullmatch(path) for meth, rx in self.routes)


def _template_regex(template: str) -> str:
    return "[^/]+".join(re.escape(part) for part in _PARAM.split(template))


Case = tuple[Callable[[str, str], object], list[tuple[str, str]]]


def interleaved_medians(cases: Sequence[Case]) -> list[float]:
    """Median ns per call for each case; each round samples every case once, in turn,
    so drift on the shared machine (other jobs, frequency changes) hits all of them."""
    loops = []
    for match, requests in cases:
        started = time.perf_counter()
        for method, path in requests:
            match(method, path)
        elapsed = max(time.perf_counter() - started, 1e-9)
        loops.append(max(1, int(ROUND_SECONDS / elapsed)))
    samples: list[list[float]] = [[] for _ in cases]
    for _ in range(ROUNDS):
        for (match, requests), n, out in zip(cases, loops, samples, strict=True):
            started_ns = time.perf_counter_ns()
            for _ in range(n):
                for method, path in requests:
                    match(method, path)
            out.append((time.perf_counter_ns() - started_ns) / (n * len(requests)))
    return [statistics.median(s) for s in samples]


def measure() -> list[str]:
    mounts = real_mounts()
    router = Router.compile(mounts)
    rng = random.Random(1)
    requests = workload(mounts, [rng.randrange(router.operation_count) for _ in range(200)])
    hits = [r for r in requests if isinstance(router.match(*r), RouteMatch)]
    misses = [r for r in requests if not isinstance(router.match(*r), RouteMatch)]
    assert len(hits) >= 200
    cases: list[Case] = [
        (router.match, requests),
        (router.match, hits),
        (router.match, misses),
        (LinearScan(mounts).match, requests),
    ]
    for size in SIZES:
        synthetic = [synthetic_mount(size)]
        # The same 40 requests for both, few enough for a scan of 10 000 regexes.
        reqs = workload(synthetic, synthetic_picks(size, 20, seed=size))
        cases += [(Router.compile(synthetic).match, reqs), (LinearScan(synthetic).match, reqs)]
    real_all, real_hits, real_misses, scan_all, *synthetic_results = interleaved_medians(cases)

    lines = [
        f"Five real specs mounted together: {router.operation_count} operations, "
        f"{len(requests)} requests per pass ({len(hits)} hits, {len(misses)} misses).",
        "",
        "| workload | trie ns/match (median) | linear scan ns/match | scan / trie |",
        "|---|---:|---:|---:|",
        f"| all (hits + misses) | {real_all:,.0f} | {scan_all:,.0f} | {scan_all / real_all:.1f}x |",
        f"| hits | {real_hits:,.0f} | | |",
        f"| misses (404/405) | {real_misses:,.0f} | | |",
        "",
        "Synthetic tables (open-banking shaped: list, create, read, status, sub-resource "
        "per resource; 40 requests, 20 hits and 20 mostly-miss variants, the same shape mix "
        "at every size and the same requests for both):",
        "",
        "| operations | trie ns/match | trie vs 10 ops | linear scan ns/match | scan vs 10 ops |",
        "|---:|---:|---:|---:|---:|",
    ]
    base_trie, base_scan = synthetic_results[0], synthetic_results[1]
    for size, trie_ns, scan_ns in zip(
        SIZES, synthetic_results[0::2], synthetic_results[1::2], strict=True
    ):
        lines.append(
            f"| {size:,} | {trie_ns:,.0f} | {trie_ns / base_trie:.2f}x "
            f"| {scan_ns:,.0f} | {scan_ns / base_scan:.1f}x |"
        )
    return lines


def write_section(body: list[str]) -> None:
    section = "\n".join(
        [
            SECTION,
            "",
            f"Command: `{COMMAND}` (from the repository root). Medians of {ROUNDS} rounds; "
            f"in each round every case runs in turn for at least {ROUND_SECONDS * 1000:.0f} ms; "
            f"Python {platform.python_version()}, {platform.machine()}, "
            f"measured {time.strftime('%Y-%m-%d')}.",
            "",
            *body,
            "",
            "The trie's cost follows the number of path segments, not the number of "
            "operations; the linear scan grows with the table. The machine is a shared "
            "two-core VM: compare the ratios within one run, not absolute figures across runs.",
            "",
        ]
    )
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n"
    start = text.find(SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = text.find("\n## ", start + len(SECTION))
        end = len(text) if following < 0 else following + 1
        text = text[:start] + section + ("\n" + text[end:] if following >= 0 else "")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")


def main() -> int:
    if not SPECS.is_dir():
        print(f"the open-banking specs are expected in {SPECS.resolve()}", file=sys.stderr)
        return 1
    lines = measure()
    print("\n".join(lines))
    write_section(lines)
    print(f"\nwrote the '{SECTION}' section of {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
