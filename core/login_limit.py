"""Failed-login throttling, shared by every API process through the database.

Too many failures for a key (a username with a client address, or a username from
anywhere at a higher limit) within a window lock the key for one window: attempts
then answer ``429`` with ``Retry-After`` until the lock ends. A successful login
clears its key. The rule is :class:`LoginPolicy` (pure); the counters live behind
:class:`LoginAttemptStore`, so all processes and replicas count together.

Keys are stored as SHA-256 digests: the table holds no usernames or addresses.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol

from core.errors import OCIErrorCode, RegistryError
from core.ports import Clock


@dataclass(frozen=True, slots=True)
class LoginAttempts:
    """The failures counted for one key.

    Attributes:
        failures: Failures in the current window.
        window_start: When the current window began.
        locked_until: Attempts are refused until then (``None``: not locked).
    """

    failures: int
    window_start: datetime
    locked_until: datetime | None = None


class LoginAttemptStore(Protocol):
    """Where failure counts live; shared by every process that authenticates."""

    def attempts(self, keys: Sequence[str]) -> dict[str, LoginAttempts]:
        """The counts of those ``keys`` that have any."""
        ...

    def record_failure(
        self,
        key: str,
        update: Callable[[LoginAttempts | None], LoginAttempts],
        stale_before: datetime,
    ) -> LoginAttempts:
        """Replace the count of ``key`` by ``update(current)``, atomically.

        Concurrent failures for one key from any process are serialised, so none is
        lost. Counts whose window started before ``stale_before`` and that are not
        locked any more may be dropped on the way.
        """
        ...

    def clear(self, keys: Sequence[str]) -> None:
        """Forget the counts of ``keys`` (missing keys are fine)."""
        ...


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """``max_failures`` (times a factor) failures within ``window`` lock a key for ``window``."""

    max_failures: int
    window: timedelta

    def retry_after(self, attempts: LoginAttempts, now: datetime) -> int | None:
        """Whole seconds until the key may try again; ``None`` if it may try now."""
        if attempts.locked_until is None or attempts.locked_until <= now:
            return None
        return max(1, math.ceil((attempts.locked_until - now).total_seconds()))

    def after_failure(
        self, attempts: LoginAttempts | None, now: datetime, factor: int = 1
    ) -> LoginAttempts:
        """The count after one more failure at ``now``."""
        locked = attempts.locked_until if attempts is not None else None
        if locked is not None and locked <= now:
            locked = None
        if attempts is None or (locked is None and now >= attempts.window_start + self.window):
            failures, start = 1, now
        else:
            failures, start = attempts.failures + 1, attempts.window_start
        if locked is None and failures >= self.max_failures * factor:
            locked = now + self.window
        return LoginAttempts(failures, start, locked)


def hashed_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class LoginLimiter:
    """Applies :class:`LoginPolicy` to the counts in a :class:`LoginAttemptStore`."""

    def __init__(self, store: LoginAttemptStore, policy: LoginPolicy, clock: Clock) -> None:
        self._store, self._policy, self._clock = store, policy, clock

    def check(self, *keys: str) -> None:
        """Raise ``TOOMANYREQUESTS`` (429, ``Retry-After``) if any key is locked."""
        now = self._clock.now()
        found = self._store.attempts([hashed_key(key) for key in keys])
        waits = [
            wait
            for attempts in found.values()
            if (wait := self._policy.retry_after(attempts, now)) is not None
        ]
        if waits:
            raise RegistryError(
                OCIErrorCode.TOOMANYREQUESTS, "too many failed logins"
            ).with_headers(**{"Retry-After": str(max(waits))})

    def failed(self, *keys: str, factor: int = 1) -> None:
        """Count a failure for each key; ``factor`` multiplies the limit of these keys."""
        now = self._clock.now()
        update = partial(self._policy.after_failure, now=now, factor=factor)
        for key in keys:
            self._store.record_failure(hashed_key(key), update, now - self._policy.window)

    def succeeded(self, *keys: str) -> None:
        """Clear the counts of ``keys`` (a write only when there is something to clear)."""
        hashed = [hashed_key(key) for key in keys]
        if self._store.attempts(hashed):
            self._store.clear(hashed)
