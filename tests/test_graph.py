"""The asset DAG: topological order, target selection, descendants, critical-path priorities."""

from __future__ import annotations

import pytest

from imaginebuild.errors import UsageError
from imaginebuild.engine.graph import Dag
from imaginebuild.model import Asset, InputRef, Kind, RefKind


def _asset(name: str, kind: Kind, *inputs: str) -> Asset:
    refs = tuple(
        InputRef(raw, RefKind.FILE, path=raw)
        if "/" in raw
        else InputRef(raw, RefKind.ASSET, asset=raw.split("[")[0])
        for raw in inputs
    )
    return Asset(name=name, kind=kind, provider="local", prompt=name, inputs=refs)


#   london ──▶ sketch ──▶ clip ──▶ clip_long       teaser
#      └──────────────┴──▶ moodboard
ASSETS = {
    a.name: a
    for a in (
        _asset("clip_long", Kind.EXTEND, "clip"),
        _asset("clip", Kind.ANIMATE, "sketch"),
        _asset("london", Kind.IMAGE),
        _asset("sketch", Kind.EDIT, "london[0]", "art/logo.png"),
        _asset("teaser", Kind.VIDEO),
        _asset("moodboard", Kind.REFERENCE_VIDEO, "london[1]", "sketch", "london[0]"),
    )
}


@pytest.fixture
def dag() -> Dag:
    return Dag.from_assets(ASSETS)


def test_order_is_topological_and_stable(dag: Dag) -> None:
    assert dag.order == ("london", "teaser", "sketch", "clip", "moodboard", "clip_long")
    for name, parents in dag.parents.items():
        for parent in parents:
            assert dag.order.index(parent) < dag.order.index(name)


def test_files_are_not_nodes_and_repeats_collapse(dag: Dag) -> None:
    assert dag.parents["sketch"] == ("london",)
    assert dag.parents["moodboard"] == ("london", "sketch")
    assert set(dag.children["london"]) == {"sketch", "moodboard"}


def test_select_takes_targets_and_ancestors_in_order(dag: Dag) -> None:
    assert dag.select([]) == dag.order
    assert dag.select(["clip"]) == ("london", "sketch", "clip")
    assert dag.select(["teaser", "clip"]) == ("london", "teaser", "sketch", "clip")
    assert dag.select(["clip_long", "clip_long"]) == ("london", "sketch", "clip", "clip_long")


def test_an_unknown_target_is_a_usage_error_with_a_suggestion(dag: Dag) -> None:
    with pytest.raises(UsageError) as caught:
        dag.select(["skecth"])
    assert caught.value.exit_code == 2
    assert caught.value.hint == "did you mean 'sketch'?"
    with pytest.raises(UsageError) as far:
        dag.select(["zzzz"])
    assert far.value.hint is not None and "dag" in far.value.hint


def test_priorities_are_the_longest_remaining_path(dag: Dag) -> None:
    weight = {"london": 1, "sketch": 2, "clip": 10, "clip_long": 20, "moodboard": 5, "teaser": 7}
    got = dag.priorities(dag.order, lambda n: float(weight[n]))
    assert got == {
        "clip_long": 20, "clip": 30, "moodboard": 5, "sketch": 32, "london": 33, "teaser": 7
    }  # fmt: skip


def test_priorities_only_count_the_selection(dag: Dag) -> None:
    got = dag.priorities(dag.select(["moodboard"]), lambda n: 1.0)
    assert got == {"london": 3.0, "sketch": 2.0, "moodboard": 1.0}


def test_an_empty_project() -> None:
    empty = Dag.from_assets({})
    assert empty.order == ()
    assert empty.select([]) == ()
