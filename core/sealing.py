"""Secrets at rest: values sealed under the installation's master key.

Webhook secrets, registry-endpoint credentials and signing keys are stored sealed, never
in clear. A sealed value is ``v1.<key id>.<nonce>.<ciphertext>`` (URL-safe base64 parts):
AES-256-GCM under a key derived (HKDF-SHA256) from one of the configured master keys,
with the value's *context* (for example ``webhook:42:secret``) as associated data, so a
sealed value copied into another row or column does not open.

Rotation: a :class:`SecretBox` seals with its first key and opens with any of its keys,
so an operator adds a new master key in front, re-seals at leisure, then drops the old one.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1"
_MIN_MASTER_KEY = 32
_PARTS = 4


class SealError(ValueError):
    """A sealed value that cannot be opened (wrong key, wrong context, corrupted)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SecretBox:
    """Seals and opens small secrets under one or more master keys (first one seals)."""

    def __init__(self, master_keys: Sequence[bytes]) -> None:
        if not master_keys:
            raise ValueError("a SecretBox needs at least one master key")
        self._keys: list[tuple[str, AESGCM]] = []
        for master in master_keys:
            if len(master) < _MIN_MASTER_KEY:
                raise ValueError(f"a master key needs at least {_MIN_MASTER_KEY} bytes")
            key_id = hashlib.sha256(b"moorage-master-key-id" + master).hexdigest()[:12]
            derived = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"moorage-seal-v1"
            ).derive(master)
            self._keys.append((key_id, AESGCM(derived)))

    @property
    def key_id(self) -> str:
        """Id of the key new values are sealed with."""
        return self._keys[0][0]

    def seal(self, plaintext: bytes, context: str) -> str:
        """``plaintext`` sealed for ``context`` under the first master key."""
        key_id, aead = self._keys[0]
        nonce = os.urandom(12)
        sealed = aead.encrypt(nonce, plaintext, context.encode())
        return ".".join((_VERSION, key_id, _b64(nonce), _b64(sealed)))

    def open(self, sealed: str, context: str) -> bytes:
        """The plaintext of ``sealed``; :class:`SealError` if it does not open for ``context``."""
        parts = sealed.split(".")
        if len(parts) != _PARTS or parts[0] != _VERSION:
            raise SealError("not a sealed value")
        _, key_id, nonce, body = parts
        for candidate_id, aead in self._keys:
            if candidate_id == key_id:
                try:
                    return aead.decrypt(_unb64(nonce), _unb64(body), context.encode())
                except (InvalidTag, ValueError) as exc:
                    raise SealError("sealed value does not open for this context") from exc
        raise SealError(f"sealed under master key {key_id}, which is not configured")

    def needs_reseal(self, sealed: str) -> bool:
        """Whether ``sealed`` was sealed under a key other than the current one."""
        parts = sealed.split(".")
        return len(parts) != _PARTS or parts[1] != self.key_id


def named_context(kind: str, name: str) -> str:
    """The sealing context of the secret of the object ``name`` of ``kind``.

    The one rule for the write-only secret of a named object (a registry endpoint's
    credentials, a P2P instance's secret, a scanner registration's access credential):
    ``<kind>:<name>:secret``, so a sealed value copied to another object does not open.
    """
    return f"{kind}:{name}:secret"


class NamedSecrets:
    """Seals and opens the secrets of named objects of one ``kind`` (:func:`named_context`)."""

    def __init__(self, box: Callable[[], SecretBox], kind: str) -> None:
        self._box, self._kind = box, kind

    def seal(self, name: str, secret: str | None) -> str | None:
        """``secret`` sealed for the object ``name`` (``None`` for no or an empty secret)."""
        if not secret:
            return None
        return self._box().seal(secret.encode(), named_context(self._kind, name))

    def open(self, name: str, sealed: str) -> str:
        """The secret of the object ``name`` (:class:`SealError` if it does not open)."""
        return self._box().open(sealed, named_context(self._kind, name)).decode()
