"""Each project's promotion signing key, sealed at rest (``core.promotion_signing``).

Each key also has a notation certificate (``core.notation_signing``): made again from
the private key whenever it is asked for (it is deterministic), and stored with the key's
public half when a rotation retires the key.

The key is made on the first signed promotion into the project, under the project's row
lock, so two concurrent first promotions store one key. A rotation (:meth:`rotate`, a
project administrator's call) makes a new active key under the same lock; the keys it
replaces keep their public halves (listed by :meth:`keys`, for ``cosign verify --key``),
their private halves are dropped: nothing signs with them again, and no signature made
with them is touched, so each still verifies. The private key is only ever
stored sealed under the master key. After a master key rotation (a new key first in
``secrets.master_keys``, the old one kept) the next use re-seals it under the new master
key without changing it, so every earlier signature stays verifiable with the exported
public key; the old master key may be dropped once every project's key was re-sealed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from core.notation_signing import certificate_pem
from core.ports import Clock, Metadata
from core.promotion_signing import (
    SIGNING_KEY_KIND,
    StoredKey,
    fingerprint,
    new_private_key,
    sealing_context,
)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """One key of a project as listed: the active one or one a rotation retired."""

    version: int
    public_pem: str
    fingerprint: str
    active: bool
    created_at: str
    retired_at: str | None
    #: Its notation certificate (PEM); ``None`` for a key retired before those existed.
    certificate_pem: str | None = None


class Sealer(Protocol):
    """``core.sealing.SecretBox``'s two operations."""

    def seal(self, plaintext: bytes, context: str) -> str: ...
    def open(self, sealed: str, context: str) -> bytes: ...
    def needs_reseal(self, sealed: str) -> bool: ...


class PromotionKeys:
    """Read or make a project's signing key."""

    def __init__(self, metadata: Metadata, box: Callable[[], Sealer], clock: Clock) -> None:
        """``box`` makes the sealer when a key is first needed (it reads the master keys)."""
        self._metadata = metadata
        self._make_box = box
        self._sealer: Sealer | None = None
        self._clock = clock

    @property
    def _box(self) -> Sealer:
        if self._sealer is None:
            self._sealer = self._make_box()
        return self._sealer

    def public_pem(self, project_id: int) -> str | None:
        """The project's public key (PEM), ``None`` before its first signed promotion."""
        with self._metadata.read() as session:
            body = session.policies.get(project_id, SIGNING_KEY_KIND)
        return None if body is None else StoredKey.load(body).public_pem

    def ensure(self, project_id: int) -> tuple[bytes, str]:
        """(private key DER, public PEM) of the project, made and stored if missing."""
        with self._metadata.read() as session:
            body = session.policies.get(project_id, SIGNING_KEY_KIND)
        if body is None:
            with self._metadata.write() as session:
                session.projects.lock(project_id)
                body = session.policies.get(project_id, SIGNING_KEY_KIND)
                if body is None:
                    private, public = new_private_key()
                    sealed = self._box.seal(private, sealing_context(project_id))
                    now = self._clock.now()
                    body = StoredKey(sealed, public, created_at=now.isoformat()).dump()
                    session.policies.set(project_id, SIGNING_KEY_KIND, body, now)
                    session.commit()
        stored = StoredKey.load(body)
        context = sealing_context(project_id)
        private = self._box.open(stored.sealed, context)
        if self._box.needs_reseal(stored.sealed):
            # NOTE: the master key was rotated: the same signing key, sealed anew.
            with self._metadata.write() as session:
                session.projects.lock(project_id)
                current = session.policies.get(project_id, SIGNING_KEY_KIND)
                if current is None or StoredKey.load(current).sealed != stored.sealed:
                    return private, stored.public_pem  # rotated meanwhile: leave it
                resealed = replace(stored, sealed=self._box.seal(private, context))
                session.policies.set(
                    project_id, SIGNING_KEY_KIND, resealed.dump(), self._clock.now()
                )
                session.commit()
        return private, stored.public_pem

    def certificate(self, project_id: int) -> str | None:
        """The active key's notation certificate (PEM), ``None`` before the first key."""
        with self._metadata.read() as session:
            body = session.policies.get(project_id, SIGNING_KEY_KIND)
        if body is None:
            return None
        return self._certificate(project_id, StoredKey.load(body))

    def _certificate(self, project_id: int, stored: StoredKey) -> str:
        private = self._box.open(stored.sealed, sealing_context(project_id))
        return certificate_pem(private, project_id, stored.version, stored.created_at)

    def rotate(self, project_id: int) -> KeyInfo:
        """Make a new active key (the first one when the project has none); answer it."""
        private, public = new_private_key()
        sealed = self._box.seal(private, sealing_context(project_id))
        now = self._clock.now()
        with self._metadata.write() as session:
            session.projects.lock(project_id)
            body = session.policies.get(project_id, SIGNING_KEY_KIND)
            if body is None:
                stored = StoredKey(sealed, public, created_at=now.isoformat())
            else:
                old = StoredKey.load(body)
                outgoing = self._certificate(project_id, old)
                stored = old.rotated(sealed, public, now.isoformat(), outgoing)
            session.policies.set(project_id, SIGNING_KEY_KIND, stored.dump(), now)
            session.commit()
        return self._active(project_id, stored)

    def keys(self, project_id: int) -> list[KeyInfo]:
        """Every key of the project, oldest first (empty before the first one)."""
        with self._metadata.read() as session:
            body = session.policies.get(project_id, SIGNING_KEY_KIND)
        if body is None:
            return []
        stored = StoredKey.load(body)
        retired = [
            KeyInfo(
                r.version,
                r.public_pem,
                fingerprint(r.public_pem),
                active=False,
                created_at=r.created_at,
                retired_at=r.retired_at,
                certificate_pem=r.certificate_pem or None,
            )
            for r in stored.retired
        ]
        return [*retired, self._active(project_id, stored)]

    def _active(self, project_id: int, stored: StoredKey) -> KeyInfo:
        return KeyInfo(
            stored.version,
            stored.public_pem,
            fingerprint(stored.public_pem),
            active=True,
            created_at=stored.created_at,
            retired_at=None,
            certificate_pem=self._certificate(project_id, stored),
        )
