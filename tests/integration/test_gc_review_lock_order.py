"""A push's re-arm of its GC reviews locks the rows in digest order on PostgreSQL.

Two pushes of one image re-arm the same review rows at once. If each locked the rows in
the order of the index or table it happened to scan (an order that moves as the rows are
re-armed, since ``queued_at`` is indexed), each could hold a row the other waits for:
PostgreSQL then refuses one push with a deadlock. Here a transaction holds the first
digest's row while the re-arm runs on a plan that meets the rows in the opposite order
(the table's, with index scans off): the re-arm must wait for the first row without
having taken the second. SQLite has no row locks (its writers take turns on the database
lock), so there is nothing to order there.
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
from storage.db.repos.reviews import BLOB_REVIEW, MANIFEST_REVIEW, SqlReviewQueue
from tests.services.postgres import Postgres

OWNER = 7
FIRST, SECOND = "sha256:" + "a" * 64, "sha256:" + "b" * 64
#: Bound on the re-arm reaching its lock wait, and on it finishing once let go.
WAIT_SECONDS = 30.0

_Rearm = Callable[[SqlReviewQueue, list[str], datetime], None]
KINDS: dict[str, tuple[Table, str, _Rearm]] = {
    "blob": (
        BLOB_REVIEW,
        "project_id",
        lambda reviews, digests, after: reviews.touch_blob_reviews(OWNER, digests, after),
    ),
    "manifest": (
        MANIFEST_REVIEW,
        "repository_id",
        lambda reviews, digests, after: reviews.touch_manifest_reviews(OWNER, digests, after),
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
    pytest.fail("the re-arm never waited for the held row")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_re_arm_waiting_for_a_row_holds_no_row_of_a_later_digest(
    engine: Engine, kind: str
) -> None:
    table, owner, rearm = KINDS[kind]
    queued = _queue(engine, table, owner, [SECOND, FIRST])
    after = datetime.now(UTC) + timedelta(days=1)
    backend: list[int] = []
    failed: list[BaseException] = []

    def push() -> None:
        try:
            with engine.connect() as connection, connection.begin():
                # A plan that meets the rows in table order: SECOND, then FIRST.
                connection.execute(text("SET LOCAL enable_indexscan = off"))
                connection.execute(text("SET LOCAL enable_bitmapscan = off"))
                backend.append(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
                rearm(SqlReviewQueue(connection), [FIRST, SECOND], after)
        except BaseException as exc:  # reported by the test thread
            failed.append(exc)

    with engine.connect() as holder, holder.begin():
        _lock(holder, table, FIRST)
        pusher = threading.Thread(target=push)
        pusher.start()
        _wait_for_lock_wait(engine, lambda: backend[0] if backend else None, failed)
        try:
            _lock(holder, table, SECOND, nowait=True)
        except OperationalError as exc:
            pytest.fail(f"the re-arm locked {SECOND} while it waited for {FIRST}: {exc}")
    pusher.join(WAIT_SECONDS)
    assert not pusher.is_alive()
    assert failed == []

    with engine.connect() as connection:
        rows = connection.execute(select(table.c.digest, table.c.queued_at, table.c.review_after))
        armed = {row.digest: (row.queued_at > queued, row.review_after) for row in rows}
    assert armed == {FIRST: (True, after), SECOND: (True, after)}


def test_a_re_arm_leaves_tombstones_and_other_projects_alone(engine: Engine) -> None:
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
    after = datetime.now(UTC) + timedelta(days=1)
    with engine.begin() as connection:
        SqlReviewQueue(connection).touch_blob_reviews(OWNER, [FIRST, SECOND, other], after)
    with engine.connect() as connection:
        rows = connection.execute(
            select(BLOB_REVIEW.c.project_id, BLOB_REVIEW.c.digest, BLOB_REVIEW.c.review_after)
        )
        armed = {(row.project_id, row.digest): row.review_after for row in rows}
    assert armed == {
        (OWNER, FIRST): after,
        (OWNER, SECOND): queued,
        (OWNER + 1, FIRST): queued,
    }
