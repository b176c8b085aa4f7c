"""The remote cache shared by machines: an object store reached through fsspec.

    cache  the remote's layout: blobs and action entries, read and written safely
    entries the remote form of an action entry, checked on read, and the objects' names
    leases  build leases as data: who holds one, and when it really ends
    leasewait how a run waits on another machine's lease: soon after it ends, no thread held
    backend the object store a URL names, opened with the environment's options
    sync   transfers with retries and verification
    link   how a run uses the remote: look up before a call, push after it

Layer 2, beside `providers`.
May import: the shared vocabulary, `mediafile` and `store`.
"""
