"""The `xai` provider: xAI's Grok Imagine REST API over httpx.

    provider  the Provider implementation: submit, poll, download, record
    bodies    the request body of each kind
    answers   what the API's answers mean (status, URLs, bills)
    http      the HTTP client, retries by method and error mapping
    pacing    token buckets within xAI's per-model rate limits
    download  streamed downloads of results

May import: the shared vocabulary, `providers.base` and `store.journal` (in-flight jobs).
"""
