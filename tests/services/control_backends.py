"""Settings for control-plane tests on either backend, and the environment of a worker
process started with the same settings.

``sqlite-fs`` keeps everything under the test's directory; ``pg-s3`` takes a fresh
database from the session's PostgreSQL and a fresh bucket on the session's S3 server.
"""

from __future__ import annotations

import os
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from cli.startup import prepare_installation
from core.settings import Settings
from tests.conftest import create_bucket

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tests.services.temporal import TemporalServer


#: How long a workflow task waits for the worker that ran the workflow last (Temporal's
#: default is 10 s): the crash tests kill workers and start others.
STICKY_SECONDS = 1.0


def control_settings(
    backend: str,
    root: Path,
    temporal: TemporalServer,
    request: pytest.FixtureRequest,
    control: dict[str, Any],
    *,
    label: str,
) -> Settings:
    """Migrated settings for ``backend`` with a private task queue and ``control``.

    Args:
        backend: ``sqlite-fs`` or ``pg-s3``.
        root: The test's directory (data dir).
        temporal: The Temporal server the worker will use.
        request: To reach the session's ``postgres`` and ``s3`` fixtures on ``pg-s3``.
        control: The control-plane settings of the test.
        label: Prefix of the database and bucket names (lower case letters).
    """
    base: dict[str, Any] = {
        "data_dir": root / "data",
        "auth": {"admin_password": secrets.token_urlsafe(12), "create_project_on_push": True},
        "temporal": {
            "address": temporal.address,
            "task_queue": f"q-{uuid.uuid4().hex}",
            # NOTE: a worker these tests kill leaves its workflows to the next one 1 s later
            "sticky_queue_timeout_seconds": STICKY_SECONDS,
        },
        "control": control,
    }
    if backend == "pg-s3":
        postgres, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("s3")
        base |= {
            "database_url": postgres.create_database(f"{label}_{secrets.token_hex(4)}"),
            "storage": "s3",
            "s3": {
                "endpoint_url": s3.endpoint_url,
                "bucket": create_bucket(s3, f"{label}-{secrets.token_hex(4)}"),
                "access_key_id": s3.access_key_id,
                "secret_access_key": s3.secret_access_key,
            },
        }
    settings = Settings(**base)
    prepare_installation(settings)
    return settings


def worker_env(settings: Settings, control: dict[str, str]) -> dict[str, str]:
    """This process's environment without ``MOORAGE_*``, plus ``settings`` and ``control``.

    Args:
        settings: What the worker must use (data dir, database, storage, Temporal).
        control: ``MOORAGE_CONTROL__*`` variables, by setting name in upper case.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "MOORAGE_DATA_DIR": str(settings.data_dir),
            "MOORAGE_STORAGE": str(settings.storage),
            "MOORAGE_TEMPORAL__ADDRESS": settings.temporal.address,
            "MOORAGE_TEMPORAL__TASK_QUEUE": settings.temporal.task_queue,
            "MOORAGE_TEMPORAL__STICKY_QUEUE_TIMEOUT_SECONDS": str(
                settings.temporal.sticky_queue_timeout_seconds
            ),
        }
    )
    env |= {f"MOORAGE_CONTROL__{name}": value for name, value in control.items()}
    if settings.database_url:
        env["MOORAGE_DATABASE_URL"] = settings.database_url
    if settings.storage == "s3":
        s3 = settings.s3
        assert s3.secret_access_key is not None
        env |= {
            "MOORAGE_S3__ENDPOINT_URL": str(s3.endpoint_url),
            "MOORAGE_S3__BUCKET": s3.bucket,
            "MOORAGE_S3__ACCESS_KEY_ID": str(s3.access_key_id),
            "MOORAGE_S3__SECRET_ACCESS_KEY": s3.secret_access_key.get_secret_value(),
        }
    return env
