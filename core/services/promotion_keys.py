"""Each project's promotion signing key, sealed at rest (``core.promotion_signing``).

The key is made on the first signed promotion into the project, under the project's row
lock, so two concurrent first promotions store one key. The private key is only ever
stored sealed under the master key; rotating the master key re-seals it without changing
the key, so every earlier signature stays verifiable with the exported public key.
"""

from __future__ import annotations

from typing import Protocol

from core.ports import Clock, Metadata
from core.promotion_signing import SIGNING_KEY_KIND, StoredKey, new_private_key, sealing_context


class Sealer(Protocol):
    """``core.sealing.SecretBox``'s two operations."""

    def seal(self, plaintext: bytes, context: str) -> str: ...
    def open(self, sealed: str, context: str) -> bytes: ...


class PromotionKeys:
    """Read or make a project's signing key."""

    def __init__(self, metadata: Metadata, box: Sealer, clock: Clock) -> None:
        self._metadata = metadata
        self._box = box
        self._clock = clock

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
                    body = StoredKey(sealed, public).dump()
                    session.policies.set(project_id, SIGNING_KEY_KIND, body, self._clock.now())
                    session.commit()
        stored = StoredKey.load(body)
        return self._box.open(stored.sealed, sealing_context(project_id)), stored.public_pem
