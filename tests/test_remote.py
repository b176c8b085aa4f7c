"""The remote cache against a real S3 server on 127.0.0.1 (SeaweedFS; moto if it is absent).

The server enforces request signatures and conditional writes (If-None-Match → 412),
so what passes here is what a real bucket accepts. Each test works under its own
prefix of one bucket; the server starts once per session.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("s3fs", reason="the remote cache tests need the [s3] extra")

from conftest import STATE_DEADLINE_S, wait_for_state
from s3server import ACCESS_KEY, BUCKET, REGION, SECRET_KEY, FaultProxy, S3Server, start_s3

from imaginebuild.errors import CorruptBlob, StoreError, UsageError
from imaginebuild.provenance import Provenance
from imaginebuild.remote.cache import RemoteCache
from imaginebuild.remote.entries import decode_entry, encode_entry
from imaginebuild.remote.leasewait import LEASE_PACE, LeasePace, claim_or_wait
from imaginebuild.remote.sync import is_precondition_failed, is_transient, redact
from imaginebuild.retry import RetryPolicy
from imaginebuild.store.cache import ActionEntry, BlobRef, Store

FAST = RetryPolicy(max_retries=2, base_delay=0.0, max_delay=0.0, jitter=0.0)
NO_RETRY = RetryPolicy(max_retries=0)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One S3 server on loopback for the whole session."""
    server = start_s3(tmp_path_factory.mktemp("s3server"))
    yield server
    server.stop()


def s3_env(endpoint: str, secret: str = SECRET_KEY) -> dict[str, str]:
    """The AWS variables a machine would have to reach the server."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_REGION": REGION,
    }


@pytest.fixture
def url() -> str:
    """A prefix of the bucket that only this test uses."""
    return f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def env(s3: S3Server) -> dict[str, str]:
    """Credentials and endpoint of the session's server."""
    return s3_env(s3.endpoint)


Make = Callable[..., RemoteCache]


