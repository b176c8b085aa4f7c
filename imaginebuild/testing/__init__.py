"""Test helpers shipped with imaginebuild: a fake xAI server for rehearsals without a key.

    fake_xai     the fake server: real HTTP on 127.0.0.1, scripted faults, what it received
    fake_faults  what it can be scripted with: routes, faults, the price table
    fake_requests what it checks in a request body, as the API does
    fake_media   real PNG, JPEG, WebP and H.264 MP4 made with Pillow and PyAV

Layer 1. May import: the shared vocabulary only. Nothing in the package imports it:
tests and rehearsals do.
"""
