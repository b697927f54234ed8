"""GC throughput: blobs reviewed and deleted per minute on each backend.

``python -m bench.gc [--blobs N]`` makes ``N`` unreferenced blobs (objects in the store,
rows linked, review rows due) plus ``N/4`` referenced ones on SQLite + filesystem and on
PostgreSQL + S3 (moto), then runs the collector's batches to completion and prints the
rates. Nothing here asserts on time; the numbers go into reports.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cli.composition import compose
from core.control_settings import ControlSettings
from core.digests import Digest
from core.names import RepositoryName
from core.ports import BlobStore, Metadata
from core.records import NewManifest, RepositoryRecord
from core.services.changes import ChangeRecorder
from core.services.gc import GarbageCollector
from core.services.gc_report import GcReport
from core.settings import Settings
from storage.db.migrate import upgrade
from tests.conftest import create_bucket
from tests.services.postgres import start_postgres
from tests.services.s3 import start_moto

BATCH = 100


def _fill(
    metadata: Metadata,
    store: BlobStore,
    changes: ChangeRecorder,
    repository: RepositoryRecord,
    count: int,
    referenced: int,
) -> None:
    blob_ids: list[int] = []
    for i in range(count + referenced):
        data = uuid.uuid4().bytes * 16
        digest = Digest.of(data)
        store.put_blob(repository.storage_id, digest, data)
        with metadata.write() as session:
            blob = session.blobs.add(repository.project_id, str(digest), len(data))
            session.blobs.link(repository.id, blob.id)
            changes.blob_may_be_unreferenced(session, repository, str(digest), "blob_upload")
            session.commit()
        if i >= count:
            blob_ids.append(blob.id)
    payload = json.dumps({"n": uuid.uuid4().hex}).encode()
    with metadata.write() as session:
        session.manifests.add(
            repository.id,
            NewManifest(
                str(Digest.of(payload)), "x", None, None, None, payload, tuple(blob_ids), ()
            ),
        )
        session.commit()


def _collect(collector: GarbageCollector) -> GcReport:
    total = GcReport()
    due = datetime.now(UTC) + timedelta(seconds=1)
    while True:
        batch = collector.collect_blobs(due, BATCH, False)
        while collector.finish_tombstones(BATCH):
            pass
        total.add(batch)
        if batch.reviewed == 0:
            return total


def measure(settings: Settings, count: int) -> dict[str, Any]:
    upgrade(settings)
    # Reviews due at once: the collector finds every blob the fill queued.
    settings = settings.model_copy(update={"control": ControlSettings(gc_review_delay_seconds=0)})
    root = compose(settings)
    try:
        repository = root.repositories.ensure(
            RepositoryName.parse(f"bench{secrets.token_hex(4)}/app"), create_project=True
        )
        _fill(root.metadata, root.store, root.changes, repository, count, count // 4)
        start = time.perf_counter()
        report = _collect(root.collector)
        seconds = time.perf_counter() - start
    finally:
        root.close()
    return {
        "reviewed": report.reviewed,
        "deleted": report.deleted,
        "kept": report.kept,
        "seconds": round(seconds, 2),
        "reviewed_per_minute": round(report.reviewed / seconds * 60),
        "deleted_per_minute": round(report.deleted / seconds * 60),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blobs", type=int, default=2000)
    count = parser.parse_args().blobs
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print("sqlite-fs", measure(Settings(data_dir=root / "sqlite"), count), flush=True)
        postgres, s3 = start_postgres(root / "pg"), start_moto(root / "moto")
        try:
            settings = Settings(
                data_dir=root / "pgs3",
                database_url=postgres.create_database("bench_gc"),
                storage="s3",  # type: ignore[arg-type]
                s3={  # type: ignore[arg-type]
                    "endpoint_url": s3.endpoint_url,
                    "bucket": create_bucket(s3, f"bench-{secrets.token_hex(4)}"),
                    "access_key_id": s3.access_key_id,
                    "secret_access_key": s3.secret_access_key,
                },
            )
            print("pg-s3", measure(settings, count), flush=True)
        finally:
            s3.stop()
            postgres.stop()


if __name__ == "__main__":
    main()
