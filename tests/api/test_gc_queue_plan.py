"""The collector's batch queries use the queue index, on SQLite and on PostgreSQL.

With a million blobs queued for review, a batch that scans and sorts the whole queue
costs a tenth of a second or more before it decides anything (issue 17's GC at scale);
the planner must take ``ix_gc_blob_review_queue`` for the due reviews (in queue order)
and for the tombstones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy
from sqlalchemy import event

from cli.composition import compose

if TYPE_CHECKING:
    from core.settings import Settings

INDEX = "ix_gc_blob_review_queue"


def _plan(connection: sqlalchemy.Connection, statement: str, parameters: Any) -> str:
    """The query plan of ``statement`` as the database would run it, as text."""
    driver = connection.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    if connection.dialect.name == "sqlite":
        cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return "\n".join(str(row) for row in cursor.fetchall())
    # An empty table is cheapest to scan; ask whether the index can serve the query.
    cursor.execute("SET LOCAL enable_seqscan = off")
    cursor.execute(f"EXPLAIN {statement}", parameters)
    return "\n".join(str(row[0]) for row in cursor.fetchall())


def test_the_collectors_batches_read_the_queue_through_its_index(app_settings: Settings) -> None:
    root = compose(app_settings)
    seen: list[tuple[str, Any]] = []

    def on_execute(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "gc_blob_review" in statement:
            seen.append((statement, parameters))

    engine = root.engines.write
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        with root.metadata.write() as session:
            session.collector.due_blob_reviews(datetime.now(UTC), 1000, lock=True)
            session.collector.blob_tombstones(1000, lock=True)
            session.collector.blob_tombstones(1000, lock=True, quarantined=True)
        event.remove(engine, "before_cursor_execute", on_execute)
        assert len(seen) == 3, seen
        with engine.begin() as connection:
            plans = [_plan(connection, statement, parameters) for statement, parameters in seen]
    finally:
        root.close()
    for (statement, _), plan in zip(seen, plans, strict=True):
        assert INDEX in plan, (statement, plan)
    # The due reviews come in queue order from the index: no sort of the queue.
    assert "ORDER BY" in seen[0][0].upper()
    assert "TEMP B-TREE" not in plans[0].upper(), plans[0]
    assert "SORT" not in plans[0].upper().replace("SORT KEY", ""), plans[0]
