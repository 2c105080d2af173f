#!/usr/bin/env python3
"""Fails when a module of runtime/src imports one above it.

Data flows one way (docs/architecture.md, "Layers"): each top-level module
has a layer, and a module may import only modules of a lower layer (or its
own). Within a module, files import each other without cycles; edges to and
from the module's own `mod.rs` (its hub, which declares and re-exports its
files) are not counted. Only code before a file's `#[cfg(test)]` counts:
tests may reach anywhere.

Usage: python3 scripts/check-layers.py   (exit 1 and a list on a violation)
"""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "runtime" / "src"

# Lowest first. A module may import the modules of lower layers only.
LAYERS = [
    ["util", "tasks", "journal", "metrics"],
    ["store", "engine"],
    ["cluster"],
    ["registry"],
    ["pool"],
    ["scheduler", "provision"],
    ["durable"],
    ["api"],
    ["client"],
    ["cli"],
    ["lib", "main"],
]
LAYER = {module: rank for rank, modules in enumerate(LAYERS) for module in modules}

CRATE_PATH = re.compile(r"\bcrate::(\w+)((?:::\w+)*)")
GROUP = re.compile(r"\bcrate::\{([^}]*)\}", re.S)
SUPER_PATH = re.compile(r"\bsuper::(\w+)")


def code_of(path: Path) -> str:
    """The file's text before its test module, comments dropped."""
    text = path.read_text()
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def crate_targets(code: str) -> list[list[str]]:
    """Paths named as `crate::a::b...` (groups `crate::{a, b::c}` expanded)."""
    paths = [[m.group(1)] + [p for p in m.group(2).split("::") if p] for m in CRATE_PATH.finditer(code)]
    for group in GROUP.finditer(code):
        for item in group.group(1).split(","):
            parts = [p for p in item.strip().split("::") if p and p != "{"]
            if parts and re.match(r"^\w+$", parts[0]):
                paths.append(parts)
    return paths


def main() -> int:
    problems = []
    files = sorted(SRC.rglob("*.rs"))
    top_of = {}
    for f in files:
        rel = f.relative_to(SRC)
        top = rel.parts[0].removesuffix(".rs")
        top_of[f] = top
        if top not in LAYER:
            problems.append(f"{rel}: module '{top}' has no layer in scripts/check-layers.py")

    # 1. Between top-level modules: only downward.
    for f in files:
        top = top_of[f]
        if top not in LAYER:
            continue
        for path in crate_targets(code_of(f)):
            target = path[0]
            if target == top or target not in LAYER:
                continue
            if LAYER[target] > LAYER[top]:
                problems.append(
                    f"{f.relative_to(SRC)}: {top} (layer {LAYER[top]}) imports crate::{target} "
                    f"(layer {LAYER[target]}), a higher layer"
                )

    # 2. Within a module: no cycle between its files (mod.rs excluded).
    for directory in sorted({f.parent for f in files if f.parent != SRC}):
        siblings = {f.stem: f for f in directory.glob("*.rs") if f.name != "mod.rs"}
        prefix = list(directory.relative_to(SRC).parts)
        edges = {name: set() for name in siblings}
        for name, f in siblings.items():
            code = code_of(f)
            named = {m.group(1) for m in SUPER_PATH.finditer(code)}
            for path in crate_targets(code):
                if path[: len(prefix)] == prefix and len(path) > len(prefix):
                    named.add(path[len(prefix)])
            edges[name] = {n for n in named if n in siblings and n != name}
        cycle = find_cycle(edges)
        if cycle:
            where = directory.relative_to(SRC)
            problems.append(f"{where}/: import cycle " + " -> ".join(cycle))

    for p in problems:
        print(f"layer check: {p}", file=sys.stderr)
    if not problems:
        print(f"layer check: {len(files)} files, imports flow one way")
    return 1 if problems else 0


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())
