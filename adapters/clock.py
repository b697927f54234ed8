"""The system clock: the one :class:`core.ports.Clock` every process is given."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """Reads the operating system's clock, as an aware UTC time.

    The composition root (``cli.composition``) makes one per process and passes it to
    every service and activity that reads the time through the ``Clock`` port.
    """

    def now(self) -> datetime:
        return datetime.now(UTC)
