"""The batched audit writer: under concurrent requests every event is stored and the
chain verifies; a failed write loses nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy
from litestar.testing import TestClient
from pydantic import SecretStr

from api.app import create_app
from cli.startup import prepare_installation
from core.audit import GENESIS, AuditEvent, AuditQuery, StoredAuditEvent, VerifyReport
from core.identity_settings import AuditSettings
from core.services.audit_log import AuditLog
from core.settings import AuthSettings, Settings
from tests.api.oci import OCIClient
from tests.services.moorage import audit_verify

PASSWORD = "admin-password-1"
CLIENTS = 8
REQUESTS_PER_CLIENT = 25


def test_concurrent_requests_all_stored_in_one_chain_after_shutdown(tmp_path: Path) -> None:
    # NOTE: small batches and frequent flushes, so flushes commit while requests queue.
    settings = Settings(
        data_dir=tmp_path,
        auth=AuthSettings(admin_password=SecretStr(PASSWORD), create_project_on_push=True),
        audit=AuditSettings(batch_size=7, flush_interval_seconds=0.05),
    )
    prepare_installation(settings)
    with TestClient(create_app(settings)) as client:
        oci = OCIClient(client, PASSWORD)
        oci.push_image("burst/app", "v1")
        token = oci.token("repository:burst/app:pull")

        def burst(worker: int) -> list[int]:
            statuses = []
            for i in range(REQUESTS_PER_CLIENT):
                path = "/v2/burst/app/manifests/v1" if i % 2 else "/v2/burst/app/manifests/nope"
                response = client.get(
                    path,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "X-Request-ID": f"burst-{worker}-{i}",
                    },
                )
                statuses.append(response.status_code)
            return statuses

        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses = [s for result in pool.map(burst, range(CLIENTS)) for s in result]
        assert sorted(set(statuses)) == [200, 404]
    # The app has shut down: whatever was still queued must have been written.
    engine = sqlalchemy.create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            stored = connection.execute(
                sqlalchemy.text(
                    "SELECT request_id, status FROM audit_event WHERE request_id LIKE 'burst-%'"
                )
            ).all()
    finally:
        engine.dispose()
    expected = {
        f"burst-{worker}-{i}" for worker in range(CLIENTS) for i in range(REQUESTS_PER_CLIENT)
    }
    assert {row.request_id for row in stored} == expected
    assert len(stored) == len(expected)
    assert {row.status for row in stored} == {200, 404}
    verified = audit_verify(settings.data_dir)
    assert verified.returncode == 0, verified.stderr


class _FlakyStore:
    """Keeps appended events in memory; the first append fails like a lost database."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.failures = 1

    def append(self, events: list[AuditEvent]) -> list[StoredAuditEvent]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database unreachable")
        start = len(self.events)
        self.events.extend(events)
        return [
            StoredAuditEvent(start + n + 1, event, GENESIS, GENESIS)
            for n, event in enumerate(events)
        ]

    def query(self, query: AuditQuery) -> list[StoredAuditEvent]:
        raise NotImplementedError

    def verify(self) -> VerifyReport:
        raise NotImplementedError

    def purge(self, before: datetime) -> int:
        raise NotImplementedError


def _event(request_id: str) -> AuditEvent:
    return AuditEvent(
        time=datetime.now(UTC),
        request_id=request_id,
        actor="admin",
        actor_kind="user",
        auth_method="token",
        action="push_manifest",
        resource="p/app:v1",
        project="p",
        result="success",
        status=201,
        client="127.0.0.1",
        user_agent="test",
    )


def test_a_failed_write_keeps_the_events_queued_in_order() -> None:
    store = _FlakyStore()
    audit = AuditLog(store, AuditSettings(batch_size=3, flush_interval_seconds=3600))
    for i in range(7):
        audit.record(_event(f"r{i}"))
    with pytest.raises(ConnectionError):
        audit.flush()
    audit.record(_event("r7"))
    audit.close()
    assert [event.request_id for event in store.events] == [f"r{i}" for i in range(8)]
