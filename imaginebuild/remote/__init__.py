"""The remote cache shared by machines: an object store reached through fsspec.

    cache  the remote's layout: blobs and action entries, read and written safely
    backend the object store a URL names, opened with the environment's options
    sync   transfers with retries and verification
    link   how a run uses the remote: look up before a call, push after it
    leases what a build lease says;  leasewait  how a run waits on another's lease

Layer 2, beside `providers`.
May import: the shared vocabulary, `mediafile` and `store`.
"""
