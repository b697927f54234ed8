"""Activities of the token-signing key rotation (``workflows.keys``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio import activity

from activities.contracts import (
    RETIRE_SIGNING_KEYS,
    ROTATE_SIGNING_KEY,
    KeyRotationResult,
    RetireKeysInput,
    RotateKeyInput,
)
from core.key_rotation import KeyRotation
from storage.db.engine import Engines
from storage.db.metadata import SqlMetadata
from storage.db.signing_keys import SqlSigningKeyStore


class KeyActivities:
    """Rotate and retire signing keys.

    Idempotent: the rotation's key is named after its scheduled time, so a retry adds
    nothing; retiring recomputes from the stored keys and deletes only what is due.
    """

    def __init__(self, engines: Engines) -> None:
        self._rotation = KeyRotation(SqlSigningKeyStore(SqlMetadata(engines)))

    @activity.defn(name=ROTATE_SIGNING_KEY)
    def rotate_signing_key(self, params: RotateKeyInput) -> KeyRotationResult:
        """Add the key for ``params.scheduled_at`` unless it exists."""
        activity.heartbeat()
        kid, added = self._rotation.rotate(datetime.fromisoformat(params.scheduled_at))
        return KeyRotationResult(kid=kid, added=added, retired=[])

    @activity.defn(name=RETIRE_SIGNING_KEYS)
    def retire_signing_keys(self, params: RetireKeysInput) -> list[str]:
        """Delete keys no unexpired token can carry; returns their ``kid``s."""
        activity.heartbeat()
        grace = timedelta(seconds=params.grace_seconds)
        return self._rotation.retire(datetime.now(UTC), grace)
