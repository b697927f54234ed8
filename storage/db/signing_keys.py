"""``core.key_rotation.SigningKeyStore`` on the metadata's units of work.

The signing-key table has one adapter, :class:`storage.db.repos.signing_keys.SqlSigningKeys`
(a repository of every unit of work); this store runs it one transaction per call.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.key_rotation import StoredKey
from core.ports import Metadata


class SqlSigningKeyStore:
    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    def stored_keys(self) -> list[StoredKey]:
        with self._metadata.read() as uow:
            return uow.signing_keys.stored()

    def add_key(self, kid: str, private_pem: str) -> bool:
        with self._metadata.write() as uow:
            added = uow.signing_keys.add(kid, private_pem)
            uow.commit()
            return added

    def remove_keys(self, kids: Sequence[str]) -> int:
        with self._metadata.write() as uow:
            removed = uow.signing_keys.remove(kids)
            uow.commit()
            return removed
