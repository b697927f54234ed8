"""GC throughput and worker memory: blobs reviewed and collected per minute on each backend.

``python -m bench.gc [--blobs N] [--batch B]`` makes ``N`` unreferenced blobs (objects in
the store, rows linked into a repository, review rows due) plus ``N/4`` referenced ones
(listed by manifests) on SQLite + filesystem and on PostgreSQL + S3 (SeaweedFS), then runs
the collector's batches of ``B`` to completion in a fresh worker process with the GC
activity's loop (``core.services.gc_overlap``): batches of reviews decided while the
tombstoned objects are deleted a batch at a time beside them. It prints blobs reviewed and
collected per minute and the worker's resident memory before the run and at its peak. The
fill writes rows in bulk and objects from a thread pool, so that it takes less time than the
run it prepares; nothing here asserts on time.

``--orphans`` measures the orphan sweep instead: ``N`` live blobs (objects with rows) and
``N/100`` orphans (objects without), then one ``sweep_orphans`` in a fresh worker process;
it prints the sweep's time and the worker's resident memory before and at peak.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy
from pydantic import SecretStr

from activities.gc import MAX_BATCHES
from cli.composition import compose
from core.control_settings import ControlSettings
from core.digests import Digest
from core.names import RepositoryName
from core.records import NewManifest, RepositoryRecord
from core.services.gc_overlap import collect_blobs_overlapped
from core.settings import S3Settings, Settings, StorageBackend
from storage.db.control_tables import GcBlobReview
from storage.db.migrate import upgrade
from storage.db.repos.base import table_of
from storage.db.tables import Blob, RepositoryBlob
from tests.services.postgres import start_postgres
from tests.services.seaweedfs import start_seaweedfs

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from cli.composition import Composition
    from core.ports import BlobStore

BACKENDS = ("sqlite-fs", "pg-s3")
BUCKET = "bench-gc"
#: Rows one bulk insert of the fill writes; blobs one manifest of the fill lists.
ROWS = 5000
MANIFEST_BLOBS = 1000
#: Threads writing the fill's objects.
WRITERS = 16
_BLOB, _LINK, _REVIEW = table_of(Blob), table_of(RepositoryBlob), table_of(GcBlobReview)


def _digests(count: int, seed: str) -> Iterator[tuple[Digest, bytes]]:
    for i in range(count):
        data = f"{seed}:{i}".encode().ljust(256, b".")
        yield Digest.of(data), data


def _put_objects(store: BlobStore, tenant: str, count: int, seed: str) -> None:
    with ThreadPoolExecutor(WRITERS) as pool:
        blobs = _digests(count, seed)
        while chunk := list(islice(blobs, ROWS)):
            list(pool.map(lambda blob: store.put_blob(tenant, blob[0], blob[1]), chunk))


def _insert_rows(
    settings: Settings, repository: RepositoryRecord, count: int, seed: str, due: bool
) -> list[int]:
    """Blob rows linked into the repository (with due reviews if ``due``); their ids."""
    engine = sqlalchemy.create_engine(settings.resolved_database_url)
    now = datetime.now(UTC)
    ids: list[int] = []
    try:
        blobs = _digests(count, seed)
        while chunk := [str(digest) for digest, _ in islice(blobs, ROWS)]:
            with engine.begin() as connection:
                connection.execute(
                    sqlalchemy.insert(_BLOB),
                    [
                        {"project_id": repository.project_id, "digest": d, "size": 256}
                        | {"created_at": now}
                        for d in chunk
                    ],
                )
                query = sqlalchemy.select(_BLOB.c.id).where(
                    _BLOB.c.project_id == repository.project_id, _BLOB.c.digest.in_(chunk)
                )
                chunk_ids = list(connection.execute(query).scalars())
                connection.execute(
                    sqlalchemy.insert(_LINK),
                    [
                        {"repository_id": repository.id, "blob_id": i, "created_at": now}
                        for i in chunk_ids
                    ],
                )
                if due:
                    connection.execute(sqlalchemy.insert(_REVIEW), _reviews(repository, chunk))
            ids.extend(chunk_ids)
    finally:
        engine.dispose()
    return ids


def _reviews(repository: RepositoryRecord, digests: list[str]) -> list[dict[str, Any]]:
    queued = datetime.now(UTC) - timedelta(minutes=1)
    return [
        {
            "project_id": repository.project_id,
            "digest": digest,
            "storage_id": repository.storage_id,
            "state": "review",
            "event": "blob_upload",
            "queued_at": queued,
            "review_after": queued,
            "review_count": 0,
            "size": 0,
        }
        for digest in digests
    ]


def fill(settings: Settings, count: int, *, orphans: bool = False) -> dict[str, Any]:
    """``count`` unreferenced blobs with due reviews and ``count // 4`` referenced ones.

    With ``orphans``: ``count`` live blobs (objects with rows, no reviews) and
    ``count // 100`` orphans (objects without rows) instead.
    """
    root = compose(settings)
    start = time.perf_counter()
    try:
        repository = root.repositories.ensure(
            RepositoryName.parse(f"bench{secrets.token_hex(4)}/app"), create_project=True
        )
        if orphans:
            _put_objects(root.store, repository.storage_id, count, "live")
            _put_objects(root.store, repository.storage_id, count // 100, "orphan")
            _insert_rows(settings, repository, count, "live", due=False)
            filled = {"orphans": count // 100}
        else:
            filled = {"referenced": _fill_garbage(root, settings, repository, count)}
    finally:
        root.close()
    return {
        "tenant": repository.storage_id,
        **filled,
        "fill_seconds": round(time.perf_counter() - start, 1),
    }


def _fill_garbage(
    root: Composition, settings: Settings, repository: RepositoryRecord, count: int
) -> int:
    """The blob step's fill (see :func:`fill`); how many blobs are referenced."""
    referenced = count // 4
    _put_objects(root.store, repository.storage_id, count, "gone")
    _put_objects(root.store, repository.storage_id, referenced, "kept")
    _insert_rows(settings, repository, count, "gone", due=True)
    kept_ids = _insert_rows(settings, repository, referenced, "kept", due=True)
    for first in range(0, len(kept_ids), MANIFEST_BLOBS):
        blob_ids = tuple(kept_ids[first : first + MANIFEST_BLOBS])
        payload = json.dumps({"blobs": blob_ids[0], "n": first}).encode()
        with root.metadata.write() as session:
            manifest = NewManifest(
                str(Digest.of(payload)), "x", None, None, None, payload, blob_ids, ()
            )
            session.manifests.add(repository.id, manifest)
            session.commit()
    return referenced


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _worker_run(
    settings: Settings, tenant: str, work: Callable[[Composition], dict[str, int]]
) -> dict[str, Any]:
    """Run ``work`` in this process: its counters, seconds, objects left and memory."""
    root = compose(settings)
    try:
        before = _rss_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # NOTE: VmHWM restarts from VmRSS
        start = time.perf_counter()
        counters = work(root)
        seconds = time.perf_counter() - start
        peak = _rss_kib("VmHWM")
        left = sum(1 for _ in root.store.list_blobs(tenant))
    finally:
        root.close()
    return {
        **counters,
        "objects_left": left,
        "seconds": seconds,
        "worker_rss_before_mib": round(before / 1024, 1),
        "worker_rss_peak_mib": round(peak / 1024, 1),
    }


