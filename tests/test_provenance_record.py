"""The typed provenance record and the enums at the seams: what is stored reads back
typed and writes back byte for byte, hostile input included; the enums keep the
spelling JSON output has always had."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from imaginebuild.engine.rebuild import ReasonCode
from imaginebuild.events import AssetState, MessageLevel
from imaginebuild.money import usd_to_ticks
from imaginebuild.provenance import NO_RECORD, CallProvenance, Provenance
from imaginebuild.spelled import PROVIDERS, ProviderName

# A record as a build of today's version writes it (see engine/callrecord.py).
WRITTEN = {
    "imaginebuild": "0.1.0",
    "built_at": "2026-05-01T10:00:00Z",
    "provider": "xai",
    "model": "grok-imagine-image",
    "request_ids": ["r-1", "r-2"],
    "cost_usd": "0.07",
    "cost_estimated": False,
    "estimate_usd": "0.07",
    "calls": [
        {
            "endpoint": "/v1/images/generations",
            "request_id": "r-1",
            "x_request_id": "x-1",
            "cost_usd": "0.035",
            "retries": 1,
            "started_at": "2026-05-01T09:59:58Z",
            "duration_s": 1.25,
        },
        {
            "endpoint": "/v1/images/generations",
            "request_id": None,
            "x_request_id": None,
            "cost_usd": None,
            "retries": 0,
            "started_at": None,
            "duration_s": 0.0,
        },
    ],
}


def _bytes(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, ensure_ascii=False).encode()


def test_a_written_record_reads_typed_and_writes_back_the_same() -> None:
    record = Provenance.from_json(WRITTEN)
    assert record.request_ids == ("r-1", "r-2")
    assert record.cost_ticks == usd_to_ticks("0.07")
    assert record.estimate_ticks == usd_to_ticks("0.07")
    assert record.calls[0] == CallProvenance(
        "/v1/images/generations", "r-1", "x-1", usd_to_ticks("0.035"), 1,
        "2026-05-01T09:59:58Z", 1.25,
    )  # fmt: skip
    assert record.calls[1].cost_ticks is None and record.calls[1].request_id is None
    assert record.extra == {}  # nothing needed keeping verbatim
    assert _bytes(record.to_json()) == _bytes(WRITTEN)


def test_a_record_made_in_code_has_every_field() -> None:
    record = Provenance(
        imaginebuild="0.1.0", built_at="2026-05-01T10:00:00Z", provider="xai",
        model="grok-imagine-image", request_ids=("r-1", "r-2"), cost_ticks=usd_to_ticks("0.07"),
        estimate_ticks=usd_to_ticks("0.07"),
        calls=tuple(Provenance.from_json(WRITTEN).calls),
    )  # fmt: skip
    assert _bytes(record.to_json()) == _bytes(WRITTEN)


def test_take_marks_travel_beside_the_fields() -> None:
    picked = Provenance.from_json(WRITTEN).marked(picked={"take": "abc", "at": "now"})
    again = Provenance.from_json(picked.to_json())
    assert again.to_json()["picked"] == {"take": "abc", "at": "now"}
    assert again.cost_ticks == usd_to_ticks("0.07")


def test_an_empty_record_stays_empty() -> None:
    assert NO_RECORD.to_json() == {}
    assert Provenance.from_json({}).to_json() == {}
    assert Provenance.from_json({}).request_ids == ()


def test_odd_spellings_are_read_leniently_and_written_back_verbatim() -> None:
    stored = {
        "cost_usd": "0.10",  # not how usd_json writes 0.1
        "estimate_usd": 5,  # not a text
        "cost_estimated": 1,  # not a bool
        "request_ids": "r-1",  # not a list
        "calls": [{"retries": True, "duration_s": 3, "cost_usd": "nan"}, "junk"],
        "built_at": None,
    }
    record = Provenance.from_json(stored)
    assert record.cost_ticks == usd_to_ticks("0.1")
    assert record.estimate_ticks == 0  # stated, but not an amount
    assert record.cost_estimated is True
    assert record.request_ids == ()
    assert record.calls[0].retries == 0 and record.calls[0].cost_ticks == 0
    assert record.calls[1] == CallProvenance()
    assert record.built_at is None
    assert _bytes(record.to_json()) == _bytes(stored)


def test_a_record_that_is_not_an_object_reads_as_none() -> None:
    for hostile in (None, [], "text", 7, ["request_ids"]):
        assert Provenance.from_json(hostile).to_json() == {}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
record_keys = st.sampled_from([*WRITTEN, "picked", "retouched"]) | st.text(max_size=6)


@given(st.dictionaries(record_keys, json_values, max_size=6))
def test_any_stored_record_writes_back_byte_for_byte(stored: dict[str, Any]) -> None:
    record = Provenance.from_json(stored)
    assert _bytes(record.to_json()) == _bytes(stored)
    assert _bytes(Provenance.from_json(record.to_json()).to_json()) == _bytes(stored)


def test_a_list_of_odd_calls_is_kept() -> None:
    stored = {**WRITTEN, "calls": [None, 3, {"endpoint": 1}]}
    assert _bytes(Provenance.from_json(stored).to_json()) == _bytes(stored)


def test_the_enums_keep_their_json_spelling() -> None:
    states = {
        "up_to_date", "restored", "built", "failed", "skipped", "stale", "never_built",
        "pushed", "picked", "accepted", "adopted",
    }  # fmt: skip
    assert {s.value for s in AssetState} == states
    assert {m.value for m in MessageLevel} == {"debug", "info", "warning"}
    assert PROVIDERS == ("xai", "local")
    assert {c.value for c in ReasonCode} >= {
        "never_built", "forced", "resume", "upstream", "output_missing", "key_format", "param",
        "prompt", "inputs", "input", "remote", "hold", "retouched", "set_aside", "rejected",
        "pick_stale",
    }  # fmt: skip
    for member in (AssetState.UP_TO_DATE, MessageLevel.WARNING, ProviderName.LOCAL):
        assert json.dumps({member: member}) == json.dumps({member.value: member.value})
        assert str(member) == f"{member}" == member.value
