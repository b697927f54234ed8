"""Request ids the registry makes for requests that bring none of their own.

An id is 32 hex digits: 16 drawn at random once per process (again in a forked child, so
server workers forked from one parent never share them) and a 16-digit counter. Ids are
unique across the processes of an installation and across restarts (a collision needs
two processes to draw the same 64-bit prefix), cost one counter step instead of a
random draw per request, and say nothing secret: they name a request in logs and the
audit log, never authorise anything.
"""

from __future__ import annotations

import itertools
import os


class _Ids:
    def __init__(self) -> None:
        self.redraw()

    def redraw(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_IDS = _Ids()
os.register_at_fork(after_in_child=_IDS.redraw)


def new_request_id() -> str:
    """A fresh request id (thread-safe: the counter step is atomic)."""
    return _IDS.next()
