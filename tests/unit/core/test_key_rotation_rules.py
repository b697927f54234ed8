"""Key rotation rules: one key per scheduled time, retirement only after the grace period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from core.key_rotation import KeyRotation, StoredKey, retirable, retire_grace, rotation_kid

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class MemoryKeys:
    def __init__(self, *keys: StoredKey) -> None:
        self.keys = list(keys)

    def stored_keys(self) -> list[StoredKey]:
        return sorted(self.keys, key=lambda key: key.created_at)

    def add_key(self, kid: str, private_pem: str) -> bool:
        del private_pem
        if any(key.kid == kid for key in self.keys):
            return False
        self.keys.append(StoredKey(kid, datetime.now(UTC)))
        return True

    def remove_keys(self, kids: Sequence[str]) -> int:
        before = len(self.keys)
        self.keys = [key for key in self.keys if key.kid not in kids]
        return before - len(self.keys)


def test_rotating_twice_for_one_scheduled_time_adds_one_key() -> None:
    store = MemoryKeys(StoredKey("first", T0))
    rotation = KeyRotation(store)
    assert rotation.rotate(T0) == (rotation_kid(T0), True)
    assert rotation.rotate(T0) == (rotation_kid(T0), False)
    assert [key.kid for key in store.stored_keys()] == ["first", rotation_kid(T0)]
    assert rotation.rotate(T0 + timedelta(days=30))[1]


def test_a_replaced_key_stays_for_the_grace_period() -> None:
    grace = retire_grace(300)
    assert grace == timedelta(seconds=90 + 300 + 60)  # activation + token life + skew
    keys = [StoredKey("old", T0), StoredKey("new", T0 + timedelta(days=30))]
    assert retirable(keys, T0 + timedelta(days=30) + grace - timedelta(seconds=1), grace) == []
    assert retirable(keys, T0 + timedelta(days=30) + grace, grace) == ["old"]


def test_the_newest_key_is_never_retired() -> None:
    keys = [StoredKey("only", T0)]
    assert retirable(keys, T0 + timedelta(days=3650), timedelta(0)) == []


def test_revoking_leaves_only_the_new_key_whatever_its_age() -> None:
    store = MemoryKeys(StoredKey("leaked", T0), StoredKey("older", T0 - timedelta(days=1)))
    rotation = KeyRotation(store)
    kid, added = rotation.rotate(T0 + timedelta(seconds=1))
    assert added
    assert sorted(rotation.revoke_all_but(kid)) == ["leaked", "older"]
    assert [key.kid for key in store.stored_keys()] == [kid]
    assert rotation.revoke_all_but(kid) == []
