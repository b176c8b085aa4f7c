"""Matrix assets: expansion, equivalence with hand-written assets, globs, grouping, bounds.

The mistakes of matrix files are in the fixture corpus (`fixtures/mediafiles/matrix-*`);
here are the behaviours of valid files and the limits.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliResult, called, read_lock, states

from imaginebuild.errors import MediafileError
from imaginebuild.mediafile.load import load_mediafile
from imaginebuild.mediafile.matrix import MAX_ASSETS, MAX_TEXT
from imaginebuild.mediafile.relabel import MAX_SHOWN

LOGO = Path(__file__).parent / "fixtures" / "projects" / "skyline" / "art" / "logo.png"

MATRIX = """\
version: 1
provider: local
vars:
  products: [aurora, comet]
  brand: {name: Acme}
  style: studio light
defaults:
  video: {resolution: 480p, duration: 1}
assets:
  hero-${product}:
    matrix: {product: "${products}"}
    kind: image
    prompt: The ${product} headphones by ${brand.name}, ${style}
    count: 2
  spot-${product}-${format.name}:
    matrix:
      product: "${products}"
      format: [{name: wide, ratio: "16:9"}, {name: tall, ratio: "9:16"}]
    kind: edit
    prompt: Place <IMAGE_0> on a ${format.name} billboard next to <IMAGE_1>
    inputs: ["hero-${product}[0]", art/logo.png]
    aspect_ratio: ${format.ratio}
  clip-${product}:
    matrix: {product: "${products}"}
    kind: animate
    prompt: The ${product} headphones turn slowly
    inputs: ["spot-${product}-wide"]
"""

HAND_WRITTEN = """\
version: 1
provider: local
defaults:
  video: {resolution: 480p, duration: 1}
assets:
  hero-aurora:
    kind: image
    prompt: The aurora headphones by Acme, studio light
    count: 2
  hero-comet:
    kind: image
    prompt: The comet headphones by Acme, studio light
    count: 2
  spot-aurora-wide:
    kind: edit
    prompt: Place <IMAGE_0> on a wide billboard next to <IMAGE_1>
    inputs: ["hero-aurora[0]", art/logo.png]
    aspect_ratio: "16:9"
  spot-aurora-tall:
    kind: edit
    prompt: Place <IMAGE_0> on a tall billboard next to <IMAGE_1>
    inputs: ["hero-aurora[0]", art/logo.png]
    aspect_ratio: "9:16"
  spot-comet-wide:
    kind: edit
    prompt: Place <IMAGE_0> on a wide billboard next to <IMAGE_1>
    inputs: ["hero-comet[0]", art/logo.png]
    aspect_ratio: "16:9"
  spot-comet-tall:
    kind: edit
    prompt: Place <IMAGE_0> on a tall billboard next to <IMAGE_1>
    inputs: ["hero-comet[0]", art/logo.png]
    aspect_ratio: "9:16"
  clip-aurora:
    kind: animate
    prompt: The aurora headphones turn slowly
    inputs: [spot-aurora-wide]
  clip-comet:
    kind: animate
    prompt: The comet headphones turn slowly
    inputs: [spot-comet-wide]
