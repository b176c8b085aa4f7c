"""The graph views networkx draws, through the CLI: `dag --format json|graphml`, every cycle
of a mediafile, `plan --critical-path` and the report's layers; and the paths where
start-up matters never import networkx (nor any other heavy module).

Most cases call `main([...])` in this process; the start-up check runs real processes,
since what a fresh interpreter imports is the point.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import pytest
from conftest import edit_yaml, run_cli

from imaginebuild.mediafile.validate import MAX_CYCLES

SKYLINE_EDGES = {
    ("london", "sketch"),
    ("sketch", "clip"),
    ("clip", "clip_long"),
    ("london", "moodboard"),
    ("sketch", "moodboard"),
}
HEAVY = ("networkx", "jsonschema", "httpx", "rich", "av", "PIL")


@pytest.fixture
def ib(clean_env: dict[str, str]) -> Callable[..., tuple[int, str, str]]:
    """`main([...])` in `cwd` with the clean environment: (exit code, stdout, stderr)."""

    def run(*args: str, cwd: Path) -> tuple[int, str, str]:
        done = run_cli(*args, cwd=cwd, env=clean_env)
        return done.code, done.stdout, done.stderr

    return run


# ---------------------------------------------------------------------- dag formats


def test_dag_json_is_networkx_node_link_data(
    ib: Callable[..., tuple[int, str, str]], project_dir: Path
) -> None:
    code, out, _ = ib("dag", "--format", "json", cwd=project_dir)
    assert code == 0
    graph = nx.node_link_graph(json.loads(out), edges="edges")
    assert list(graph) == ["london", "teaser", "sketch", "clip", "moodboard", "clip_long"]
    assert set(graph.edges) == SKYLINE_EDGES
    assert graph.nodes["clip_long"] == {
        "kind": "extend",
        "provider": "local",
        "model": "grok-imagine-video",
    }
    assert graph.edges["london", "moodboard"]["refs"] == "london[1]"
    assert graph.edges["london", "sketch"]["refs"] == "london[0]"


def test_dag_json_keeps_to_the_targets_and_their_ancestors(
    ib: Callable[..., tuple[int, str, str]], project_dir: Path
) -> None:
    code, out, _ = ib("dag", "--format", "json", "clip", cwd=project_dir)
    graph = nx.node_link_graph(json.loads(out), edges="edges")
    assert (code, list(graph), set(graph.edges)) == (
        0,
        ["london", "sketch", "clip"],
        {("london", "sketch"), ("sketch", "clip")},
    )


def test_dag_graphml_reads_back_as_the_same_graph(
    ib: Callable[..., tuple[int, str, str]], project_dir: Path
) -> None:
    code, out, _ = ib("dag", "--format", "graphml", cwd=project_dir)
    assert code == 0
    graph = nx.parse_graphml(out)
    assert set(graph) == {"london", "teaser", "sketch", "clip", "moodboard", "clip_long"}
    assert set(graph.edges) == SKYLINE_EDGES
    assert graph.nodes["teaser"]["kind"] == "video"
    assert graph.edges["sketch", "moodboard"]["refs"] == "sketch"


# ---------------------------------------------------------------------- cycles


def test_every_cycle_is_listed_each_at_its_first_asset(
    ib: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    # a reads b and c, both read d, d reads a: two cycles through d. A depth-first walk
    # that marks d done after the first finds only one of them.
    (tmp_path / "mediafile.yaml").write_text(
        "version: 1\n"
        "provider: local\n"
        "assets:\n"
        "  a: {kind: edit, prompt: p, inputs: [b, c]}\n"
        "  b: {kind: edit, prompt: p, inputs: [d]}\n"
        "  c: {kind: edit, prompt: p, inputs: [d]}\n"
        "  d: {kind: edit, prompt: p, inputs: [a]}\n"
    )
    code, out, err = ib("--json", "validate", cwd=tmp_path)
    assert code == 2
    assert [(d["line"], d["column"], d["message"]) for d in json.loads(out)["diagnostics"]] == [
        (4, 39, "cycle: a → b → d → a"),
        (4, 42, "cycle: a → c → d → a"),
    ]
    assert "mediafile.yaml:4:42: assets.a.inputs[1]: cycle: a → c → d → a" in err
    assert not (tmp_path / ".imaginebuild").exists()


def test_the_list_of_cycles_is_bounded(
    ib: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    # Eight edits, each reading the next three around a ring: hundreds of cycles.
    lines = ["version: 1", "provider: local", "assets:"]
    for i in range(8):
        reads = ", ".join(f"n{(i + step) % 8}" for step in (1, 2, 3))
        lines.append(f"  n{i}: {{kind: edit, prompt: p, inputs: [{reads}]}}")
    (tmp_path / "mediafile.yaml").write_text("\n".join(lines) + "\n")
    code, out, _ = ib("--json", "validate", cwd=tmp_path)
    diagnostics = json.loads(out)["diagnostics"]
    cycles = [d for d in diagnostics if d["message"].startswith("cycle: ")]
    assert code == 2 and len(cycles) == MAX_CYCLES
    assert all(d["path"].startswith("assets.n") and d["line"] >= 4 for d in cycles)
    assert len({d["message"] for d in cycles}) == MAX_CYCLES  # each cycle once
    rest = [(d["line"], d["message"]) for d in diagnostics if d not in cycles]
    assert rest == [(3, f"more than {MAX_CYCLES} cycles among the assets; the first are listed")]


# ---------------------------------------------------------------------- critical path


def test_critical_path_of_a_fresh_project_follows_the_videos(
    ib: Callable[..., tuple[int, str, str]], project_dir: Path
) -> None:
    code, out, _ = ib("--json", "plan", "--critical-path", cwd=project_dir)
    assert code == 0
    # image and edit 10 s; a video 60 s + 15 s per second: clip 1 s, clip_long 2 s.
    assert json.loads(out)["critical_path"] == {
        "assets": [
            {"name": "london", "expected_seconds": 10.0},
            {"name": "sketch", "expected_seconds": 10.0},
            {"name": "clip", "expected_seconds": 75.0},
            {"name": "clip_long", "expected_seconds": 90.0},
        ],
        "expected_seconds": 185.0,
    }
    code, out, _ = ib("plan", "--critical-path", cwd=project_dir)
    assert code == 0
    assert (
        "critical path: london (10 s) → sketch (10 s) → clip (75 s) → clip_long (90 s), "
        "about 185 s one after another\n"
    ) in out


def test_critical_path_counts_only_what_the_plan_calls(
    ib: Callable[..., tuple[int, str, str]], chain_dir: Path
) -> None:
    assert ib("-q", "run", cwd=chain_dir)[0] == 0
    code, out, _ = ib("plan", "--critical-path", cwd=chain_dir)
    assert (code, out.splitlines()[-1]) == (0, "critical path: no calls")
    edit_yaml(chain_dir / "mediafile.yaml", "Ink <IMAGE_0>", "Paint <IMAGE_0>")
    code, out, _ = ib("--json", "plan", "--critical-path", cwd=chain_dir)
    path = json.loads(out)["critical_path"]
    assert [a["name"] for a in path["assets"]] == ["inked", "framed"]
    assert path["expected_seconds"] == 20.0


def test_plan_without_the_flag_prints_no_critical_path(
    ib: Callable[..., tuple[int, str, str]], project_dir: Path
) -> None:
    code, out, _ = ib("--json", "plan", cwd=project_dir)
    assert code == 0 and "critical_path" not in json.loads(out)
    assert "critical path" not in ib("plan", cwd=project_dir)[2]


# ---------------------------------------------------------------------- report layers


def test_the_report_lays_the_graph_out_in_generations(
    ib: Callable[..., tuple[int, str, str]], project_dir: Path, tmp_path: Path
) -> None:
    code, _, _ = ib("report", "-o", str(tmp_path / "report"), cwd=project_dir)
    assert code == 0
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    node = r'<a href="#asset-(\w+)"[^>]*><title>[^<]*</title><rect x="([\d.]+)"'
    x = {name: float(left) for name, left in re.findall(node, page)}
    assert x["london"] == x["teaser"] < x["sketch"] < x["clip"] == x["moodboard"] < x["clip_long"]


# ---------------------------------------------------------------------- start-up

_PROBE = """
import json, sys
from imaginebuild.cli.app import main
code = main(sys.argv[2:])
heavy = [m for m in json.loads(sys.argv[1]) if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize(
    "args", [("--version",), ("validate",), ("run",), ("status",)], ids=" ".join
)
def test_the_no_op_paths_import_no_heavy_module(
    args: tuple[str, ...],
    ib: Callable[..., tuple[int, str, str]],
    chain_dir: Path,
    clean_env: dict[str, str],
) -> None:
    for _ in range(2):  # build, then a no-op that records the settled verdict
        assert ib("-q", "run", cwd=chain_dir)[0] == 0
    assert ib("-q", "validate", cwd=chain_dir)[0] == 0  # the schema verdict is remembered
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY), "-q", *args],
        cwd=chain_dir,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"code": 0, "heavy": []}
