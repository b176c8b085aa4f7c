"""The read-only commands: status, plan, why and show.

Each decides the selection through the assessor and reports it; nothing is
called and nothing but the stat cache and the settled snapshot is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from imaginebuild.engine.facts import Facts, RunOptions
from imaginebuild.engine.rebuild import Action, Decision, ReasonCode
from imaginebuild.engine.results import AssetResult, CommandResult, without_name
from imaginebuild.errors import UsageError
from imaginebuild.events import AssetState
from imaginebuild.gcpause import paused_gc
from imaginebuild.project.wiring import ProjectCore
from imaginebuild.providers.xai.pacing import rate_limit_bound_s
from imaginebuild.spelled import ProviderName


class SurveyCommands(ProjectCore):
    """status, plan, why and show."""

    def status(self, targets: Iterable[str] = ()) -> CommandResult:
        """Each selected asset: up_to_date / stale / never_built / failed, with reasons."""
        return self._survey_result("status", targets, RunOptions())

    def plan(self, targets: Iterable[str] = (), options: RunOptions | None = None) -> CommandResult:
        """What `run` would do, why, and what it would cost; calls nothing, writes nothing."""
        return self._survey_result("plan", targets, options or RunOptions())

    def why(self, name: str) -> AssetResult:
        """Why one asset is (or is not) up to date: the fields changed since its last build."""
        return self.explain(name).get(name)

    def explain(self, name: str) -> CommandResult:
        """`status` of one asset and everything it needs; `.causes(name)` follows its
        "will be built first" reasons down to the fields that changed."""
        if name not in self.mediafile.assets:
            self.dag.select([name])  # raises UsageError with did-you-mean
        return self.status([name])

    def show(self, name: str) -> dict[str, Any]:
        """The provenance record of an asset's last build, and its earlier takes in the cache."""
        if name not in self.mediafile.assets:
            self.dag.select([name])
        entry = self.lock_entries().get(name)
        if entry is None:
            raise UsageError(f"{name!r} has never been built", hint=f"imaginebuild run {name}")
        takes: list[list[dict[str, object]]] = []
        cached = self.store.get_action(entry.key)
        if cached is not None:
            takes = [[o.to_json() for o in take] for take in cached.takes]
        return {
            "name": name,
            "kind": self.mediafile.assets[name].kind.value,
            "key": entry.key,
            **dict(entry.fields),
            "outputs": [o.to_json() for o in entry.outputs],
            "record": entry.record.to_json(),
            "earlier_takes": takes,
        }

    def _survey_result(
        self, command: str, targets: Iterable[str], options: RunOptions
    ) -> CommandResult:
        targets = tuple(targets)
        selected = self.dag.select(targets)
        with paused_gc():
            facts = self.assessor.survey(selected, options)
        if command == "status" and all(
            f.decision.action is Action.UP_TO_DATE for f in facts.values()
        ):
            self._remember_settled(targets, options, facts)
        self.state.save_stat_cache()
        failures = self.failures.read()
        resumable = self.state.journaled_keys()
        results = []
        for name in selected:
            f = facts[name]
            state = _survey_state(f.decision, command)
            failure = failures.get(name)
            if failure is None or failure.key != f.key or state == AssetState.UP_TO_DATE:
                failure = None
            resumes = f.decision.action is Action.CALL and f.key in resumable
            reason = f.decision.summary
            if command == "plan":
                reason = _plan_reason(f.decision, resumes)
            elif failure is not None:
                error = without_name(name, failure.error)  # the row names the asset
                reason = f"failed: {error}" if error else "failed"
            results.append(
                AssetResult(
                    name=name,
                    kind=f.asset.kind.value,
                    state=AssetState.FAILED if failure is not None else state,
                    reason=reason,
                    outputs=f.asset.outputs,
                    key=f.key,
                    estimate_ticks=0 if resumes else f.estimate_ticks,  # the job is paid
                    reasons=f.decision.reasons,
                    error=failure.error or None if failure is not None else None,
                    hint=failure.hint if failure is not None else None,
                    template=f.asset.template,
                )
            )
        if command != "plan":
            return CommandResult(command, tuple(results))
        return self._priced_plan(tuple(results), facts, options)

    def _priced_plan(
        self, results: tuple[AssetResult, ...], facts: dict[str, Facts], options: RunOptions
    ) -> CommandResult:
        """The plan with the unconfirmed prices of each call and the rate limits' time."""
        calls: Counter[str] = Counter()
        priced = []
        for result in results:
            f = facts[result.name]
            if f.decision.action is not Action.CALL:
                priced.append(result)
                continue
            asset = self.asset_for(result.name, options)
            if asset.provider == ProviderName.XAI:
                calls[asset.model] += 1
            unconfirmed = self.estimator.estimate(asset).unconfirmed
            priced.append(replace(result, unconfirmed_prices=unconfirmed))
        rates = self.mediafile.settings(ProviderName.XAI).rate_limits
        bound = rate_limit_bound_s(calls, rates) if calls else None
        return CommandResult("plan", tuple(priced), rate_limit_s=bound)


# ---------------------------------------------------------------------- pure helpers


def _survey_state(decision: Decision, command: str) -> AssetState:
    if decision.action is Action.UP_TO_DATE:
        return AssetState.UP_TO_DATE
    if any(r.code == ReasonCode.NEVER_BUILT for r in decision.reasons):
        return AssetState.NEVER_BUILT
    return AssetState.STALE


def _plan_reason(decision: Decision, resumes: bool = False) -> str:
    """The plan column: `new` (never built), `resume (paid)` (a journaled job),
    `call: why`, `restore from cache: why` or `up to date`."""
    if resumes:
        return "resume (paid)"
    if decision.action is Action.CALL and any(
        r.code == ReasonCode.NEVER_BUILT for r in decision.reasons
    ):
        return "new"
    verb = {
        Action.UP_TO_DATE: "up to date",
        Action.RESTORE: "restore from cache",
        Action.CALL: "call",
        Action.HOLD: "hold",  # waits for accept / adopt / --force: nothing is paid
    }
    head = verb[decision.action]
    return head if not decision.reasons else f"{head}: {decision.summary}"
