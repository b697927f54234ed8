"""The API and the worker run on services the composition root built from the same settings.

Each process makes its own :class:`cli.composition.Composition` from the settings (here: one
for the app, one for the worker's activities, sharing a clock the test moves). What a
setting decides in one process, the other process's services decide the same way: an
upload session the API opened under ``limits.upload_ttl_seconds`` is reaped by the worker
exactly when that TTL has passed on the clock, and a blob the API left unreferenced is
collected by the worker's GC only once ``control.gc_review_delay_seconds`` has passed on it.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from pydantic import SecretStr
from temporalio.testing import ActivityEnvironment

from activities.contracts import (
    GC_COLLECT_BLOBS,
    GC_RECORD_RUN,
    REAP_EXPIRED_UPLOADS,
    GcInput,
    GcRecordInput,
    ReapUploadsInput,
)
from api.app import build_app
from cli.composition import Composition
from cli.startup import prepare_installation
from cli.wiring import build_activities
from core.control_settings import ControlSettings
from core.settings import AuthSettings, LimitSettings, Settings
from tests.api.oci import digest_of
from tests.services.faulty_worker import activity_name

PASSWORD = secrets.token_urlsafe(12)
AUTH = ("admin", PASSWORD)
TTL = 600
REVIEW_DELAY = 3 * 24 * 3600


class ManualClock:
    """A clock the test moves; both compositions read it."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(
        data_dir=tmp_path,
        auth=AuthSettings(admin_password=SecretStr(PASSWORD), create_project_on_push=True),
        limits=LimitSettings(upload_ttl_seconds=TTL),
        control=ControlSettings(gc_review_delay_seconds=REVIEW_DELAY),
    )
    prepare_installation(settings)
    return settings


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def api(settings: Settings, clock: ManualClock) -> Iterator[TestClient[Any]]:
    root = Composition(settings, clock)
    try:
        with TestClient(build_app(root.registry())) as client:
            yield client
    finally:
        root.close()


@pytest.fixture
def worker(settings: Settings, clock: ManualClock) -> Iterator[dict[str, Callable[..., Any]]]:
    root = Composition(settings, clock)
    try:
        yield {activity_name(fn): fn for fn in build_activities(root)}
    finally:
        root.close()


def _run(activity: Callable[..., Any], argument: object) -> Any:
    return ActivityEnvironment().run(activity, argument)


def test_an_upload_the_api_opened_is_reaped_by_the_worker_when_the_ttl_passed(
    api: TestClient[Any], worker: dict[str, Callable[..., Any]], clock: ManualClock
) -> None:
    started = api.post(f"/v2/{uuid.uuid4().hex[:12]}/app/blobs/uploads/", auth=AUTH)
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    reap = worker[REAP_EXPIRED_UPLOADS]

    clock.at += timedelta(seconds=TTL - 1)
    assert _run(reap, ReapUploadsInput(older_than_seconds=3600)).sessions_reaped == 0
    assert api.get(location, auth=AUTH).status_code == 204  # still open for the API too

    clock.at += timedelta(seconds=2)
    assert _run(reap, ReapUploadsInput(older_than_seconds=3600)).sessions_reaped == 1
    assert api.get(location, auth=AUTH).status_code == 404


def test_a_blob_the_api_left_unreferenced_is_collected_when_the_review_delay_passed(
    api: TestClient[Any], worker: dict[str, Callable[..., Any]], clock: ManualClock
) -> None:
    repo = f"{uuid.uuid4().hex[:12]}/app"
    data = secrets.token_bytes(256)
    digest = digest_of(data)
    pushed = api.post(f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data, auth=AUTH)
    assert pushed.status_code == 201, pushed.text

    def collect(run_id: str) -> int:
        """One GC run's blob step at the configured review delay; how many blobs it deleted."""
        run = GcInput(run_id=run_id)
        _run(worker[GC_RECORD_RUN], GcRecordInput(run=run, state="running"))
        deleted: int = _run(worker[GC_COLLECT_BLOBS], run).deleted
        return deleted

    # The clock was read before the push: one second short of the delay after it.
    clock.at += timedelta(seconds=REVIEW_DELAY - 1)
    assert collect("early") == 0
    assert api.head(f"/v2/{repo}/blobs/{digest}", auth=AUTH).status_code == 200

    clock.at += timedelta(hours=1)
    assert collect("due") == 1
    assert api.head(f"/v2/{repo}/blobs/{digest}", auth=AUTH).status_code == 404
