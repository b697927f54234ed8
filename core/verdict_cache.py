"""Recent pull-gate verdicts, kept a bounded time and number (one process's requests).

A gate that runs before a manifest is served (the vulnerability and the trust pull
policies) asks its store about the image on every pull; the same verdict is reused for
``ttl`` seconds, so a hot image costs one read per period instead of one per pull. At
most ``entries`` verdicts are kept: the oldest stored goes first. A verdict is never
older than ``ttl`` when it is used; ``ttl <= 0`` or ``entries == 0`` keeps nothing.
Thread-safe for the gates' use (dictionary operations under the GIL; a lost race
stores the same verdict twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class VerdictCache(Generic[K, V]):
    """Verdicts by key, each valid ``ttl`` seconds of ``monotonic`` after it was stored."""

    def __init__(
        self, ttl: float, entries: int, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl, self._entries, self._monotonic = ttl, entries, monotonic
        self._kept: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> tuple[V] | None:
        """``(verdict,)`` when a fresh one is kept (the verdict itself may be ``None``)."""
        found = self._kept.get(key)
        if found is None or found[0] <= self._monotonic():
            return None
        return (found[1],)

    def put(self, key: K, verdict: V) -> None:
        """Keep ``verdict`` for ``ttl`` seconds (dropping the oldest when full)."""
        if self._entries <= 0 or self._ttl <= 0:
            return
        while len(self._kept) >= self._entries:
            self._kept.pop(next(iter(self._kept)), None)
        self._kept[key] = (self._monotonic() + self._ttl, verdict)

    def clear(self) -> None:
        """Forget every verdict (the rules they were reached under changed)."""
        self._kept = {}