@pytest.fixture
def make_remote(url: str, env: dict[str, str]) -> Make:
    """A RemoteCache on this test's prefix; keywords override env, readonly, policy, clock…"""

    def make(
        *,
        environ: Mapping[str, str] | None = None,
        readonly: bool = False,
        warn: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> RemoteCache:
        base = RemoteCache.from_config(url, readonly, environ or env, warn=warn or (lambda m: None))
        assert base is not None
        if not kwargs:
            return base
        return RemoteCache(base.transport.fs, base.root, url=url, readonly=base.readonly, **kwargs)

    return make


@pytest.fixture
def raw(s3: S3Server, url: str) -> Any:
    """A plain s3fs client on the same prefix, to look at or tamper with the bucket."""
    import s3fs

    return s3fs.S3FileSystem(
        key=ACCESS_KEY,
        secret=SECRET_KEY,
        client_kwargs={"endpoint_url": s3.endpoint, "region_name": REGION},
        skip_instance_cache=True,
    )


def make_store(tmp_path: Path, name: str) -> Store:
    """An empty local cache, as on a fresh machine."""
    return Store(tmp_path / name)


def add_blob(store: Store, tmp_path: Path, size: int, seed: str) -> BlobRef:
    """Store `size` pseudo-random bytes as a blob."""
    data = (hashlib.sha256(seed.encode()).digest() * (size // 32 + 1))[:size]
    src = tmp_path / f"src-{uuid.uuid4().hex}"
    src.write_bytes(data)
    return store.put_file(src, "image/png", move=True)


def make_entry(store: Store, tmp_path: Path, *sizes: int, seed: str = "") -> ActionEntry:
    """An action entry whose outputs are fresh blobs of the given sizes."""
    key = hashlib.sha256(f"key-{seed}-{uuid.uuid4().hex}".encode()).hexdigest()
    outputs = tuple(add_blob(store, tmp_path, s, f"{seed}{key}{i}") for i, s in enumerate(sizes))
    entry = ActionEntry(
        key=key, outputs=outputs, record=Provenance.from_json({"asset": "x", "prompt": "p"})
    )
    store.put_action(entry)
    return entry


def objects(raw: Any, url: str) -> dict[str, str]:
    """Every object under the test's prefix → its ETag (what 'nothing written' compares)."""
    root = url.removeprefix("s3://")
    raw.invalidate_cache()
    try:
        found = raw.find(root, detail=True)
    except FileNotFoundError:
        return {}
    return {k: str(v.get("ETag")) for k, v in found.items()}


def assert_no_entry_without_blobs(remote: RemoteCache) -> None:
    """The invariant: every remote action entry's blobs are all on the remote."""
    blobs = set(remote.blob_hashes())
    for key in remote.action_keys():
        entry = remote.get_action(key)
        assert entry is not None
        assert {b.sha256 for b in entry.outputs} <= blobs, key


# -- configuration ----------------------------------------------------------------------


def test_no_remote_configured_means_none() -> None:
    assert RemoteCache.from_config(None, False, {}) is None
    assert RemoteCache.from_config("", False, {"IMAGINEBUILD_REMOTE": ""}) is None


def test_the_environment_wins_over_the_mediafile(tmp_path: Path) -> None:
    env = {"IMAGINEBUILD_REMOTE": f"file://{tmp_path / 'from-env'}"}
    remote = RemoteCache.from_config(f"file://{tmp_path / 'from-file'}", False, env)
    assert remote is not None
    assert remote.url.endswith("from-env")
    assert not remote.readonly


@pytest.mark.parametrize(("value", "readonly"), [("1", True), ("true", True), ("0", False)])
def test_readonly_forced_by_the_environment(tmp_path: Path, value: str, readonly: bool) -> None:
    env = {"IMAGINEBUILD_REMOTE_READONLY": value}
    remote = RemoteCache.from_config(f"file://{tmp_path}", False, env)
    assert remote is not None and remote.readonly is readonly
    mediafile_says = RemoteCache.from_config(f"file://{tmp_path}", True, env)
    assert mediafile_says is not None and mediafile_says.readonly


def test_a_missing_backend_package_names_the_extra() -> None:
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed here")
    with pytest.raises(UsageError) as err:
        RemoteCache.from_config("gs://bucket/prefix", False, {})
    assert "gs://" in str(err.value) and err.value.hint


def test_an_unknown_protocol_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unusable URL"):
        RemoteCache.from_config("nope://bucket", False, {})


def test_credentials_never_appear_in_messages(s3: S3Server, url: str) -> None:
    if not s3.checks_signatures:
        pytest.skip(f"{s3.name} does not check signatures")
    wrong = "wrong-secret-Zq9"
    remote = RemoteCache.from_config(url, False, s3_env(s3.endpoint, secret=wrong))
    assert remote is not None
    with pytest.raises(StoreError) as err:
        remote.get_action("a" * 64)
    text = f"{err.value} {err.value.hint}"
    assert "access denied" in text
    assert wrong not in text and SECRET_KEY not in text and ACCESS_KEY not in text


def test_userinfo_in_a_url_is_redacted() -> None:
    assert redact("s3://user:pa55@bucket/x") == "s3://bucket/x"
    assert redact("file:///shared/cache") == "file:///shared/cache"


# -- entries ----------------------------------------------------------------------------


def test_entry_round_trip_carries_both_format_versions(tmp_path: Path) -> None:
    store = make_store(tmp_path, "a")
    entry = make_entry(store, tmp_path, 10)
    doc = json.loads(encode_entry(entry))
    assert doc["v"] == 1 and doc["key_format"] == 1 and doc["entry"]["v"] == 1
    assert decode_entry(encode_entry(entry), entry.key) == entry


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: b"not json",
        lambda d: json.dumps({**d, "v": 99}).encode(),
        lambda d: json.dumps({**d, "key_format": 0}).encode(),
        lambda d: json.dumps({**d, "entry": {**d["entry"], "key": "b" * 64}}).encode(),
        lambda d: json.dumps({**d, "entry": {**d["entry"], "outputs": []}}).encode(),
        lambda d: json.dumps(
            {
                **d,
                "entry": {
                    **d["entry"],
                    "outputs": [{"sha256": "../../../etc/passwd", "bytes": 1, "media_type": "x"}],
                },
            }
        ).encode(),
        lambda d: json.dumps(
            {
                **d,
                "entry": {
                    **d["entry"],
                    "takes": [[{"sha256": "../x", "bytes": 1, "media_type": "x"}]],
                },
            }
        ).encode(),
    ],
    ids=[
        "garbage",
        "format",
        "key-format",
        "other-key",
        "no-outputs",
        "path-traversal",
        "take-traversal",
    ],
)
def test_a_malformed_remote_entry_is_ignored_with_a_warning(
    tmp_path: Path, make_remote: Make, raw: Any, mangle: Callable[[dict[str, Any]], bytes]
) -> None:
    warnings: list[str] = []
    remote = make_remote(warn=warnings.append)
    store = make_store(tmp_path, "a")
    entry = make_entry(store, tmp_path, 10)
    assert remote.push(entry, store)
    good = json.loads(encode_entry(entry))
    raw.pipe_file(remote.action_path(entry.key), mangle(good))
    assert remote.get_action(entry.key) is None
    assert len(warnings) == 1 and entry.key[:12] in warnings[0]


def test_keys_must_be_hex_digests(make_remote: Make) -> None:
    remote = make_remote()
    with pytest.raises(StoreError):
        remote.get_action("../escape")


# -- push and fetch ---------------------------------------------------------------------


def test_machine_b_fetches_what_machine_a_pushed(
    tmp_path: Path, make_remote: Make, raw: Any, url: str
) -> None:
    store_a, store_b = make_store(tmp_path, "a"), make_store(tmp_path, "b")
    entry = make_entry(store_a, tmp_path, 300_000, 5, 70_000)
    assert make_remote().push(entry, store_a)

    remote_b = make_remote()
    assert remote_b.has_action(entry.key)
    found = remote_b.get_action(entry.key)
    assert found == entry
    seen: list[tuple[int, int]] = []
    remote_b.fetch(found, store_b, progress=lambda done, total: seen.append((done, total)))
    assert store_b.get_action(entry.key) == entry
    for blob in entry.outputs:
        assert (
            store_b.blob_path(blob.sha256).read_bytes()
            == store_a.blob_path(blob.sha256).read_bytes()
        )
    assert seen[0] == (0, 370_005) and seen[-1] == (370_005, 370_005)
    assert remote_b.action_keys() == [entry.key]
    assert remote_b.blob_hashes() == sorted(b.sha256 for b in entry.outputs)


def test_push_twice_writes_nothing_the_second_time(
    tmp_path: Path, make_remote: Make, raw: Any, url: str
) -> None:
    store = make_store(tmp_path, "a")
    entry = make_entry(store, tmp_path, 1000)
    remote = make_remote()
    assert remote.push(entry, store) is True
    before = objects(raw, url)
    assert remote.push(entry, store) is False
    assert objects(raw, url) == before


def test_a_reroll_replaces_the_entry_and_keeps_both_complete(
    tmp_path: Path, make_remote: Make
) -> None:
    store = make_store(tmp_path, "a")
    first = make_entry(store, tmp_path, 100)
    remote = make_remote()
    remote.push(first, store)
    new_blob = add_blob(store, tmp_path, 120, "reroll")
    second = ActionEntry(first.key, (new_blob,), first.record, takes=(first.outputs,))
    assert remote.push(second, store)
    assert remote.get_action(first.key) == second
    assert set(remote.blob_hashes()) == {first.outputs[0].sha256, new_blob.sha256}


def test_fetch_skips_blobs_the_local_cache_has(tmp_path: Path, make_remote: Make) -> None:
    store = make_store(tmp_path, "a")
    entry = make_entry(store, tmp_path, 100, 200)
    remote = make_remote()
    remote.push(entry, store)
    assert remote.fetch_blobs(entry.outputs, store) == 0


def test_a_corrupt_remote_blob_is_reported_and_never_materialized(
    tmp_path: Path, make_remote: Make, raw: Any
) -> None:
    store_a, store_b = make_store(tmp_path, "a"), make_store(tmp_path, "b")
    entry = make_entry(store_a, tmp_path, 4000, 3000)
    make_remote().push(entry, store_a)
    bad = entry.outputs[1]
    tampered = bytearray(store_a.blob_path(bad.sha256).read_bytes())
    tampered[1234] ^= 0xFF
    raw.pipe_file(make_remote().blob_path(bad.sha256), bytes(tampered))

    remote_b = make_remote()
    found = remote_b.get_action(entry.key)
    assert found is not None
    with pytest.raises(CorruptBlob, match=bad.sha256[:12]) as err:
        remote_b.fetch(found, store_b)
    assert "nothing was materialized" in str(err.value)
    assert not store_b.has_blob(bad.sha256)
    assert store_b.get_action(entry.key) is None
    leftovers = [p for p in (store_b.blobs).rglob("*") if p.is_file()]
    assert all(p.name == entry.outputs[0].sha256 for p in leftovers)  # no temp file either


def test_a_blob_missing_from_the_remote_is_a_store_error(
    tmp_path: Path, make_remote: Make, raw: Any
) -> None:
    store_a, store_b = make_store(tmp_path, "a"), make_store(tmp_path, "b")
    entry = make_entry(store_a, tmp_path, 100)
    remote = make_remote()
    remote.push(entry, store_a)
    raw.rm_file(remote.blob_path(entry.outputs[0].sha256))
    with pytest.raises(StoreError, match="missing"):
        remote.fetch(entry, store_b)
    assert store_b.get_action(entry.key) is None


def test_push_refuses_an_entry_whose_blobs_are_not_cached(
    tmp_path: Path, make_remote: Make, raw: Any, url: str
) -> None:
    store = make_store(tmp_path, "a")
    entry = make_entry(store, tmp_path, 100)
    store.delete_blob(entry.outputs[0].sha256)
    with pytest.raises(StoreError, match="not cached"):
        make_remote().push(entry, store)
    assert objects(raw, url) == {}


# -- read-only --------------------------------------------------------------------------


def test_a_readonly_remote_is_never_written(
    tmp_path: Path, make_remote: Make, raw: Any, url: str, env: dict[str, str]
) -> None:
    store = make_store(tmp_path, "a")
    entry = make_entry(store, tmp_path, 100)
    make_remote().push(entry, store)
    before = objects(raw, url)

    ro = make_remote(environ={**env, "IMAGINEBUILD_REMOTE_READONLY": "1"})
    other = make_entry(store, tmp_path, 50)
    with pytest.raises(StoreError, match="read-only"):
        ro.push(other, store)
    with pytest.raises(StoreError, match="read-only"):
        ro.delete_action(entry.key)
    with pytest.raises(StoreError, match="read-only"):
        ro.delete_blob(entry.outputs[0].sha256)
    with pytest.raises(StoreError, match="read-only"):
        ro.gc(set(), dry_run=False, min_age=0)
    assert ro.acquire_lease(other.key, "me", 60)  # granted without writing a lease
    ro.release_lease(other.key, "me")
    assert ro.get_action(entry.key) == entry  # reading still works
    assert objects(raw, url) == before


# -- network faults ---------------------------------------------------------------------


@pytest.fixture
def proxy(s3: S3Server) -> Iterator[FaultProxy]:
    """A TCP proxy to the server that can cut links mid-request."""
    port = int(s3.endpoint.rsplit(":", 1)[1])
    fault = FaultProxy(port)
    yield fault
    fault.close()


def test_a_fault_mid_upload_leaves_no_entry_without_its_blobs(
    tmp_path: Path, make_remote: Make, proxy: FaultProxy, url: str
) -> None:
    store = make_store(tmp_path, "a")
    entry = make_entry(store, tmp_path, 40_000, 900_000, 60_000)
    flaky = make_remote(environ=s3_env(proxy.endpoint), policy=NO_RETRY, jobs=1)
    proxy.arm(300_000)  # enough for the first requests, not for the big blob's body
    with pytest.raises(StoreError) as err:
        flaky.push(entry, store)
    assert proxy.cuts >= 1
    assert SECRET_KEY not in str(err.value)

    direct = make_remote()
    assert not direct.has_action(entry.key)
    assert direct.get_action(entry.key) is None
    assert_no_entry_without_blobs(direct)

    proxy.heal()
    with pytest.raises(StoreError, match="unreachable"):
        flaky.push(entry, store)  # this process gave up on the remote for a while
    again = make_remote(environ=s3_env(proxy.endpoint), policy=NO_RETRY)  # a later run
    assert again.push(entry, store)
    assert direct.get_action(entry.key) == entry
    assert set(direct.blob_hashes()) == {b.sha256 for b in entry.outputs}


def test_transient_faults_are_retried_with_backoff(
    tmp_path: Path, make_remote: Make, proxy: FaultProxy
) -> None:
    store = make_store(tmp_path, "a")
    entry = make_entry(store, tmp_path, 200_000)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        proxy.heal()  # the network comes back while we wait

    flaky = make_remote(environ=s3_env(proxy.endpoint), policy=FAST, sleep=sleep)
    proxy.arm(1)
    assert flaky.push(entry, store)
    assert waits  # at least one retry happened
    assert make_remote().get_action(entry.key) == entry


def test_an_unreachable_remote_is_a_store_error(tmp_path: Path, url: str) -> None:
    remote = RemoteCache.from_config(url, False, s3_env("http://127.0.0.1:9"))
    assert remote is not None
    remote.transport.policy = NO_RETRY
    with pytest.raises(StoreError, match="cannot read"):
        remote.get_action("c" * 64)


def test_an_unreachable_remote_costs_the_retry_budget_once(url: str) -> None:
    now = [0.0]
    remote = RemoteCache.from_config(url, False, s3_env("http://127.0.0.1:9"))
    assert remote is not None
    transport = remote.transport
    waits: list[float] = []
    transport.policy = FAST
    transport._sleep = waits.append
    transport._clock = lambda: now[0]
    with pytest.raises(StoreError, match="cannot read"):
        remote.get_action("c" * 64)
    assert len(waits) == FAST.max_retries
    with pytest.raises(StoreError, match="unreachable"):
        remote.has_action("c" * 64)  # at once: no request, no wait
    assert len(waits) == FAST.max_retries
    now[0] += transport.cooldown
    with pytest.raises(StoreError, match="cannot inspect"):
        remote.has_action("c" * 64)  # tried again after the cooldown
    assert len(waits) == 2 * FAST.max_retries


def test_error_classification() -> None:
    class EndpointConnectionError(Exception):
        pass

    class ClientError(Exception):
        def __init__(self, code: str, status: int) -> None:
            super().__init__(code)
            self.response = {
                "Error": {"Code": code},
                "ResponseMetadata": {"HTTPStatusCode": status},
            }

    def wrapped(cause: Exception) -> OSError:
        err = OSError(22, "At least one of the pre-conditions you specified did not hold")
        err.__cause__ = cause
        return err

    assert is_transient(EndpointConnectionError("down"))
    assert is_transient(ConnectionResetError())
    assert is_transient(wrapped(ClientError("InternalError", 503)))
    assert not is_transient(wrapped(ClientError("AccessDenied", 403)))
    assert not is_transient(FileNotFoundError())
    assert is_precondition_failed(wrapped(ClientError("PreconditionFailed", 412)))
    assert not is_precondition_failed(wrapped(ClientError("InternalError", 500)))


# -- leases -----------------------------------------------------------------------------


def test_only_one_machine_gets_the_lease(make_remote: Make, s3: S3Server) -> None:
    key = "d" * 64
    a, b = make_remote(), make_remote()
    assert a.acquire_lease(key, "machine-a", 60)
    assert not b.acquire_lease(key, "machine-b", 60)
    assert b.lease_holder(key) == "machine-a"
    assert a.acquire_lease(key, "machine-a", 60)  # renewal by the holder
    b.release_lease(key, "machine-b")  # not b's: left alone
    assert not b.acquire_lease(key, "machine-b", 60)
    a.release_lease(key, "machine-a")
    assert b.acquire_lease(key, "machine-b", 60)


def test_concurrent_claims_grant_exactly_one(make_remote: Make) -> None:
    key = "e" * 64
    remotes = [make_remote() for _ in range(8)]
    results: dict[int, bool] = {}
    barrier = threading.Barrier(len(remotes))

    def claim(i: int) -> None:
        barrier.wait()
        results[i] = remotes[i].acquire_lease(key, f"m{i}", 60)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(remotes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results.values()) == 1


def test_an_expired_lease_is_taken_over_once(make_remote: Make) -> None:
    key = "f" * 64
    now = [1000.0]
    a = make_remote(clock=lambda: now[0])
    b = make_remote(clock=lambda: now[0])
    c = make_remote(clock=lambda: now[0])
    assert a.acquire_lease(key, "a", 30)
    now[0] += 31
    assert b.acquire_lease(key, "b", 30)
    assert not c.acquire_lease(key, "c", 30)
    assert a.lease_holder(key) == "b"


def test_a_waiting_machine_gets_the_entry_the_lease_holder_pushes(
    tmp_path: Path, make_remote: Make
) -> None:
    store_a, store_b = make_store(tmp_path, "a"), make_store(tmp_path, "b")
    entry = make_entry(store_a, tmp_path, 500)
    pushed = threading.Event()
    waits: list[float] = []

    async def wait_for_the_push(seconds: float) -> None:  # b's pause ends when a has pushed
        waits.append(seconds)
        await asyncio.to_thread(pushed.wait, STATE_DEADLINE_S)

    a, b = make_remote(), make_remote()
    assert asyncio.run(claim_or_wait(a, entry.key, "a", ttl=60, timeout=5)) is None  # a builds
    got: list[ActionEntry | None] = []
    wait = claim_or_wait(b, entry.key, "b", ttl=60, timeout=20, sleep=wait_for_the_push)
    waiter = threading.Thread(target=lambda: got.append(asyncio.run(wait)))
    waiter.start()
    wait_for_state(lambda: bool(waits) or not waiter.is_alive(), "b waiting on a's lease")
    assert waiter.is_alive() and got == [], got  # b is waiting, not building
    a.push(entry, store_a)
    a.release_lease(entry.key, "a")  # a holder lets go only after its push
    pushed.set()
    waiter.join(timeout=STATE_DEADLINE_S)
    assert got == [entry]
    assert waits == [LEASE_PACE.first_s]  # one pause, the shortest, then the entry
    b.fetch(entry, store_b)
    assert b.lease_holder(entry.key) is None


def test_a_wait_grows_its_pauses_to_the_cap_and_claims_again_at_the_reclaim_interval(
    make_remote: Make,
) -> None:
    key = "3" * 64
    now = [1000.0]
    pauses: list[float] = []

    async def pause(seconds: float) -> None:  # the machines' clock moves only when they wait
        pauses.append(seconds)
        now[0] += seconds

    a, b = make_remote(clock=lambda: now[0]), make_remote(clock=lambda: now[0])
    pace = LeasePace(first_s=0.1, max_s=0.4, growth=2.0, reclaim_s=2.0)
    assert a.acquire_lease(key, "a", ttl=1.5)  # and then a dies without pushing
    wait = claim_or_wait(b, key, "b", ttl=60, timeout=20, pace=pace, sleep=pause)
    assert asyncio.run(wait) is None  # b took the lease over at its first claim after 1.5 s
    assert pauses[:4] == [0.1, 0.2, 0.4, 0.4] and max(pauses) == 0.4
    assert 2.0 <= now[0] - 1000.0 < 2.4  # the reclaim interval, not the lease's end, set when
    assert b.lease_holder(key) == "b"


def test_a_waiting_machine_builds_soon_after_the_holder_lets_go_without_a_push(
    make_remote: Make,
) -> None:
    """The holder stopped (a cap, a failed call) and released its lease: the waiter sees
    the lease gone at its next look and builds, long before its reclaim interval."""
    key = "4" * 64
    now = [1000.0]
    a, b = make_remote(clock=lambda: now[0]), make_remote(clock=lambda: now[0])
    assert a.acquire_lease(key, "a", ttl=60)

    async def pause(seconds: float) -> None:
        now[0] += seconds
        if now[0] >= 1000.3:
            a.release_lease(key, "a")

    pace = LeasePace(first_s=0.1, max_s=0.1, reclaim_s=100.0)
    wait = claim_or_wait(b, key, "b", ttl=60, timeout=600, pace=pace, sleep=pause)
    assert asyncio.run(wait) is None  # b builds
    assert now[0] < 1000.45  # at its first look after the release, not at 1100
    assert b.lease_holder(key) == "b"


def test_a_waiting_machine_builds_when_the_holder_vanishes(make_remote: Make) -> None:
    key = "2" * 64
    now = [1000.0]

    async def pause(seconds: float) -> None:  # the machines' clock moves only when they wait
        now[0] += seconds

    a = make_remote(clock=lambda: now[0])
    b = make_remote(clock=lambda: now[0])
    c = make_remote(clock=lambda: now[0])
    pace = LeasePace(first_s=0.05, max_s=0.05, reclaim_s=0.05)
    assert a.acquire_lease(key, "a", ttl=0.5)  # and then a dies without pushing
    waits_out = claim_or_wait(b, key, "b", ttl=60, timeout=20, pace=pace, sleep=pause)
    assert asyncio.run(waits_out) is None
    assert 1000.5 <= now[0] < 1000.6  # b waited out a's lease, polling, then took it
    assert b.lease_holder(key) == "b"
    gives_up = claim_or_wait(c, key, "c", ttl=60, timeout=0.2, pace=pace, sleep=pause)
    assert asyncio.run(gives_up) is None  # c gives up after its timeout: builds
    assert b.lease_holder(key) == "b"


def test_waits_on_many_leases_hold_none_of_the_loops_worker_threads(
    tmp_path: Path, make_remote: Make
) -> None:
    """Eight waits on a loop with two worker threads: the holder's pushes, run on the same
    threads, still go through, and every wait ends with the pushed entry."""
    from concurrent.futures import ThreadPoolExecutor

    store = make_store(tmp_path, "a")
    entries = [make_entry(store, tmp_path, 100, seed=str(i)) for i in range(8)]
    a, b = make_remote(), make_remote()
    for entry in entries:
        assert a.acquire_lease(entry.key, "a", 60)

    async def scenario() -> list[ActionEntry | None]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=2))
        pushed, all_pausing = asyncio.Event(), asyncio.Event()
        pausing: set[str] = set()

        def pauser(key: str) -> Callable[[float], Awaitable[None]]:
            async def pause(_seconds: float) -> None:
                pausing.add(key)
                if len(pausing) == len(entries):
                    all_pausing.set()
                await pushed.wait()

            return pause

        waits = [
            asyncio.create_task(claim_or_wait(b, e.key, "b", ttl=60, timeout=60,
                                              sleep=pauser(e.key)))
            for e in entries
        ]  # fmt: skip
        await asyncio.wait_for(all_pausing.wait(), STATE_DEADLINE_S)  # each looked once
        for entry in entries:
            await asyncio.wait_for(asyncio.to_thread(a.push, entry, store), STATE_DEADLINE_S)
            await asyncio.wait_for(asyncio.to_thread(a.release_lease, entry.key, "a"), 60)
        pushed.set()
        return await asyncio.wait_for(asyncio.gather(*waits), STATE_DEADLINE_S)

    assert asyncio.run(scenario()) == entries


