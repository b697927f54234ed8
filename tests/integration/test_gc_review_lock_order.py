"""A push's locks on its GC reviews, on PostgreSQL: digest order, shared where they can be.

A push holds (``FOR SHARE``) the review rows of what it is about to reference and
re-arms (``UPDATE``) the review of a manifest it leaves unreferenced. If a statement
locked several rows in the order of the index or table it happened to scan (an order
that moves as the rows are re-armed, since ``queued_at`` is indexed), two pushes could
each hold a row the other waits for: PostgreSQL then refuses one push with a deadlock.
Here a transaction holds the first digest's row while the push's statement runs on a
plan that meets the rows in the opposite order (the table's, with index scans off): it
must wait for the first row without having taken the second. Holds must not queue on
one another (concurrent pushes of one image would otherwise take turns for a whole
transaction each), and the collector passes held rows by. SQLite has no row locks (its
writers take turns on the database lock), so there is nothing to order there.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import Connection, Engine, Table, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from core.settings import Settings
from storage.db.migrate import upgrade
from storage.db.repos.reviews import BLOB_REVIEW, MANIFEST_REVIEW, SqlCollector, SqlReviewQueue
from tests.services.postgres import Postgres

OWNER = 7
FIRST, SECOND = "sha256:" + "a" * 64, "sha256:" + "b" * 64
#: Bound on the re-arm reaching its lock wait, and on it finishing once let go.
WAIT_SECONDS = 30.0

_Lock = Callable[[SqlReviewQueue, list[str], datetime], None]
#: What a push runs on its review rows: (table, owner column, statement, whether it re-arms).
KINDS: dict[str, tuple[Table, str, _Lock, bool]] = {
    "blob-hold": (
        BLOB_REVIEW,
        "project_id",
        lambda reviews, digests, _after: reviews.hold_reviews(OWNER, digests, OWNER, []),
        False,
    ),
    "manifest-hold": (
        MANIFEST_REVIEW,
        "repository_id",
        lambda reviews, digests, _after: reviews.hold_reviews(OWNER, [], OWNER, digests),
        False,
    ),
    "manifest-re-arm": (
        MANIFEST_REVIEW,
        "repository_id",
        lambda reviews, digests, after: reviews.touch_manifest_reviews(OWNER, digests, after),
        True,
    ),
}


@pytest.fixture
def engine(postgres: Postgres, tmp_path: Path) -> Iterator[Engine]:
    url = postgres.create_database(f"lockorder_{secrets.token_hex(4)}")
    settings = Settings(data_dir=tmp_path, database_url=url)
    upgrade(settings)
    engine = sqlalchemy.create_engine(settings.resolved_database_url, poolclass=NullPool)
    yield engine
    engine.dispose()


def _queue(engine: Engine, table: Table, owner: str, digests: list[str]) -> datetime:
    """Queue reviews of ``digests`` in this order (the table's order); return their time."""
    queued = datetime.now(UTC) - timedelta(hours=1)
    row = {"event": "manifest.delete", "queued_at": queued, "review_after": queued}
    if table is BLOB_REVIEW:
        row |= {"storage_id": "tenant", "state": "review", "size": 0}
    with engine.begin() as connection:
        for digest in digests:
            connection.execute(insert(table).values(**row, **{owner: OWNER, "digest": digest}))
    return queued


def _lock(connection: Connection, table: Table, digest: str, *, nowait: bool = False) -> None:
    query = select(table.c.digest).where(table.c.digest == digest)
    connection.execute(query.with_for_update(nowait=nowait)).one()


def _wait_for_lock_wait(
    engine: Engine, pid: Callable[[], int | None], failed: list[BaseException]
) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    query = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid")
    with engine.connect() as watcher:
        while time.monotonic() < deadline and not failed:
            backend = pid()
            if backend is not None and watcher.execute(query, {"pid": backend}).scalar() == "Lock":
                return
            time.sleep(0.05)
    pytest.fail("the push never waited for the held row")


def _waits_without_taking(
    engine: Engine,
    push: Callable[[Connection], None],
    held: tuple[Table, str],
    free: tuple[Table, str],
) -> None:
    """Run ``push`` while ``held`` (table, digest) is locked; once it waits, ``free`` is not."""
    backend: list[int] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with engine.connect() as connection, connection.begin():
                backend.append(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
                push(connection)
        except BaseException as exc:  # reported by the test thread
            failed.append(exc)

    with engine.connect() as holder, holder.begin():
        _lock(holder, *held)
        pusher = threading.Thread(target=run)
        pusher.start()
        _wait_for_lock_wait(engine, lambda: backend[0] if backend else None, failed)
        try:
            _lock(holder, *free, nowait=True)
        except OperationalError as exc:
            pytest.fail(f"the push locked {free} while it waited for {held}: {exc}")
    pusher.join(WAIT_SECONDS)
    assert not pusher.is_alive()
    assert failed == []


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_push_waiting_for_a_review_row_holds_no_row_of_a_later_digest(
    engine: Engine, kind: str
) -> None:
    table, owner, lock, rearms = KINDS[kind]
    queued = _queue(engine, table, owner, [SECOND, FIRST])
    after = datetime.now(UTC) + timedelta(days=1)

    def push(connection: Connection) -> None:
        # A plan that meets the rows in table order: SECOND, then FIRST.
        connection.execute(text("SET LOCAL enable_indexscan = off"))
        connection.execute(text("SET LOCAL enable_bitmapscan = off"))
        lock(SqlReviewQueue(connection), [FIRST, SECOND], after)

    _waits_without_taking(engine, push, (table, FIRST), (table, SECOND))

    with engine.connect() as connection:
        rows = connection.execute(select(table.c.digest, table.c.queued_at, table.c.review_after))
        armed = {row.digest: (row.queued_at > queued, row.review_after) for row in rows}
    if rearms:
        assert armed == {FIRST: (True, after), SECOND: (True, after)}
    else:
        assert armed == {FIRST: (False, queued), SECOND: (False, queued)}


def _lockable(engine: Engine, table: Table, owner: str, owner_id: int, digest: str) -> bool:
    """Whether another transaction could take the row for the collector right now."""
    query = select(table.c.digest).where(table.c[owner] == owner_id, table.c.digest == digest)
    with engine.connect() as connection, connection.begin():
        try:
            connection.execute(query.with_for_update(nowait=True)).one()
        except OperationalError:
            return False
    return True


def test_a_hold_locks_only_pending_reviews_of_its_project(engine: Engine) -> None:
    queued = _queue(engine, BLOB_REVIEW, "project_id", [FIRST, SECOND])
    other = "sha256:" + "c" * 64
    with engine.begin() as connection:
        connection.execute(
            BLOB_REVIEW.update().where(BLOB_REVIEW.c.digest == SECOND).values(state="deleting")
        )
        connection.execute(
            insert(BLOB_REVIEW).values(
                project_id=OWNER + 1,
                digest=FIRST,
                storage_id="other",
                state="review",
                event="manifest.delete",
                queued_at=queued,
                review_after=queued,
            )
        )
    with engine.connect() as pusher, pusher.begin():
        SqlReviewQueue(pusher).hold_reviews(OWNER, [FIRST, SECOND, other], OWNER, [])
        assert not _lockable(engine, BLOB_REVIEW, "project_id", OWNER, FIRST)
        assert _lockable(engine, BLOB_REVIEW, "project_id", OWNER, SECOND)
        assert _lockable(engine, BLOB_REVIEW, "project_id", OWNER + 1, FIRST)
    assert _lockable(engine, BLOB_REVIEW, "project_id", OWNER, FIRST)


@pytest.mark.parametrize("kind", ["blob-hold", "manifest-hold"])
def test_holds_of_one_image_never_wait_for_each_other_and_the_collector_passes_them_by(
    engine: Engine, kind: str
) -> None:
    table, owner, hold, _ = KINDS[kind]
    queued = _queue(engine, table, owner, [FIRST, SECOND])
    due = queued + timedelta(minutes=1)
    with engine.connect() as first, first.begin(), engine.connect() as second, second.begin():
        hold(SqlReviewQueue(first), [FIRST, SECOND], due)
        # A hold that had to wait would fail here instead of waiting for the commit.
        second.execute(text("SET LOCAL lock_timeout = '2s'"))
        hold(SqlReviewQueue(second), [FIRST, SECOND], due)
        with engine.connect() as collector, collector.begin():
            taken = _due(SqlCollector(collector), kind, due)
        assert taken == set()
    with engine.connect() as collector, collector.begin():
        assert _due(SqlCollector(collector), kind, due) == {FIRST, SECOND}


def _due(collector: SqlCollector, kind: str, due: datetime) -> set[str]:
    if kind == "blob-hold":
        return {review.digest for review in collector.due_blob_reviews(due, 10, lock=True)}
    return {review.digest for review in collector.due_manifest_reviews(due, 10, lock=True)}


def test_a_hold_waiting_for_a_blob_row_holds_no_manifest_row(engine: Engine) -> None:
    """The blob rows are taken before the manifest rows (``changes.hold_references``)."""
    _queue(engine, BLOB_REVIEW, "project_id", [FIRST])
    _queue(engine, MANIFEST_REVIEW, "repository_id", [FIRST])

    def push(connection: Connection) -> None:
        SqlReviewQueue(connection).hold_reviews(OWNER, [FIRST], OWNER, [FIRST])

    _waits_without_taking(engine, push, (BLOB_REVIEW, FIRST), (MANIFEST_REVIEW, FIRST))
