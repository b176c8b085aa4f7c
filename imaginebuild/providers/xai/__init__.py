"""The `xai` provider: xAI's Grok Imagine REST API over httpx.

    provider  the Provider implementation: submit, poll, download, record
    bodies    the request body of each kind
    http      the HTTP client, retries and error mapping
    download  streamed downloads of results

May import: the shared vocabulary, `providers.base` and `store.journal` (in-flight jobs).
"""
