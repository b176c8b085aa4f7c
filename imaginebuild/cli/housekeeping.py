"""`gc` and `clean`: what they would drop, the question on a terminal, the answer.

Both commands first list what they would remove with sizes. `gc` then asks on a
terminal (y/N), drops with `--yes`, and refuses (exit 2) when nobody can answer;
`clean` removes only with `--yes` and is otherwise a dry run. What was (or would
be) removed is the command's result, on stdout; the listing shown before the
question, the question itself and hints go to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from imaginebuild.cli.context import emit_json, result_line, say
from imaginebuild.errors import UsageError

if TYPE_CHECKING:
    from imaginebuild.project import Project
    from imaginebuild.store.collect import GcPlan
    from imaginebuild.store.orphans import Finding

_LISTED = 20  # lines of a listing before "… and N more"


def size_text(size: int) -> str:
    """Bytes as people read them: `512 B`, `3.4 kB`, `1.2 MB`, `2.0 GB`."""
    if size < 1000:
        return f"{size} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if size < scale * 1000 or unit == "GB":
            return f"{size / scale:.1f} {unit}"
    raise AssertionError("unreachable")


def run_gc(
    project: Project,
    *,
    dry_run: bool,
    yes: bool,
    only_current: bool,
    min_age: float,
    as_json: bool,
    ask: Callable[[str], bool] | None = None,
) -> int:
    """`imaginebuild gc`: survey, list, confirm, drop. Returns the exit code."""
    plan = project.gc(dry_run=True, only_current=only_current, min_age=min_age)
    if not plan.empty and not dry_run and not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"gc would drop {_amount(plan)} and needs a yes: this is not a terminal",
                hint="pass --yes to drop them (scripts), or --dry-run to list them",
            )
        _list_plan(plan, only_current, say)
        if not (ask or confirm)("drop them?"):
            result_line("nothing dropped")
            return 0
    done = (
        plan
        if dry_run or plan.empty
        else project.gc(only_current=only_current, min_age=min_age, agreed=plan)
    )
    if as_json:
        emit_json(_gc_json(done, dry_run))
        return 0
    if dry_run:
        _list_plan(done, only_current, result_line)
    verb = "would drop" if dry_run else "dropped"
    result_line(f"{verb} {_amount(done)}")
    return 0


def run_clean(project: Project, *, yes: bool, as_json: bool) -> int:
    """`imaginebuild clean`: list orphaned outputs; remove them with --yes."""
    from imaginebuild.store.orphans import Verdict

    findings = project.clean(dry_run=not yes)
    removable = [f for f in findings if f.verdict is Verdict.REMOVE]
    changed = [f for f in findings if f.verdict is Verdict.CHANGED]
    if as_json:
        emit_json(
            {
                "dry_run": not yes,
                "removed" if yes else "would_remove": [_finding_json(f) for f in removable],
                "kept_changed": [_finding_json(f) for f in changed],
            }
        )
        return 0
    verb = "removed" if yes else "would remove"
    for f in removable:
        result_line(f"{verb} {f.orphan.path}  {size_text(f.size)}  (was {f.orphan.asset})")
    for f in changed:
        result_line(
            f"kept {f.orphan.path}: edited since imaginebuild wrote it for {f.orphan.asset}"
        )
    total = size_text(sum(f.size for f in removable))
    result_line(f"{verb} {len(removable)} orphaned output(s), {total}")
    if removable and not yes:
        say("hint: run `imaginebuild clean --yes` to remove them")
    return 0


def confirm(question: str) -> bool:
    """Ask `question` on the terminal; only `y` or `yes` agrees."""
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _amount(plan: GcPlan) -> str:
    return (
        f"{len(plan.keys)} action entries and {len(plan.blobs)} blobs "
        f"({size_text(plan.bytes)}, {plan.bytes} bytes)"
    )


def _list_plan(plan: GcPlan, only_current: bool, line: Callable[[str], None]) -> None:
    """What gc drops, largest first, then what history kept, each through `line`."""
    for blob in sorted(plan.blobs, key=lambda b: -b.size)[:_LISTED]:
        kind = f"  {blob.media_type}" if blob.media_type else ""
        line(f"  blob {blob.sha256[:12]}  {size_text(blob.size)}{kind}")
    if len(plan.blobs) > _LISTED:
        line(f"  … and {len(plan.blobs) - _LISTED} more blobs")
    if plan.history_versions:
        line(
            f"kept: everything named by {plan.history_versions} committed version(s) of the "
            "lockfile (--only-current to ignore git history)"
        )
    elif only_current:
        line("git history ignored (--only-current)")


def _gc_json(plan: GcPlan, dry_run: bool) -> dict[str, object]:
    return {
        "actions": len(plan.keys),
        "blobs": len(plan.blobs),
        "bytes": plan.bytes,
        "dry_run": dry_run,
        "history_versions": plan.history_versions,
        "dropped_blobs": [
            {"sha256": b.sha256, "bytes": b.size, "media_type": b.media_type or None}
            for b in plan.blobs
        ],
    }


def _finding_json(f: Finding) -> dict[str, object]:
    return {"path": f.orphan.path, "bytes": f.size, "asset": f.orphan.asset}
