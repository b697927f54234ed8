"""Scheduled rotation of the registry token-signing key, and retiring old keys.

A rotation adds one key whose ``kid`` is derived from the schedule's time, so running
it again for the same time (a retry, a duplicate start) adds nothing. A new key
signs only once every API process has had time to load it; a key is retired only when
the key after it has been signing for longer than a token lives plus the allowed clock
skew: every token it signed has expired by then. The newest key is never retired.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from core.tokens import CLOCK_SKEW_SECONDS, KEY_ACTIVATION_SECONDS, SigningKey


@dataclass(frozen=True, slots=True)
class StoredKey:
    kid: str
    created_at: datetime


class SigningKeyStore(Protocol):
    """The installation's token-signing keys."""

    def stored_keys(self) -> list[StoredKey]:
        """Every key, oldest first."""
        ...

    def add_key(self, kid: str, private_pem: str) -> bool:
        """Add a key unless ``kid`` exists; True if this call added it."""
        ...

    def remove_keys(self, kids: Sequence[str]) -> int:
        """Delete those keys; returns how many went."""
        ...


def retire_grace(token_ttl_seconds: int) -> timedelta:
    """How long a replaced key stays after its successor was added.

    The successor starts signing :data:`KEY_ACTIVATION_SECONDS` after it was added; the
    old key's last tokens then live one token lifetime more, plus the clock skew.
    """
    return timedelta(seconds=KEY_ACTIVATION_SECONDS + token_ttl_seconds + CLOCK_SKEW_SECONDS)


def rotation_kid(scheduled_at: datetime) -> str:
    """The ``kid`` of the key a rotation scheduled at ``scheduled_at`` adds."""
    return "rot-" + scheduled_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def retirable(keys: Sequence[StoredKey], now: datetime, grace: timedelta) -> list[str]:
    """Keys whose successor was added more than ``grace`` before ``now``."""
    ordered = sorted(keys, key=lambda key: key.created_at)
    return [
        key.kid
        for key, successor in itertools.pairwise(ordered)
        if successor.created_at + grace <= now
    ]


class KeyRotation:
    """Rotates and retires signing keys in a :class:`SigningKeyStore`."""

    def __init__(self, store: SigningKeyStore) -> None:
        self._store = store

    def rotate(self, scheduled_at: datetime) -> tuple[str, bool]:
        """Add the key of the rotation scheduled at ``scheduled_at`` (once).

        Returns:
            The key's ``kid`` and whether this call added it.
        """
        kid = rotation_kid(scheduled_at)
        if any(key.kid == kid for key in self._store.stored_keys()):
            return kid, False
        return kid, self._store.add_key(kid, SigningKey.generate().to_pem())

    def retire(self, now: datetime, grace: timedelta) -> list[str]:
        """Delete the keys that no unexpired token can carry any more."""
        old = retirable(self._store.stored_keys(), now, grace)
        if old:
            self._store.remove_keys(old)
        return old

    def revoke_all_but(self, kid: str) -> list[str]:
        """Delete every key except ``kid`` now (a leaked key); returns the deleted kids.

        Tokens the deleted keys signed are refused once a process has reloaded its keys;
        with one key left, that key signs at once (no activation delay applies).
        """
        old = [key.kid for key in self._store.stored_keys() if key.kid != kid]
        if old:
            self._store.remove_keys(old)
        return old
