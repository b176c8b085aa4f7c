"""The `xai` provider: xAI's Grok Imagine REST API over httpx.

    provider  the Provider implementation: synchronous images, submitting jobs, billing
    jobs      journaled jobs after their POST: poll, journal the result URLs, fetch
    results   an answer's outputs into the workdir (inline base64 or result URLs)
    bodies    the request body of each kind
    answers   what the API's answers mean (status, URLs, bills)
    http      the HTTP client, retries by method and error mapping
    pacing    token buckets within xAI's per-model rate limits
    download  streamed downloads of results

May import: the shared vocabulary, `providers.base` and `store.journal` (in-flight jobs).
"""
