"""This machine's disk: the content-addressed cache and the project's state files.

    cache       blobs and the action cache, atomic writes, materializing
    takes       every take of each asset, indexed beside the cache
    hashing     file digests and the stat cache
    lockfile    mediafile.lock, read and written atomically
    history     what committed versions of a lockfile reference (git)
    collect     garbage collection of the cache against those references
    orphans     outputs of assets the mediafile no longer declares
    ledger      the cost ledger and provenance records
    journal     in-flight provider jobs, for resuming
    settled     the last up-to-date verdict and what it rested on
    failures    the last failure per asset
    projectlock one run per project at a time
    state       the project's `.imaginebuild/` state as one object (paths: `layout`)
    materialize blobs put in place as outputs (signed if configured)
    credentials content credentials (C2PA) on materialized outputs

Layer 1, beside `mediafile`: files in, files out; it never decides what to build.
May import: the shared vocabulary only. (The settled fast path still builds engine
results; tests/test_layers.py lists it until it moves.)
"""
