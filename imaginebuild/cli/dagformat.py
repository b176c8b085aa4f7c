"""Renders the asset DAG as indented text, Mermaid (renders on GitHub), Graphviz dot,
networkx node-link JSON or GraphML (the last two for tools: Gephi, yEd, networkx itself).

The expansions of a matrix template are grouped: in text, roots of one template
under a header line (the template's name); in Mermaid a subgraph, in dot a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from imaginebuild.engine.graph import Dag, digraph
from imaginebuild.model import Asset, RefKind

FORMATS = ("text", "mermaid", "dot", "json", "graphml")


def render_dag(dag: Dag, assets: Mapping[str, Asset], selected: tuple[str, ...], fmt: str) -> str:
    """The selected part of the DAG in `fmt` (one of FORMATS)."""
    if fmt == "mermaid":
        return _mermaid(assets, selected)
    if fmt == "dot":
        return _dot(assets, selected)
    if fmt == "json":
        return _node_link(dag, assets, selected)
    if fmt == "graphml":
        return _graphml(dag, assets, selected)
    return _text(dag, assets, selected)


def asset_graph(dag: Dag, assets: Mapping[str, Asset], selected: tuple[str, ...]) -> Any:
    """The selected assets as a networkx DiGraph: each node has its kind, provider and
    model; each edge the input references (`london[0]`) it stands for."""
    attributes = {
        n: {
            "kind": assets[n].kind.value,
            "provider": str(assets[n].provider),
            "model": assets[n].model,
        }
        for n in selected
    }
    graph = digraph(selected, dag.parents, attributes)
    for name in selected:
        for ref in assets[name].inputs:
            if ref.kind is RefKind.ASSET and graph.has_edge(ref.asset, name):
                edge = graph.edges[ref.asset, name]
                edge["refs"] = f"{edge['refs']} {ref.raw}" if "refs" in edge else ref.raw
    return graph


def _node_link(dag: Dag, assets: Mapping[str, Asset], selected: tuple[str, ...]) -> str:
    import networkx as nx

    data = nx.node_link_data(asset_graph(dag, assets, selected), edges="edges")
    return json.dumps(data, indent=2, ensure_ascii=False)


def _graphml(dag: Dag, assets: Mapping[str, Asset], selected: tuple[str, ...]) -> str:
    import networkx as nx

    return "\n".join(nx.generate_graphml(asset_graph(dag, assets, selected)))


def _label(asset: Asset) -> str:
    return f"{asset.name} ({asset.kind.value})"


def _text(dag: Dag, assets: Mapping[str, Asset], selected: tuple[str, ...]) -> str:
    keep = set(selected)
    lines: list[str] = []

    def walk(name: str, depth: int, seen: frozenset[str]) -> None:
        lines.append("  " * depth + _label(assets[name]))
        for child in dag.children[name]:
            if child in keep and child not in seen:
                walk(child, depth + 1, seen | {child})

    header: str | None = None
    for name in selected:
        if not any(p in keep for p in dag.parents[name]):
            template = assets[name].template
            if template is not None and template != header:
                lines.append(template)
            header = template
            walk(name, 0 if template is None else 1, frozenset({name}))
    return "\n".join(lines)


def _groups(assets: Mapping[str, Asset], selected: tuple[str, ...]) -> dict[str, list[str]]:
    """The selected expansions of each matrix template, in order."""
    groups: dict[str, list[str]] = {}
    for name in selected:
        template = assets[name].template
        if template is not None:
            groups.setdefault(template, []).append(name)
    return groups


def _mermaid_id(name: str) -> str:
    return "a_" + name.replace("-", "_")


def _mermaid(assets: Mapping[str, Asset], selected: tuple[str, ...]) -> str:
    lines = ["flowchart LR"]
    keep = set(selected)
    files: dict[str, str] = {}
    for name in selected:
        asset = assets[name]
        text = _label(asset).replace('"', "#quot;")
        lines.append(f'  {_mermaid_id(name)}["{text}"]')
        for ref in asset.inputs:
            if ref.kind is RefKind.ASSET and ref.asset in keep:
                lines.append(f"  {_mermaid_id(ref.asset)} --> {_mermaid_id(name)}")
            elif ref.kind is not RefKind.ASSET:
                fid = files.setdefault(ref.raw, f"f{len(files)}")
                lines.append(
                    f'  {fid}[/"{ref.raw.replace(chr(34), "#quot;")}"/] --> {_mermaid_id(name)}'
                )
    for i, (template, names) in enumerate(_groups(assets, selected).items()):
        lines.append(f'  subgraph m{i}["{template.replace(chr(34), "#quot;")}"]')
        lines += [f"    {_mermaid_id(name)}" for name in names]
        lines.append("  end")
    return "\n".join(lines)


def _dot(assets: Mapping[str, Asset], selected: tuple[str, ...]) -> str:
    keep = set(selected)
    lines = ["digraph imaginebuild {", "  rankdir=LR;"]
    for name in selected:
        asset = assets[name]
        lines.append(f"  {json.dumps(name)} [label={json.dumps(_label(asset))}];")
        for ref in asset.inputs:
            if ref.kind is RefKind.ASSET and ref.asset in keep:
                lines.append(f"  {json.dumps(ref.asset)} -> {json.dumps(name)};")
            elif ref.kind is not RefKind.ASSET:
                lines.append(f"  {json.dumps(ref.raw)} [shape=note];")
                lines.append(f"  {json.dumps(ref.raw)} -> {json.dumps(name)};")
    for i, (template, names) in enumerate(_groups(assets, selected).items()):
        members = " ".join(f"{json.dumps(n)};" for n in names)
        lines.append(f"  subgraph cluster_{i} {{ label={json.dumps(template)}; {members} }}")
    lines.append("}")
    return "\n".join(lines)
