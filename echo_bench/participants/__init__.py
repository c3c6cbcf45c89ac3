"""The two programmatic participants of `echo-bench converse`, one module per platform.

Each platform module exposes `join(customer, support, ...)`, an async context manager
that brings both speakers into one room, publishes each one's `Voice`, records what each
hears from the other into its `heard`, and yields a `Room`; leaving the block leaves the
room (and deletes it where the platform keeps rooms).
"""

from echo_bench.participants.base import ConverseError, Room, Speaker, pump, scrub

__all__ = ["ConverseError", "Room", "Speaker", "pump", "scrub"]
