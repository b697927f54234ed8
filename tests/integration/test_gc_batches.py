"""GC at scale on PostgreSQL + S3: a batch's objects go in DeleteObjects requests of 1000 keys.

The collector runs in-process against a real PostgreSQL and S3 server (moto); the S3
client counts the DeleteObjects requests it sends.
"""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from cli.composition import compose
from core.control_settings import ControlSettings
from core.digests import Digest
from core.names import RepositoryName
from core.records import NewManifest
from core.services.gc import GarbageCollector
from core.settings import S3Settings, Settings, StorageBackend
from storage.blobs.s3 import S3BlobStore
from storage.blobs.s3_client import make_client
from storage.db.migrate import upgrade
from tests.conftest import create_bucket

if TYPE_CHECKING:
    from pathlib import Path

    from tests.services.postgres import Postgres
    from tests.services.s3 import S3Server

UNREFERENCED, REFERENCED, BATCH = 2500, 300, 1000
#: Unreferenced blobs whose objects are gone before GC runs (a crashed earlier delete).
ALREADY_GONE = 10


def _blob(kind: str, i: int) -> tuple[Digest, bytes]:
    data = f"{kind}-{i}-{secrets.token_hex(8)}".encode()
    return Digest.of(data), data


def test_a_sweep_over_thousands_of_blobs_deletes_each_unreferenced_one_in_few_requests(
    tmp_path: Path, postgres: Postgres, s3: S3Server
) -> None:
    s3_settings = S3Settings(
        endpoint_url=s3.endpoint_url,
        bucket=create_bucket(s3, f"gcbatch-{secrets.token_hex(4)}"),
        access_key_id=s3.access_key_id,
        secret_access_key=SecretStr(s3.secret_access_key),
    )
    settings = Settings(
        data_dir=tmp_path,
        database_url=postgres.create_database(f"gcbatch_{secrets.token_hex(4)}"),
        storage=StorageBackend.S3,
        s3=s3_settings,
        control=ControlSettings(gc_review_delay_seconds=0),
    )
    upgrade(settings)
    client = make_client(s3_settings)
    requests: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        requests.append(len(params["Delete"]["Objects"]))

    client.meta.events.register("provide-client-params.s3.DeleteObjects", count)
    store = S3BlobStore(s3_settings, client)
    root = compose(settings)
    try:
        repository = root.repositories.ensure(
            RepositoryName.parse(f"gc{secrets.token_hex(4)}/app"), create_project=True
        )
        tenant = repository.storage_id
        gone = [_blob("gone", i) for i in range(UNREFERENCED)]
        kept = [_blob("kept", i) for i in range(REFERENCED)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda blob: store.put_blob(tenant, *blob), gone + kept))
        kept_ids = []
        with root.metadata.write() as session:
            for digest, data in gone + kept:
                blob = session.blobs.add(repository.project_id, str(digest), len(data))
                session.blobs.link(repository.id, blob.id)
                root.changes.blob_may_be_unreferenced(
                    session, repository, str(digest), "blob_upload"
                )
                if (digest, data) in kept:
                    kept_ids.append(blob.id)
            payload = json.dumps({"layers": len(kept_ids)}).encode()
            manifest = NewManifest(
                str(Digest.of(payload)), "x", None, None, None, payload, tuple(kept_ids), ()
            )
            session.manifests.add(repository.id, manifest)
            session.commit()
        for digest, _ in gone[:ALREADY_GONE]:
            store.delete_blob(tenant, digest)
        requests.clear()

        collector = GarbageCollector(root.metadata, store, root.changes)
        due = datetime.now(UTC) + timedelta(seconds=1)
        reviewed = deleted = 0
        for _ in range(10):
            decided = collector.collect_blobs(due, BATCH, False)
            while collector.finish_tombstones(BATCH):
                pass
            reviewed, deleted = reviewed + decided.reviewed, deleted + decided.deleted
            if decided.reviewed == 0:
                break

        left = set(store.list_blobs(tenant))
        with root.metadata.read() as session:
            rows = {
                d for d, _ in gone + kept if session.blobs.in_project(repository.project_id, str(d))
            }
            tombstones = session.collector.blob_tombstones(BATCH, lock=False)
    finally:
        root.close()
    assert (reviewed, deleted) == (UNREFERENCED + REFERENCED, UNREFERENCED)
    assert left == {digest for digest, _ in kept}
    assert rows == {digest for digest, _ in kept}
    assert tombstones == []
    # NOTE: one request per batch of tombstones: ceil(2500 / 1000) batches of keys.
    assert len(requests) == -(-UNREFERENCED // BATCH)
    assert sum(requests) == UNREFERENCED
