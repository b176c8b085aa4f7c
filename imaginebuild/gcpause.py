"""Pausing Python's cyclic garbage collector while the front end builds large data.

Loading a mediafile of 10,000 assets allocates hundreds of thousands of small
containers; each allocation burst triggers collections that walk every object
made so far, so the collector cost grows with the square of the file (about
half of a 10,000-asset `plan`). These phases make no reference cycles worth
collecting, so the collector waits until they finish and then runs as usual.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Run the block with the cyclic collector off (as it was afterwards)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
