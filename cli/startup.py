"""Once per installation start, before any server worker exists: schema, first key, admin.

``moorage api`` and ``moorage dev`` call :func:`prepare_installation` in their main
process before they start (or fork) the workers that serve requests, so the workers
only read what it made: API workers never migrate, generate a signing key or create
the admin account.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from adapters.master_key import ensure_master_key
from cli.composition import compose
from core.services.auth import ensure_admin, ensure_signing_key
from storage.db.migrate import migrated

if TYPE_CHECKING:
    from core.settings import Settings

_log = logging.getLogger("moorage.startup")


def prepare_installation(settings: Settings) -> None:
    """Migrate to head, add the first signing key and master key, make sure the admin exists.

    Idempotent, and safe when several processes (replicas) start together: all of it
    runs under the migration lock (``storage.db.migrate.migrated``), so one process at a
    time does it and the others find it done. Without a configured admin password the
    process that creates the account generates one and logs it, once per installation.
    """
    with migrated(settings):
        root = compose(settings)  # this process's own, closed before any worker starts
        try:
            ensure_signing_key(root.metadata)
            generated = ensure_admin(root.metadata, settings.auth)
            ensure_master_key(settings)
        finally:
            root.close()
    if generated is not None:
        _log.warning("created user %r with password %s", settings.auth.admin_username, generated)