def test_leases_on_a_file_remote(tmp_path: Path) -> None:
    remote = RemoteCache.from_config(f"file://{tmp_path / 'remote'}", False, {})
    assert remote is not None and remote.supports_leases
    key = "1" * 64
    assert remote.acquire_lease(key, "a", 60)
    assert not remote.acquire_lease(key, "b", 60)
    remote.release_lease(key, "a")
    assert remote.acquire_lease(key, "b", 60)


# -- gc ---------------------------------------------------------------------------------


def test_gc_dry_run_first_then_entries_before_blobs(tmp_path: Path, make_remote: Make) -> None:
    store = make_store(tmp_path, "a")
    keep = make_entry(store, tmp_path, 100, seed="keep")
    drop = make_entry(store, tmp_path, 200, 300, seed="drop")
    remote = make_remote()
    remote.push(keep, store)
    remote.push(drop, store)

    fresh = remote.gc({keep.key})
    assert fresh.drop_keys == (drop.key,) and fresh.drop_blobs == ()  # blobs too young

    plan = remote.gc({keep.key}, min_age=0)
    assert plan.dry_run and plan.drop_keys == (drop.key,)
    assert set(plan.drop_blobs) == {b.sha256 for b in drop.outputs}
    assert plan.freed_bytes == 500
    assert remote.has_action(drop.key)  # a dry run deletes nothing

    done = remote.gc({keep.key}, dry_run=False, min_age=0)
    assert done.drop_keys == plan.drop_keys and not done.dry_run
    assert remote.action_keys() == [keep.key]
    assert remote.blob_hashes() == [keep.outputs[0].sha256]


