"""The installation's master keys: from settings, or one generated key kept in a file."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from core.sealing import SecretBox
from core.settings import Settings

_KEY_BYTES = 32


def ensure_master_key(settings: Settings) -> None:
    """Create the generated master key file once, unless keys are configured.

    Called at installation start under the migration lock, so concurrent replicas
    never create two different keys. An existing file is never replaced.
    """
    if settings.secrets.master_keys:
        return
    path = settings.resolved_master_key_file
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(os.urandom(_KEY_BYTES)).decode("ascii") + "\n")


def secret_box(settings: Settings) -> SecretBox:
    """A :class:`SecretBox` over the configured master keys (or the generated one)."""
    return SecretBox(master_keys(settings))


def master_keys(settings: Settings) -> list[bytes]:
    """The configured master keys, first one current (or the generated one)."""
    texts = [key.get_secret_value() for key in settings.secrets.master_keys]
    if not texts:
        path: Path = settings.resolved_master_key_file
        try:
            texts = [path.read_text().strip()]
        except FileNotFoundError as exc:
            raise RuntimeError(f"no master key configured and {path} does not exist") from exc
    keys: list[bytes] = []
    for index, text in enumerate(texts):
        try:
            keys.append(base64.b64decode(text, validate=True))
        except binascii.Error as exc:
            raise ValueError(f"secrets.master_keys[{index}] is not base64") from exc
    return keys
