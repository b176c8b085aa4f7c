"""The team coordinator: one rate budget and one spend cap for every runner of a team.

`base` holds the interface and its typed values, `embedded` the SQLite backend of
one machine (the default), `redisteam` the Redis backend of many machines (its
libraries imported only when configured), `config` which one the environment
names, and `session` what one run does with it.

Layer 2, beside `providers` and `remote`: it knows budgets and rate windows, not
assets or runs.
May import: the shared vocabulary, `mediafile` and `store` (it uses neither).
"""

from imaginebuild.coordinator.base import (
    Coordinator,
    RateLimit,
    Reservation,
    ReservationRequest,
    RunnerId,
    SlotAttempt,
    TeamCaps,
    TeamStatus,
)
from imaginebuild.coordinator.config import open_coordinator

__all__ = [
    "Coordinator",
    "RateLimit",
    "Reservation",
    "ReservationRequest",
    "RunnerId",
    "SlotAttempt",
    "TeamCaps",
    "TeamStatus",
    "open_coordinator",
]
