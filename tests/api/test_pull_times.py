"""Pull times on each backend: what counts as a pull, how often it is written, and
retention by pull time (runs driven in-process)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from api.context import Registry
from core.names import RepositoryName
from core.pulls import WriteContentionError
from core.services.retention import RetentionService
from core.settings import Settings
from storage.db.engine import Engines, create_engines
from storage.db.pull_times import SqlPullTimes
from storage.db.tables import Manifest
from tests.api.oci import OCI_INDEX, OCI_MANIFEST, OCIClient, unique_project

AUTH_USER = "admin"


def _registry(oci: OCIClient) -> Registry:
    registry: Registry = oci.client.app.state["registry"]  # type: ignore[attr-defined]
    return registry


def _pulled_at(oci: OCIClient, repo: str, digest: str) -> datetime | None:
    registry = _registry(oci)
    repository = registry.repositories.find(RepositoryName.parse(repo))
    assert repository is not None
    with registry.metadata.read() as session:
        record = session.manifests.get(repository.id, digest)
    assert record is not None
    return record.pulled_at


def _manifest_id(oci: OCIClient, repo: str, digest: str) -> int:
    registry = _registry(oci)
    repository = registry.repositories.find(RepositoryName.parse(repo))
    assert repository is not None
    with registry.metadata.read() as session:
        return session.manifests.ids(repository.id, [digest])[digest]


def _get(oci: OCIClient, repo: str, reference: str, method: str = "GET") -> None:
    accept = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
    response = oci.request(method, f"/v2/{repo}/manifests/{reference}", repo, headers=accept)
    assert response.status_code == 200, response.text


def _project(oci: OCIClient) -> str:
    project = unique_project()
    auth = (AUTH_USER, oci.password)
    assert oci.client.post("/api/v1/projects", json={"name": project}, auth=auth).status_code == 201
    return project


@pytest.fixture
def engines(app_settings: Settings) -> Iterator[Engines]:
    created = create_engines(app_settings)
    yield created
    created.dispose()


def test_get_records_a_pull_and_head_does_not(oci: OCIClient, repo: str) -> None:
    pushed = oci.push_image(repo, "v1")
    _get(oci, repo, "v1", method="HEAD")
    _get(oci, repo, pushed.digest, method="HEAD")
    assert _pulled_at(oci, repo, pushed.digest) is None

    before = datetime.now(UTC)
    _get(oci, repo, "v1")
    first = _pulled_at(oci, repo, pushed.digest)
    assert first is not None
    assert first >= before - timedelta(seconds=1)


def test_repeated_pulls_within_the_granularity_write_once(oci: OCIClient, repo: str) -> None:
    pushed = oci.push_image(repo, "v1")
    _get(oci, repo, pushed.digest)
    first = _pulled_at(oci, repo, pushed.digest)
    assert first is not None
    for reference in ["v1", pushed.digest, "v1"]:
        _get(oci, repo, reference)
    assert _pulled_at(oci, repo, pushed.digest) == first


def test_pulling_an_index_records_the_index_only(oci: OCIClient, repo: str) -> None:
    child = oci.push_image(repo, "child")
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": child.digest, "size": len(child.payload)}
        ],
    }
    assert oci.put_manifest(repo, "multi", index, OCI_INDEX).status_code == 201
    response = oci.request("HEAD", f"/v2/{repo}/manifests/multi", repo)
    index_digest = response.headers["Docker-Content-Digest"]
    _get(oci, repo, "multi")
    assert _pulled_at(oci, repo, index_digest) is not None
    assert _pulled_at(oci, repo, child.digest) is None


def test_pull_time_sql_writes_only_stale_rows(oci: OCIClient, repo: str, engines: Engines) -> None:
    pushed = oci.push_image(repo, "v1")
    manifest_id = _manifest_id(oci, repo, pushed.digest)
    store, granularity = SqlPullTimes(engines), timedelta(seconds=60)
    now = datetime.now(UTC)
    assert store.record_pull(manifest_id, now, now - granularity) is True
    later = now + timedelta(seconds=30)
    assert store.record_pull(manifest_id, later, later - granularity) is False
    assert _pulled_at(oci, repo, pushed.digest) == now
    stale = now + timedelta(seconds=61)
    assert store.record_pull(manifest_id, stale, stale - granularity) is True
    assert _pulled_at(oci, repo, pushed.digest) == stale


@contextmanager
def _write_blocked(engines: Engines, manifest_id: int) -> Iterator[None]:
    """Hold what a pull-time write needs: the write lock (SQLite) or the row (PostgreSQL)."""
    manifest = Manifest.__table__  # type: ignore[attr-defined]
    with engines.writing() as connection, connection.begin():
        lock = select(manifest.c.id).where(manifest.c.id == manifest_id)
        if connection.dialect.name == "postgresql":
            lock = lock.with_for_update()
        connection.execute(lock).all()
        yield


def test_a_busy_database_never_fails_the_pull(oci: OCIClient, repo: str, engines: Engines) -> None:
    pushed = oci.push_image(repo, "v1")
    manifest_id = _manifest_id(oci, repo, pushed.digest)
    now = datetime.now(UTC)
    outcome: list[BaseException | bool] = []

    def contend() -> None:
        try:
            outcome.append(SqlPullTimes(engines, 0.05).record_pull(manifest_id, now, now))
        except WriteContentionError as error:
            outcome.append(error)

    with _write_blocked(engines, manifest_id):
        # NOTE: another thread, so this process's write lock is not taken re-entrantly.
        thread = threading.Thread(target=contend)
        thread.start()
        thread.join(timeout=60)
        _get(oci, repo, "v1")
    assert len(outcome) == 1
    assert isinstance(outcome[0], WriteContentionError)
    assert _pulled_at(oci, repo, pushed.digest) is None
    _get(oci, repo, "v1")
    assert _pulled_at(oci, repo, pushed.digest) is not None


def test_latest_pulled_dry_run_keeps_the_pulled_tag(oci: OCIClient) -> None:
    project = _project(oci)
    auth = (AUTH_USER, oci.password)
    policy = {"rules": [{"template": "latestPulledN", "n": 1}]}
    put = oci.client.put(f"/api/v1/projects/{project}/retention", json=policy, auth=auth)
    assert put.status_code == 200, put.text
    repo = f"{project}/app"
    old = oci.push_image(repo, "old")
    new = oci.push_image(repo, "new")
    _get(oci, repo, "old")

    registry = _registry(oci)
    service = RetentionService(registry.metadata, registry.manifests, None)
    dry = service.run(project, datetime.now(UTC), dry_run=True)
    by_digest = {item["digest"]: (item["action"], item["reason"]) for item in dry.items}
    assert by_digest == {
        old.digest: ("retain", "retained by rule 1 (latestPulledN n=1)"),
        new.digest: ("delete", "no rule retains it"),
    }
    pulled = {item["digest"]: item["pulled_at"] for item in dry.items}
    assert pulled[old.digest] is not None
    assert pulled[new.digest] is None
    _get(oci, repo, "new", method="HEAD")


def test_days_since_last_pull_counts_unpulled_as_pulled_at_push(oci: OCIClient) -> None:
    project = _project(oci)
    auth = (AUTH_USER, oci.password)
    policy = {"rules": [{"template": "nDaysSinceLastPull", "n": 7}]}
    put = oci.client.put(f"/api/v1/projects/{project}/retention", json=policy, auth=auth)
    assert put.status_code == 200, put.text
    repo = f"{project}/app"
    pulled = oci.push_image(repo, "pulled")
    unpulled = oci.push_image(repo, "unpulled")
    _get(oci, repo, "pulled")

    registry = _registry(oci)
    service = RetentionService(registry.metadata, registry.manifests, None)
    soon = service.run(project, datetime.now(UTC), dry_run=True)
    assert {item["action"] for item in soon.items} == {"retain"}
    reasons = {item["reason"] for item in soon.items}
    assert reasons == {"retained by rule 1 (nDaysSinceLastPull n=7)"}
    later = service.run(project, datetime.now(UTC) + timedelta(days=8), dry_run=True)
    actions = {item["digest"]: item["action"] for item in later.items}
    assert actions == {pulled.digest: "delete", unpulled.digest: "delete"}
