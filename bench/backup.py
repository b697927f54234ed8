"""Backup and restore throughput (GB/min) on each backend.

``python -m bench.backup [--mb TOTAL] [--blob-mb SIZE]`` stores ``TOTAL`` MiB of random blobs
(``SIZE`` MiB each, rows linked to one repository) in a fresh installation, then measures,
through the backup service the workflows call (snapshot, blob copy, manifest):

- a whole-installation backup (every blob copied to the backup location),
- a second backup with nothing new (every blob found in the location, none copied),
- a restore of the first backup into a fresh, empty installation on new storage;

on SQLite + filesystem (backup to a directory) and on PostgreSQL + S3 (moto; backup to
another bucket, server-side copies). Temporal is not involved: its cost per backup is a
few workflow steps. Nothing here asserts on time; the numbers go into reports.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from cli.composition import compose
from cli.startup import prepare_installation
from core.backup_service import BackupService, CopyOutcome
from core.digests import Digest
from core.names import RepositoryName
from core.settings import Settings
from tests.conftest import create_bucket
from tests.services.postgres import Postgres, start_postgres
from tests.services.s3 import S3Server, start_moto

MIB = 1024 * 1024


def _fill(settings: Settings, total_mb: int, blob_mb: int) -> int:
    """Store ``total_mb`` MiB of random blobs in a new repository; the bytes stored."""
    root = compose(settings)
    stored = 0
    try:
        repository = root.repositories.ensure(
            RepositoryName.parse(f"bench{secrets.token_hex(4)}/app"), create_project=True
        )
        for _ in range(max(1, total_mb // blob_mb)):
            data = os.urandom(blob_mb * MIB)
            digest = Digest.of(data)
            root.store.put_blob(repository.storage_id, digest, data)
            with root.metadata.write() as session:
                blob = session.blobs.add(repository.project_id, str(digest), len(data))
                session.blobs.link(repository.id, blob.id)
                session.commit()
            stored += len(data)
    finally:
        root.close()
    return stored


def _backup(service: BackupService) -> tuple[str, CopyOutcome, float]:
    start = time.perf_counter()
    backup_id = service.new_id()
    service.begin(backup_id, None)
    outcome = service.copy_blobs(backup_id, lambda _: None)
    service.finish(backup_id, None)
    return backup_id, outcome, time.perf_counter() - start


def _restore(target: Settings, backup_id: str) -> tuple[CopyOutcome, float]:
    root = compose(target)
    try:
        service = root.backups
        start = time.perf_counter()
        tenants = service.plan_restore(backup_id, None)
        outcome = service.restore_blobs(backup_id, None, tenants, lambda _: None)
        service.restore_rows(backup_id, None, tenants)
        return outcome, time.perf_counter() - start
    finally:
        root.close()


def _rate(nbytes: int, seconds: float) -> float:
    return round(nbytes / 1e9 / (seconds / 60), 3) if seconds > 0 else 0.0


def measure(source: Settings, target: Settings, total_mb: int, blob_mb: int) -> dict[str, Any]:
    """Fill ``source``, back it up twice, restore into ``target``; times and GB/min."""
    prepare_installation(source)
    prepare_installation(target)
    stored = _fill(source, total_mb, blob_mb)
    root = compose(source)
    try:
        backup_id, first, first_s = _backup(root.backups)
        _, second, second_s = _backup(root.backups)
    finally:
        root.close()
    restored, restore_s = _restore(target, backup_id)
    return {
        "bytes": stored,
        "blobs": first.copied + first.skipped,
        "backup_seconds": round(first_s, 2),
        "backup_gb_per_minute": _rate(first.bytes_copied, first_s),
        "second_backup_seconds": round(second_s, 2),
        "second_backup_copied": second.copied,
        "restored_blobs": restored.copied,
        "restore_seconds": round(restore_s, 2),
        "restore_gb_per_minute": _rate(restored.bytes_copied, restore_s),
    }


#: An admin password of the bench installations (so none is generated and printed).
_AUTH = {"admin_password": secrets.token_urlsafe(16)}


def _sqlite_fs(root: Path, name: str) -> Settings:
    return Settings(
        data_dir=root / name,
        auth=_AUTH,  # type: ignore[arg-type]
        backup={"path": str(root / "backups")},  # type: ignore[arg-type]
    )


def _pg_s3(root: Path, name: str, postgres: Postgres, s3: S3Server, backups: str) -> Settings:
    return Settings(
        data_dir=root / name,
        auth=_AUTH,  # type: ignore[arg-type]
        database_url=postgres.create_database(f"bench_backup_{name}"),
        storage="s3",  # type: ignore[arg-type]
        s3={  # type: ignore[arg-type]
            "endpoint_url": s3.endpoint_url,
            "bucket": create_bucket(s3, f"bench-{name}-{secrets.token_hex(4)}"),
            "access_key_id": s3.access_key_id,
            "secret_access_key": s3.secret_access_key,
        },
        backup={"s3": {"bucket": backups, "key_prefix": "bench/"}},  # type: ignore[arg-type]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=2048, help="MiB of blobs to back up")
    parser.add_argument("--blob-mb", type=int, default=16, help="MiB per blob")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fs = root / "fs"
        result = measure(_sqlite_fs(fs, "source"), _sqlite_fs(fs, "target"), args.mb, args.blob_mb)
        print("sqlite-fs", result, flush=True)
        postgres, s3 = start_postgres(root / "pg"), start_moto(root / "moto")
        try:
            backups = create_bucket(s3, f"bench-backups-{secrets.token_hex(4)}")
            source = _pg_s3(root, "source", postgres, s3, backups)
            target = _pg_s3(root, "target", postgres, s3, backups)
            print("pg-s3", measure(source, target, args.mb, args.blob_mb), flush=True)
        finally:
            s3.stop()
            postgres.stop()


if __name__ == "__main__":
    main()
