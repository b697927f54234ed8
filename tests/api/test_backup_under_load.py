"""A backup taken while images are pushed, deleted and garbage-collected restores to a
registry in which every tag it holds pulls (manifest and every blob)."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from adapters.clock import SystemClock
from api.app import create_app
from cli.composition import compose
from cli.startup import prepare_installation
from core.services.changes import ChangeRecorder
from core.services.gc import GarbageCollector
from core.settings import Settings
from tests.api.oci import OCIClient, Pushed, unique_project

ROUNDS = 40
GRACE = timedelta(seconds=1)
BOUND = 120.0


def _settings(root: Path, password: str, location: Path) -> Settings:
    auth: dict[str, Any] = {"admin_password": password, "create_project_on_push": True}
    backup: dict[str, Any] = {"path": str(location)}
    settings = Settings(data_dir=root, auth=auth, backup=backup)  # type: ignore[arg-type]
    prepare_installation(settings)
    return settings


def _push(oci: OCIClient, repo: str, tag: str) -> Pushed:
    """Push an image; again (bounded) when GC took its blobs before its manifest came.

    GC here keeps unreferenced blobs only ``GRACE``; on a loaded machine a push can take
    longer than that between its blobs and its manifest, which the registry then refuses
    with ``MANIFEST_BLOB_UNKNOWN``, as it must. A client uploads the blobs again.
    """
    for _ in range(3):
        try:
            return oci.push_image(repo, tag)
        except AssertionError as refused:
            if "MANIFEST_BLOB_UNKNOWN" not in str(refused):
                raise
    return oci.push_image(repo, tag)


def _churn(oci: OCIClient, repo: str, stop: threading.Event, errors: list[BaseException]) -> None:
    """Push, tag, delete and push again until told to stop (bounded)."""
    try:
        for i in range(ROUNDS):
            if stop.is_set():
                return
            pushed = _push(oci, repo, f"t{i}")
            if i % 2:
                oci.request("DELETE", f"/v2/{repo}/manifests/{pushed.digest}", repo)
    except BaseException as exc:  # NOTE: reported by the test
        errors.append(exc)


def _collect(gc: GarbageCollector, stop: threading.Event, errors: list[BaseException]) -> None:
    try:
        deadline = time.monotonic() + BOUND
        while not stop.is_set() and time.monotonic() < deadline:
            now = datetime.now(UTC) - GRACE  # NOTE: a push's blobs live before its manifest
            gc.collect_manifests(now, 100, False)
            gc.collect_blobs(now, 100, False)
            gc.finish_tombstones(100)
    except BaseException as exc:  # NOTE: reported by the test
        errors.append(exc)


def test_a_backup_under_push_delete_and_gc_restores_every_tag(tmp_path: Path) -> None:
    password, location = secrets.token_urlsafe(12), tmp_path / "backups"
    source = _settings(tmp_path / "a", password, location)
    root = compose(source)
    gc = GarbageCollector(
        root.metadata, root.store, ChangeRecorder(0, 0.85, SystemClock()), root.backup_holds
    )
    stop = threading.Event()
    errors: list[BaseException] = []
    with TestClient(create_app(source)) as http:
        oci = OCIClient(http, password)
        repo = f"{unique_project()}/app"
        for i in range(5):
            oci.push_image(repo, f"base{i}")
        workers = [
            threading.Thread(target=_churn, args=(oci, repo, stop, errors)),
            threading.Thread(target=_collect, args=(gc, stop, errors)),
        ]
        for worker in workers:
            worker.start()
        try:
            backup_id = root.backups.new_id()
            root.backups.begin(backup_id, None)
            root.backups.copy_blobs(backup_id, lambda _done: None)
            root.backups.finish(backup_id, None)
        finally:
            stop.set()
            for worker in workers:
                worker.join(BOUND)
    root.close()
    assert not errors, errors
    target = _settings(tmp_path / "b", password, location)
    restored = compose(target)
    assert restored.backups.verify(backup_id, lambda _done: None).ok
    tenants = restored.backups.plan_restore(backup_id, None)
    restored.backups.restore_blobs(backup_id, None, tenants, lambda _done: None)
    restored.backups.restore_rows(backup_id, None, tenants)
    restored.close()
    with TestClient(create_app(target)) as http:
        oci = OCIClient(http, password)
        tags = oci.request("GET", f"/v2/{repo}/tags/list", repo).json()["tags"]
        assert {f"base{i}" for i in range(5)} <= set(tags)
        for tag in tags:
            manifest = oci.request("GET", f"/v2/{repo}/manifests/{tag}", repo)
            assert manifest.status_code == 200, tag
            body = manifest.json()
            for blob in [body["config"], *body["layers"]]:
                got = oci.request("GET", f"/v2/{repo}/blobs/{blob['digest']}", repo)
                assert got.status_code == 200, (tag, blob["digest"])
