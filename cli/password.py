"""The embedded instance's admin password: generated once, kept under the data dir."""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pathlib import Path

PASSWORD_FILE: Final = "admin-password"  # noqa: S105 - a file name
#: 32 random bytes, URL-safe base64 (43 characters).
_PASSWORD_BYTES: Final = 32


@dataclass(frozen=True, slots=True)
class StoredPassword:
    """A password kept in a file.

    Attributes:
        value: The password.
        path: The file holding it (mode 0600).
        created: True if this call generated it.
    """

    value: str
    path: Path
    created: bool


def ensure_admin_password(data_dir: Path) -> StoredPassword:
    """Return the admin password stored under ``data_dir``, generating it the first time.

    A new password is written to a private temporary file (mode 0600) and then linked
    into place, which fails if the file exists: two processes starting at once agree on
    one password and no reader ever sees a half-written file.
    """
    path = data_dir / PASSWORD_FILE
    if path.exists():
        return StoredPassword(_read_password(path), path, created=False)
    password = secrets.token_urlsafe(_PASSWORD_BYTES)
    temporary = data_dir / f".{PASSWORD_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(password + "\n")
        os.link(temporary, path)
    except FileExistsError:
        return StoredPassword(_read_password(path), path, created=False)
    finally:
        temporary.unlink(missing_ok=True)
    return StoredPassword(password, path, created=True)


def _read_password(path: Path) -> str:
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
    value = path.read_text(encoding="utf-8").strip()
    if not value:
        raise ValueError(f"{path} is empty; delete it to generate a new admin password")
    return value