"""

EXPANDED = [
    "hero-aurora", "hero-comet",
    "spot-aurora-wide", "spot-aurora-tall", "spot-comet-wide", "spot-comet-tall",
    "clip-aurora", "clip-comet",
]  # fmt: skip


def _project(tmp_path: Path, text: str) -> Path:
    (tmp_path / "art").mkdir(parents=True, exist_ok=True)
    shutil.copy(LOGO, tmp_path / "art" / "logo.png")
    (tmp_path / "mediafile.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def _errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(MediafileError) as caught:
        load_mediafile(_project(tmp_path, text) / "mediafile.yaml")
    return [f"{d.line}:{d.column}: {d.path}: {d.message}" for d in caught.value.diagnostics]


def test_a_matrix_expands_to_the_cross_product_in_declaration_order(tmp_path: Path) -> None:
    mf = load_mediafile(_project(tmp_path, MATRIX) / "mediafile.yaml")
    assert list(mf.assets) == EXPANDED
    spot = mf.assets["spot-comet-tall"]
    assert spot.prompt == "Place <IMAGE_0> on a tall billboard next to <IMAGE_1>"
    assert spot.aspect_ratio == "9:16"
    assert [r.raw for r in spot.inputs] == ["hero-comet[0]", "art/logo.png"]
    assert spot.template == "spot-${product}-${format.name}"
    assert mf.assets["hero-aurora"].prompt == "The aurora headphones by Acme, studio light"
    assert spot.mark is not None and spot.mark.line == 15  # the template's name


def test_expanded_assets_equal_the_same_assets_written_by_hand(tmp_path: Path) -> None:
    matrix = load_mediafile(_project(tmp_path / "m", MATRIX) / "mediafile.yaml")
    hand = load_mediafile(_project(tmp_path / "h", HAND_WRITTEN) / "mediafile.yaml")
    assert list(matrix.assets) == list(hand.assets)
    for name in EXPANDED:  # Asset equality leaves out the mark and the template
        assert matrix.assets[name] == hand.assets[name], name


def test_converting_a_hand_written_file_to_a_matrix_rebuilds_nothing(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    project = _project(tmp_path, HAND_WRITTEN)
    first = cli("--json", "run", cwd=project)
    assert first.code == 0, first.stderr
    assert called(first.json) == set(EXPANDED)
    lock = (project / "mediafile.lock").read_bytes()
    (project / "mediafile.yaml").write_text(MATRIX, encoding="utf-8")
    again = cli("--json", "run", cwd=project)
    assert again.code == 0, again.stderr
    assert states(again.json) == dict.fromkeys(EXPANDED, "up_to_date")  # no call, no restore
    assert {a["name"]: a["key"] for a in again.json["assets"]} == {
        a["name"]: a["key"] for a in first.json["assets"]
    }
    assert (project / "mediafile.lock").read_bytes() == lock


def test_targets_accept_globs(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    project = _project(tmp_path, MATRIX)
    done = cli("--json", "run", "spot-*-tall", cwd=project)
    assert done.code == 0, done.stderr
    assert called(done.json) == {"hero-aurora", "hero-comet", "spot-aurora-tall", "spot-comet-tall"}
    assert set(read_lock(project)["assets"]) == called(done.json)


def test_a_glob_that_matches_nothing_is_a_usage_error(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    project = _project(tmp_path, MATRIX)
    done = cli("run", "poster-*", cwd=project)
    assert done.code == 2
    assert "no asset matches 'poster-*'" in done.stderr
    assert not (project / "out").exists() and not (project / "mediafile.lock").exists()


def test_status_and_plan_group_expansions_under_their_template(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    project = _project(tmp_path, MATRIX)
    plan = cli("plan", cwd=project)
    lines = plan.stdout.splitlines()
    header = lines.index("spot-${product}-${format.name}")
    assert [line.split()[0] for line in lines[header + 1 : header + 5]] == EXPANDED[2:6]
    assert all(line.startswith("  spot-") for line in lines[header + 1 : header + 5])
    status = cli("--json", "status", cwd=project)
    templates = {a["name"]: a["template"] for a in status.json["assets"]}
    assert templates["clip-comet"] == "clip-${product}"
    assert cli("run", cwd=project).code == 0
    settled = cli("--json", "status", cwd=project)  # the no-op answer keeps the templates
    assert {a["name"]: a["template"] for a in settled.json["assets"]} == templates


def test_dag_groups_expansions(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    project = _project(tmp_path, MATRIX)
    text = cli("dag", cwd=project).stdout.splitlines()
    assert text[:2] == ["hero-${product}", "  hero-aurora (image)"]
    mermaid = cli("dag", "--format", "mermaid", cwd=project).stdout
    assert 'subgraph m1["spot-${product}-${format.name}"]' in mermaid
    dag = cli("--json", "dag", cwd=project).json
    assert dag["assets"][0]["template"] == "hero-${product}"


def test_the_report_groups_expansions(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    project = _project(tmp_path, MATRIX)
    assert cli("report", "-o", "report", cwd=project).code == 0
    page = (project / "report" / "index.html").read_text(encoding="utf-8")
    assert page.count('<section class="template">') == 3
    assert '<h2 class="template-name">clip-${product} <span class="count">2 assets' in page


def test_a_numeric_item_field_stays_a_number(tmp_path: Path) -> None:
    mf = load_mediafile(
        _project(
            tmp_path,
            "version: 1\nassets:\n  shot-${n.name}:\n    matrix: {n: [{name: a, count: 3}]}\n"
            "    kind: image\n    prompt: p ${n.count}\n    count: ${n.count}\n",
        )
        / "mediafile.yaml"
    )
    assert (mf.assets["shot-a"].count, mf.assets["shot-a"].prompt) == (3, "p 3")


def test_string_vars_and_escapes_behave_as_before(tmp_path: Path) -> None:
    mf = load_mediafile(
        _project(
            tmp_path,
            "version: 1\nvars: {style: ink, v: '${style} wash'}\nassets:\n  a-${x}:\n"
            "    matrix: {x: [1]}\n    kind: image\n    prompt: ${v} $${x} ${x}\n",
        )
        / "mediafile.yaml"
    )
    assert mf.assets["a-1"].prompt == "ink wash ${x} 1"


def test_the_same_problem_in_many_combinations_is_shown_a_few_times(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        "version: 1\nassets:\n  a-${x}:\n    matrix: {x: [1, 2, 3, 4, 5, 6]}\n"
        "    kind: edit\n    prompt: p\n    inputs: ['other-${x}']\n",
    )
    assert errors[:MAX_SHOWN] == [
        f"7:14: assets.a-${{x}} [x={i}].inputs[0]: unknown asset 'other-{i}'"
        for i in range(1, MAX_SHOWN + 1)
    ]
    assert errors[MAX_SHOWN:] == [
        f"7:14: assets.a-${{x}}.inputs[0]: … and {6 - MAX_SHOWN} more combinations with a "
        "problem here"
    ]


def test_a_name_that_uses_an_axis_without_a_matrix_is_an_error(tmp_path: Path) -> None:
    assert _errors(
        tmp_path, "version: 1\nassets:\n  a-${x}:\n    kind: image\n    prompt: p\n"
    ) == ["3:3: assets.a-${x}: asset name 'a-${x}' uses '${…}' but the asset has no `matrix:`"]


def test_an_expanded_name_must_be_valid(tmp_path: Path) -> None:
    assert _errors(
        tmp_path,
        "version: 1\nassets:\n  a-${r}:\n    matrix: {r: ['16:9']}\n    kind: image\n"
        "    prompt: p\n",
    ) == ["3:3: assets.a-${r} [r=16:9]: expands to 'a-16:9', not a valid asset name"]


def test_the_expansion_is_bounded_in_assets(tmp_path: Path) -> None:
    side = int(MAX_ASSETS**0.5) + 1
    items = ", ".join(str(i) for i in range(side))
    errors = _errors(
        tmp_path,
        f"version: 1\nassets:\n  a-${{x}}-${{y}}:\n    matrix: {{x: [{items}], y: [{items}]}}\n"
        "    kind: image\n    prompt: p\n",
    )
    assert errors == [
        f"4:5: assets.a-${{x}}-${{y}}.matrix: the matrix expands to {side * side:,} assets; "
        f"a file's matrices may make at most {MAX_ASSETS:,}"
    ]


def test_the_expansion_is_bounded_in_text(tmp_path: Path) -> None:
    big = "w" * (MAX_TEXT // 2 + 1)
    errors = _errors(
        tmp_path,
        "version: 1\nassets:\n  a-${x}:\n    matrix: {x: [1]}\n    kind: image\n"
        f"    prompt: p\n    model: '{big}${{x}}{big}'\n",
    )
    assert errors == [
        f"7:12: assets.a-${{x}} [x=1].model: the matrix expands this text past "
        f"{MAX_TEXT:,} characters"
    ]


def test_the_published_schema_accepts_matrix_templates_as_editors_see_them() -> None:
    import jsonschema
    import yaml

    from imaginebuild.mediafile.schema import load_schema

    validator = jsonschema.Draft202012Validator(load_schema())
    for text in (MATRIX, (Path(__file__).parent.parent / "examples/catalog/mediafile.yaml")
                 .read_text(encoding="utf-8")):  # fmt: skip
        assert list(validator.iter_errors(yaml.safe_load(text))) == []
    wrong = yaml.safe_load(MATRIX.replace('matrix: {product: "${products}"}', "matrix: 5", 1))
    assert [e.json_path for e in validator.iter_errors(wrong)] == [
        "$.assets['hero-${product}'].matrix"
    ]


def test_a_problem_every_combination_shares_is_said_once(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        "version: 1\nassets:\n  a-${x}:\n    matrix: {x: [1, 2, 3]}\n"
        "    kind: image\n    prompt: p\n    count: 11\n",
    )
    assert errors == [
        "7:12: assets.a-${x} [x=1].count: count 11 is out of range (1–10)",
        "7:12: assets.a-${x}.count: … and 2 more combinations with a problem here",
    ]


def test_a_field_of_a_text_var_is_reported_as_before(tmp_path: Path) -> None:
    text = "version: 1\nvars: {style: ink}\nassets:\n  a: {kind: image, prompt: '${style.x}'}\n"
    assert _errors(tmp_path, text) == ["4:28: assets.a.prompt: invalid var reference '${style.x}'"]
    assert _errors(tmp_path, text.replace("{style: ink}", "{style: ink, l: [1]}")) == [
        "4:28: assets.a.prompt: invalid var reference '${style.x}'"
    ]
