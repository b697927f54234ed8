"""One unit of work over several aggregates: all of it commits, or none of it does.

And the pull's read stays one statement in one transaction (the hot path), whatever
repositories the unit of work offers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import event

from cli.composition import compose
from core.names import Reference, RepositoryName
from core.ports import ReadWouldWait
from core.records import NewManifest
from core.settings import Settings
from storage.db.engine import Engines, create_engines
from storage.db.metadata import SqlMetadata
from tests.api.oci import OCIClient


class FailedError(Exception):
    pass


@pytest.fixture
def engines(app_settings: Settings) -> Iterator[Engines]:
    made = create_engines(app_settings)
    yield made
    made.dispose()


def _manifest(digest: str, blob_id: int) -> NewManifest:
    return NewManifest(
        digest=digest,
        media_type="application/vnd.oci.image.manifest.v1+json",
        artifact_type=None,
        subject_digest=None,
        annotations=None,
        payload=b"{}",
        blob_ids=(blob_id,),
        child_ids=(),
    )


def _digest() -> str:
    return "sha256:" + secrets.token_hex(32)


def test_one_commit_stores_every_aggregate(engines: Engines) -> None:
    metadata = SqlMetadata(engines)
    name = f"uow-{secrets.token_hex(4)}"
    blob_digest, manifest_digest = _digest(), _digest()
    with metadata.write() as uow:
        project = uow.projects.add(name, public=False, storage_id=name)
        assert project is not None
        repository = uow.repositories.ensure(project.id, f"{name}/app")
        blob = uow.blobs.add(project.id, blob_digest, 12)
        uow.blobs.link(repository.id, blob.id)
        manifest_id = uow.manifests.add(repository.id, _manifest(manifest_digest, blob.id))
        uow.tags.set(repository.id, "v1", manifest_id)
        member = uow.members.add(project.id, "user", "alice", "developer")
        assert member is not None
        uow.outbox.add("uow.test", project_id=project.id, data=f'{{"key": "{name}"}}')
        uow.commit()
    with metadata.read() as uow:
        found = uow.manifests.named(f"{name}/app", None, "v1")
        assert found is not None
        stored_repository, stored_manifest = found
        assert stored_repository == repository
        assert stored_manifest is not None
        assert stored_manifest.digest == manifest_digest
        assert stored_manifest.id == manifest_id
        assert uow.blobs.linked(repository.id, blob_digest) == blob
        assert [m.name for m in uow.members.of_project(project.id)] == ["alice"]
        assert uow.outbox.keyed_exists("uow.test", project.id, name)


def _write_everything_then_fail(metadata: SqlMetadata, name: str, project_ids: list[int]) -> None:
    with metadata.write() as uow:
        project = uow.projects.add(name, public=False, storage_id=name)
        assert project is not None
        project_ids.append(project.id)
        repository = uow.repositories.ensure(project.id, f"{name}/app")
        blob = uow.blobs.add(project.id, _digest(), 12)
        uow.manifests.add(repository.id, _manifest(_digest(), blob.id))
        uow.members.add(project.id, "user", "alice", "developer")
        uow.users.add(name, "hash")
        uow.outbox.add("uow.test", project_id=project.id, data=f'{{"key": "{name}"}}')
        raise FailedError  # before the commit: nothing of the above may remain


def test_a_failure_rolls_back_every_aggregate(engines: Engines) -> None:
    metadata = SqlMetadata(engines)
    name = f"uow-{secrets.token_hex(4)}"
    project_ids: list[int] = []
    with pytest.raises(FailedError):
        _write_everything_then_fail(metadata, name, project_ids)
    with metadata.read() as uow:
        assert uow.projects.get(name) is None
        assert uow.repositories.get(f"{name}/app") is None
        assert uow.users.local(name) is None
        assert uow.members.of_project(project_ids[0]) == []
        assert not uow.outbox.keyed_exists("uow.test", project_ids[0], name)


def _write_then_break_a_foreign_key(metadata: SqlMetadata, name: str, missing_project: int) -> None:
    with metadata.write() as uow:
        project = uow.projects.add(name, public=True, storage_id=name)
        assert project is not None
        uow.users.add(name, "hash")
        # NOTE: a blob of a project that does not exist breaks the foreign key.
        uow.blobs.add(missing_project, _digest(), 1)
        uow.commit()


def test_a_failing_statement_rolls_back_the_writes_before_it(engines: Engines) -> None:
    """A database error in one aggregate undoes what the others wrote first."""
    metadata = SqlMetadata(engines)
    name = f"uow-{secrets.token_hex(4)}"
    with metadata.write() as uow:
        existing = uow.projects.add(f"{name}-taken", public=False, storage_id=f"{name}-taken")
        assert existing is not None
        uow.commit()
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        _write_then_break_a_foreign_key(metadata, name, existing.id + 1_000_000)
    with metadata.read() as uow:
        assert uow.projects.get(name) is None
        assert uow.users.local(name) is None
        assert uow.projects.get(f"{name}-taken") == existing


def _counting(engine: sqlalchemy.Engine) -> tuple[list[str], list[int]]:
    """Statements run (``BEGIN`` aside) and transactions begun on ``engine``, from now."""
    statements: list[str] = []
    transactions: list[int] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.strip().upper() != "BEGIN":
            statements.append(statement)

    def on_begin(_conn: Any) -> None:
        transactions.append(1)

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "begin", on_begin)
    return statements, transactions


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_a_manifest_read_is_one_statement_in_one_transaction(
    app_settings: Settings, oci: OCIClient, repo: str, by: str
) -> None:
    """The pull's lookup (the GET/HEAD path off the event loop) must not grow."""
    pushed = oci.push_image(repo, "v1")
    root = compose(app_settings)
    manifests = root.manifests
    reference = Reference.parse("v1" if by == "tag" else pushed.digest)
    statements, transactions = _counting(root.engines.read)
    try:
        found = manifests.read(RepositoryName.parse(repo), reference)
    finally:
        root.close()
    assert found.digest == pushed.digest
    assert len(statements) == 1, statements
    assert statements[0].lstrip().upper().startswith("SELECT")
    assert len(transactions) == 1


@pytest.mark.parametrize("by", ["tag", "digest"])
def test_a_manifest_read_on_the_event_loop_is_one_statement(
    engines: Engines, oci: OCIClient, repo: str, by: str
) -> None:
    """SQLite's loop reader: one statement on a plain connection; PostgreSQL has none."""
    pushed = oci.push_image(repo, "v1")
    metadata = SqlMetadata(engines)
    digest, tag = (None, "v1") if by == "tag" else (pushed.digest, None)
    reader = engines.nowait_read
    if reader is None:
        with pytest.raises(ReadWouldWait):
            metadata.named_manifest_nowait(repo, digest, tag)
        return
    traced: list[str] = []
    connection = reader.checkout()
    connection.set_trace_callback(traced.append)
    reader.checkin(connection)  # NOTE: the next checkout takes this connection back
    found = metadata.named_manifest_nowait(repo, digest, tag)
    connection.set_trace_callback(None)
    assert found is not None
    assert found[1] is not None
    assert found[1].digest == pushed.digest
    assert len(traced) == 1, traced
    assert traced[0].lstrip().upper().startswith("SELECT")
