"""Failed-login throttling.

Failed-login throttling: too many failures for a username or a client address in a
sliding window answer ``429`` with ``Retry-After`` until the window has moved on.

The counts live in the process (each API process throttles on its own).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from core.errors import OCIErrorCode, RegistryError

_MAX_KEYS = 100_000


class LoginLimiter:
    def __init__(self, max_failures: int, window_seconds: int) -> None:
        self._max, self._window = max_failures, float(window_seconds)
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        entries = self._failures.setdefault(key, deque())
        while entries and entries[0] <= now - self._window:
            entries.popleft()
        return entries

    def check(self, *keys: str, factor: int = 1) -> None:
        """Raise ``TOOMANYREQUESTS`` (429, ``Retry-After``) if any key is over the limit.

        ``factor`` multiplies the limit (for keys that aggregate many callers).
        """
        now = time.monotonic()
        with self._lock:
            waits = [
                entries[0] + self._window - now
                for entries in (self._recent(key, now) for key in keys)
                if len(entries) >= self._max * factor
            ]
        if waits:
            retry = str(max(1, math.ceil(max(waits))))
            raise RegistryError(
                OCIErrorCode.TOOMANYREQUESTS, "too many failed logins"
            ).with_headers(**{"Retry-After": retry})

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)
            if len(self._failures) > _MAX_KEYS:
                self._failures.clear()
