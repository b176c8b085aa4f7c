"""Test helpers shipped with imaginebuild: a fake xAI server for rehearsals without a key.

    fake_xai       the fake server: real HTTP on 127.0.0.1, its lifecycle and command line
    fake_state     what it knows and has been told: settings, scripted faults, its records
    fake_records   those records: requests received, bills, video jobs, image orders, files
    fake_ratelimit its per-model token buckets (429 above a rate)
    fake_handler   how it takes a request: routing, logging, auth, early faults
    fake_routes    what its media endpoints answer: images, video jobs, polls, downloads
    fake_wire      how answers go out: status line, error body, body faults, resets
    fake_faults    what it can be scripted with: routes, faults, the price table
    fake_requests  what it checks in a request body, as the API does
    fake_spec      the API's enums and sizes, from xAI's own spec
    fake_media     real PNG, JPEG, WebP and H.264 MP4 made with Pillow and PyAV

Layer 1. May import: the shared vocabulary only. Nothing in the package imports it:
tests and rehearsals do.
"""
