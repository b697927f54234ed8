"""GC deletes no blob object while a backup holds it, and resumes once the hold is gone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from adapters.clock import SystemClock
from cli.composition import compose
from core.services.changes import ChangeRecorder
from core.services.gc import GarbageCollector
from core.settings import Settings
from tests.api.oci import OCIClient, digest_of, unique_project
from tests.api.test_gc import _registry, _stored


def test_a_backup_hold_keeps_objects_until_released(oci: OCIClient, app_settings: Settings) -> None:
    root = compose(app_settings)
    holds = root.backup_holds
    registry = _registry(oci)
    collector = GarbageCollector(
        registry.metadata, registry.store, ChangeRecorder(0, 0.85, SystemClock()), holds
    )
    repo = f"{unique_project()}/app"
    layer = uuid.uuid4().bytes * 100
    pushed = oci.push_image(repo, "v1", layers=[layer])
    assert oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo).status_code == 202
    hold = f"test-{uuid.uuid4().hex[:8]}"
    holds.take(hold, 600)
    try:
        assert holds.held()
        for _ in range(5):
            collector.collect_blobs(datetime.now(UTC), 1000, False)
            assert collector.finish_tombstones(1000) == 0
        assert _stored(oci, repo, digest_of(layer)), "GC deleted an object under a hold"
    finally:
        holds.release(hold)
        root.close()
    assert not holds.held()
    for _ in range(20):
        collector.collect_blobs(datetime.now(UTC), 1000, False)
        if collector.finish_tombstones(1000) == 0 and not _stored(oci, repo, digest_of(layer)):
            break
    assert not _stored(oci, repo, digest_of(layer))
