"""The asset DAG: target selection, topological order, critical-path priorities.

Edges point from an input to the asset that reads it:

    london ──▶ sketch ──▶ clip ──▶ clip_long
    logo.png ─┘            (files and URLs are not nodes)

Targets may be globs over asset names (`imaginebuild run 'spot-*'`).

Built on the standard library's graphlib: importing networkx would cost more
start-up time than a whole no-op run may take. Cycles are rejected by validation
before a graph is built; `CycleError` here would be a bug.

Commands where start-up does not matter (`dag --format json|graphml`,
`plan --critical-path`, the report's layout) use networkx through `digraph` and
the functions after it, which import it when called.
"""

from __future__ import annotations

import fnmatch
import graphlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imaginebuild.errors import UsageError, closest_match
from imaginebuild.model import Asset

_GLOB = re.compile(r"[*?[]")  # asset names never contain these


@dataclass(frozen=True)
class Dag:
    """Assets and their dependencies; `parents[a]` are the assets `a` reads."""

    parents: Mapping[str, tuple[str, ...]]
    children: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]  # a topological order, stable with declaration order

    @classmethod
    def from_assets(cls, assets: Mapping[str, Asset]) -> Dag:
        """Build the DAG of a validated mediafile's assets."""
        parents = {name: asset.upstream() for name, asset in assets.items()}
        children: dict[str, list[str]] = {name: [] for name in assets}
        for name, ups in parents.items():
            for up in ups:
                children[up].append(name)
        return cls(parents, {k: tuple(v) for k, v in children.items()}, _toposort(parents))

    def select(self, targets: Iterable[str]) -> tuple[str, ...]:
        """The targets and all their ancestors, in topological order (all if no targets)."""
        wanted = self.resolve(targets)
        if not wanted:
            return self.order
        keep: set[str] = set()
        stack = list(wanted)
        while stack:
            name = stack.pop()
            if name not in keep:
                keep.add(name)
                stack.extend(self.parents[name])
        return tuple(n for n in self.order if n in keep)

    def resolve(self, targets: Iterable[str]) -> list[str]:
        """The asset names `targets` mean: names as given, globs (`'spot-*'`) expanded over
        the asset names in order. An unknown name or a glob that matches nothing is a
        UsageError naming it."""
        names: list[str] = []
        for target in targets:
            if target in self.parents:
                names.append(target)
            elif _GLOB.search(target):
                matched = [n for n in self.order if fnmatch.fnmatchcase(n, target)]
                if not matched:
                    raise UsageError(
                        f"no asset matches {target!r}", hint="`imaginebuild dag` lists the assets"
                    )
                names += matched
            else:
                raise UsageError(
                    f"unknown target {target!r}", hint=_did_you_mean(target, self.order)
                )
        return names

    def priorities(self, nodes: Iterable[str], weight: Callable[[str], float]) -> dict[str, float]:
        """Longest remaining path (own weight included) from each node to the end.

        Ready steps with the highest priority start first, so the slowest chain
        (videos) is never left waiting behind quick leaves.
        """
        selected = set(nodes)
        remaining: dict[str, float] = {}
        for name in reversed(self.order):
            if name not in selected:
                continue
            tail = max((remaining[c] for c in self.children[name] if c in selected), default=0.0)
            remaining[name] = weight(name) + tail
        return remaining


def digraph(
    order: Iterable[str],
    parents: Mapping[str, Iterable[str]],
    attributes: Mapping[str, Mapping[str, object]] | None = None,
) -> Any:
    """The nodes of `order` and the edges among them as a networkx DiGraph (parent → child).

    Nodes keep the order of `order`; `attributes[name]` become the node's data.
    Parents outside `order` are left out, as in a selection of targets.
    """
    import networkx as nx

    graph = nx.DiGraph()
    for name in order:
        graph.add_node(name, **(attributes or {}).get(name, {}))
    for name in list(graph):
        graph.add_edges_from((p, name) for p in parents[name] if p in graph)
    return graph


def critical_path(
    order: Sequence[str], parents: Mapping[str, Iterable[str]], seconds: Mapping[str, float]
) -> tuple[tuple[str, ...], float]:
    """The chain of `order` whose steps take longest one after another, and its total.

    `order` must be topological. A path may start and end anywhere; steps that take
    no time are left off its ends (an empty path when nothing takes time).
    """
    import networkx as nx

    graph = digraph(order, parents)
    start = object()  # a source before every node, so a node's own weight counts too
    for name in order:
        graph.add_edge(start, name)
    for parent, child in graph.edges:
        graph.edges[parent, child]["seconds"] = seconds[child]
    path = nx.dag_longest_path(graph, weight="seconds", topo_order=[start, *order])[1:]
    timed = [i for i, name in enumerate(path) if seconds[name] > 0]
    path = path[timed[0] : timed[-1] + 1] if timed else []
    return tuple(path), sum(seconds[name] for name in path)


def generations(order: Sequence[str], parents: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Layers by longest path from a root (a node sits one right of its deepest parent),
    each in the order of `order`."""
    import networkx as nx

    rank = {name: i for i, name in enumerate(order)}
    layers = nx.topological_generations(digraph(order, parents))
    return [sorted(layer, key=rank.__getitem__) for layer in layers]


def _toposort(parents: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Topological order that keeps declaration order among independent assets."""
    sorter = graphlib.TopologicalSorter(parents)
    sorter.prepare()
    rank = {name: i for i, name in enumerate(parents)}
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=rank.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return tuple(order)


def _did_you_mean(name: str, choices: Iterable[str]) -> str:
    close = closest_match(name, choices)
    return f"did you mean {close!r}?" if close else "`imaginebuild dag` lists the assets"
