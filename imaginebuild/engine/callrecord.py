"""The provenance record of one built step: versions, time, provider, model, the money it
cost and every call's ids, as the cache entry, the lockfile and the sidecar keep it."""

from __future__ import annotations

import time

from imaginebuild.model import Asset
from imaginebuild.provenance import CallProvenance, Provenance
from imaginebuild.providers.base import GenerationResult
from imaginebuild.spelled import ProviderName
from imaginebuild.store.ledger import format_time
from imaginebuild.version import __version__


def call_record(asset: Asset, result: GenerationResult, cost: int, estimate: int) -> Provenance:
    """The record of a step built by `result`: `cost` is what the ledger says its calls
    were billed (ticks), `estimate` what the price table expected."""
    return Provenance(
        imaginebuild=__version__,
        built_at=format_time(time.time()),
        provider=str(asset.provider),
        model=asset.model,
        request_ids=tuple(result.request_ids),
        cost_ticks=cost,
        cost_estimated=result.reported_ticks is None and asset.provider != ProviderName.LOCAL,
        estimate_ticks=estimate,
        calls=tuple(
            CallProvenance(
                endpoint=c.endpoint,
                request_id=c.request_id,
                x_request_id=c.http_request_id,  # the API's id of the submission
                cost_ticks=c.cost_ticks,
                retries=c.retries,
                started_at=format_time(c.started_at) if c.started_at else None,
                duration_s=round(c.duration_s, 3),
            )
            for c in result.calls
        ),
    )
