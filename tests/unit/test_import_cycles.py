"""No import cycle among first-party product modules (type-checking imports included).

import-linter's contracts forbid chosen directions between packages; a cycle between any
two modules of any package is found here, from the graph grimp (import-linter's engine)
builds of the product packages.
"""

from __future__ import annotations

import grimp
import pytest

PRODUCT_PACKAGES = ("adapters", "api", "core", "storage", "workflows", "activities", "cli", "bench")


def import_cycles(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    edges = {
        module: sorted(graph.find_modules_directly_imported_by(module) & graph.modules)
        for module in graph.modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(edges[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def _describe(graph: grimp.ImportGraph, cycle: frozenset[str]) -> str:
    first, *rest = sorted(cycle)
    second = rest[0]
    there = graph.find_shortest_chain(importer=first, imported=second) or ()
    back = graph.find_shortest_chain(importer=second, imported=first) or ()
    return " -> ".join([*there, *back[1:]])


def test_cycle_finder_sees_a_cycle_through_three_modules() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph) == [frozenset({"p.a", "p.b", "p.c"})]


def test_product_code_has_no_import_cycle() -> None:
    graph = grimp.build_graph(*PRODUCT_PACKAGES, cache_dir=None)
    cycles = import_cycles(graph)
    if cycles:
        pytest.fail("import cycles:\n" + "\n".join(_describe(graph, c) for c in cycles))
