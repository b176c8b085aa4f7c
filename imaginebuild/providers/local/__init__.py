"""Offline rendering for the local provider: sizes, seeded drawing, H.264 encoding.

    geometry  sizes per resolution and aspect ratio (pure)
    seed      deterministic numbers from an action key (pure, hashlib)
    images    Pillow compositions, edits and PNG bytes
    motion    the frames of each video kind, as Pillow images
    video     PyAV: YUV conversion, H.264 encoding, decoding, lossless joins
    kinds     one renderer per kind: a request → files in its workdir

Pillow and PyAV are imported only by `images`, `motion`, `video` and `kinds`, so importing
this package costs nothing.
"""