# -- other backends ---------------------------------------------------------------------


def test_a_file_remote_works_the_same(tmp_path: Path) -> None:
    remote = RemoteCache.from_config(f"file://{tmp_path / 'shared'}", False, {})
    assert remote is not None
    store_a, store_b = make_store(tmp_path, "a"), make_store(tmp_path, "b")
    entry = make_entry(store_a, tmp_path, 5000, 10)
    assert remote.push(entry, store_a)
    assert not remote.push(entry, store_a)
    remote.fetch(remote.get_action(entry.key) or entry, store_b)
    assert store_b.get_action(entry.key) == entry
    leftovers = [p.name for p in (tmp_path / "shared").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_transfers_run_concurrently_within_the_bound(tmp_path: Path) -> None:
    from fsspec.implementations.local import LocalFileSystem

    class SlowLocal(LocalFileSystem):  # a real local filesystem whose opens take a while
        active = 0
        peak = 0
        lock = threading.Lock()

        def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
            with SlowLocal.lock:
                SlowLocal.active += 1
                SlowLocal.peak = max(SlowLocal.peak, SlowLocal.active)
            try:  # hold every open until three ran at once: a serial fetch never gets there
                wait_for_state(lambda: SlowLocal.peak >= 3, "three transfers at once")
                return super().open(path, mode, **kwargs)
            finally:
                with SlowLocal.lock:
                    SlowLocal.active -= 1

    shared = tmp_path / "shared"
    plain = RemoteCache.from_config(f"file://{shared}", False, {})
    assert plain is not None
    store_a, store_b = make_store(tmp_path, "a"), make_store(tmp_path, "b")
    entry = make_entry(store_a, tmp_path, *([1000] * 12))
    plain.push(entry, store_a)

    bounded = RemoteCache(SlowLocal(skip_instance_cache=True), str(shared), url="file://x", jobs=3)
    bounded.fetch(entry, store_b)
    assert store_b.get_action(entry.key) == entry
    assert SlowLocal.peak == 3  # never more than the bound


# -- the engine: machine A builds, machine B restores -----------------------------------


def machine(clean_env: dict[str, str], tmp_path: Path, name: str, **extra: str) -> dict[str, str]:
    """The environment of one machine: its own local cache, the shared remote."""
    return {**clean_env, "IMAGINEBUILD_CACHE_DIR": str(tmp_path / f"cache-{name}"), **extra}


def test_machine_b_makes_zero_provider_calls(
    make_project: Callable[..., Path],
    clean_env: dict[str, str],
    env: dict[str, str],
    url: str,
    tmp_path: Path,
) -> None:
    from conftest import called, output_hashes, states

    from imaginebuild.events import RecordingReporter
    from imaginebuild.project import load

    shared = {**env, "IMAGINEBUILD_REMOTE": url}
    folder_a = make_project("chain", "machine-a")
    built = load(
        folder_a / "mediafile.yaml",
        env=machine(clean_env, tmp_path, "a", **shared),
        reporter=RecordingReporter(),
    ).run()
    assert built.exit_code == 0 and called(built) == {"base", "inked", "framed", "other"}

    folder_b = make_project("chain", "machine-b")  # a fresh clone: no lockfile, no outputs
    restored = load(
        folder_b / "mediafile.yaml",
        env=machine(clean_env, tmp_path, "b", **shared),
        reporter=RecordingReporter(),
    ).run()
    assert restored.exit_code == 0
    assert called(restored) == set()
    assert set(states(restored).values()) == {"restored"}
    assert output_hashes(folder_b) == output_hashes(folder_a)


def test_a_readonly_remote_is_read_but_not_written_by_a_run(
    make_project: Callable[..., Path],
    clean_env: dict[str, str],
    env: dict[str, str],
    url: str,
    raw: Any,
    tmp_path: Path,
) -> None:
    from conftest import called, edit_yaml

    from imaginebuild.events import RecordingReporter
    from imaginebuild.project import load

    shared = {**env, "IMAGINEBUILD_REMOTE": url}
    main = make_project("chain", "main-build")
    load(
        main / "mediafile.yaml",
        env=machine(clean_env, tmp_path, "main", **shared),
        reporter=RecordingReporter(),
    ).run()
    before = objects(raw, url)
    assert before  # the main build pushed

    pr = make_project("chain", "pr-build")
    edit_yaml(pr / "mediafile.yaml", "A lighthouse at dawn", "A lighthouse at dusk")
    ro = {**shared, "IMAGINEBUILD_REMOTE_READONLY": "1"}
    result = load(
        pr / "mediafile.yaml",
        env=machine(clean_env, tmp_path, "pr", **ro),
        reporter=RecordingReporter(),
    ).run()
    assert result.exit_code == 0
    assert called(result) == {"other"}  # the rest came from the remote
    assert objects(raw, url) == before


def test_the_server_enforces_what_the_remote_relies_on(s3: S3Server, raw: Any, url: str) -> None:
    """The fixture server is S3-like where it matters: 412 on a conditional create."""
    path = f"{url.removeprefix('s3://')}/probe"
    raw.pipe_file(path, b"1", IfNoneMatch="*")
    with pytest.raises(OSError) as err:
        raw.pipe_file(path, b"2", IfNoneMatch="*")
    assert is_precondition_failed(err.value)


def test_two_machines_building_at_once_pay_once_per_key(
    make_project: Callable[..., Path],
    clean_env: dict[str, str],
    env: dict[str, str],
    url: str,
    tmp_path: Path,
) -> None:
    from conftest import called

    from imaginebuild.engine.results import CommandResult
    from imaginebuild.events import RecordingReporter
    from imaginebuild.project import load

    shared = {**env, "IMAGINEBUILD_REMOTE": url}
    folders = [make_project("chain", f"racer-{i}") for i in range(2)]
    results: dict[int, CommandResult] = {}
    barrier = threading.Barrier(2)

    def build(i: int) -> None:
        project = load(
            folders[i] / "mediafile.yaml",
            env=machine(clean_env, tmp_path, f"racer-{i}", **shared),
            reporter=RecordingReporter(),
        )
        barrier.wait()
        results[i] = project.run()

    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(r.exit_code == 0 for r in results.values())
    calls = [name for r in results.values() for name in called(r)]
    assert sorted(calls) == ["base", "framed", "inked", "other"]  # each key paid once