def collect(settings: Settings, batch: int, tenant: str) -> dict[str, Any]:
    """The worker's side: run the blob step's batches to completion, as the activity does."""

    def work(root: Composition) -> dict[str, int]:
        collector = root.collector
        due = datetime.now(UTC) + timedelta(seconds=1)
        decided = collect_blobs_overlapped(collector, due, batch, max_batches=MAX_BATCHES)
        return {"reviewed": decided.reviewed, "collected": decided.deleted, "kept": decided.kept}

    result = _worker_run(settings, tenant, work)
    seconds = result["seconds"]
    return result | {
        "seconds": round(seconds, 1),
        "reviewed_per_minute": round(result["reviewed"] / seconds * 60),
        "collected_per_minute": round(result["collected"] / seconds * 60),
    }


def sweep(settings: Settings, tenant: str) -> dict[str, Any]:
    """The worker's side of ``--orphans``: one orphan sweep, as the activity runs it."""

    def work(root: Composition) -> dict[str, int]:
        # NOTE: no grace: the orphans are first seen and deleted in this one sweep
        report = root.collector.sweep_orphans(datetime.now(UTC), timedelta(0), False)
        return {"orphans_deleted": report.deleted}

    result = _worker_run(settings, tenant, work)
    seconds = result["seconds"]
    return result | {
        "seconds": round(seconds, 1),
        "objects_per_minute": round(result["objects_left"] / seconds * 60),
    }


def _in_worker(work: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``work`` in a fresh process (its memory is the worker's alone)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(work, args)
    return result


def measure(settings: Settings, count: int, batch: int, orphans: bool) -> dict[str, Any]:
    upgrade(settings)
    # Reviews due at once: the collector takes every review the fill queued.
    control = ControlSettings(gc_review_delay_seconds=0, gc_batch_size=batch)
    settings = settings.model_copy(update={"control": control})
    if orphans:
        filled = fill(settings, count, orphans=True)
        return {"live": count, **filled, **_in_worker(sweep, settings, filled["tenant"])}
    filled = fill(settings, count)
    return {
        "blobs": count,
        "batch": batch,
        **filled,
        **_in_worker(collect, settings, batch, filled["tenant"]),
    }


def _pg_s3(root: Path, count: int, batch: int, orphans: bool) -> dict[str, Any]:
    postgres = start_postgres(root / "pg")
    try:
        s3 = start_seaweedfs(root / "seaweedfs", BUCKET)
        try:
            settings = Settings(
                data_dir=root / "pgs3",
                database_url=postgres.create_database("bench_gc"),
                storage=StorageBackend.S3,
                s3=S3Settings(
                    endpoint_url=s3.endpoint_url,
                    bucket=BUCKET,
                    access_key_id=s3.access_key_id,
                    secret_access_key=SecretStr(s3.secret_access_key),
                ),
            )
            return measure(settings, count, batch, orphans)
        finally:
            s3.stop()
    finally:
        postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blobs", type=int, default=2000, help="unreferenced blobs to collect")
    parser.add_argument("--batch", type=int, default=1000, help="GC batch size (gc_batch_size)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument(
        "--orphans",
        action="store_true",
        help="sweep orphans over --blobs live blobs (and 1%% orphans) instead",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        for backend in args.backends.split(","):
            if backend == "sqlite-fs":
                settings = Settings(data_dir=root / "sqlite")
                result = measure(settings, args.blobs, args.batch, args.orphans)
            elif backend == "pg-s3":
                result = _pg_s3(root, args.blobs, args.batch, args.orphans)
            else:
                parser.error(f"unknown backend {backend!r}")
            print(backend, json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
