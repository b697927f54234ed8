"""The backup service's steps in-process (the workflows run the same steps): a project
backup holds that project only and restores beside other projects; prune keeps the newest
backups and exactly the blobs they need."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from api.app import create_app
from cli.composition import Composition, compose
from cli.startup import prepare_installation
from core.backup import blob_key
from core.settings import Settings
from tests.api.oci import OCIClient, unique_project


def _settings(root: Path, password: str, location: Path) -> Settings:
    auth: dict[str, Any] = {"admin_password": password, "create_project_on_push": True}
    backup: dict[str, Any] = {"path": str(location)}
    settings = Settings(data_dir=root, auth=auth, backup=backup)  # type: ignore[arg-type]
    prepare_installation(settings)
    return settings


def _backup(root: Composition, project: str | None = None) -> str:
    backup_id = root.backups.new_id()
    root.backups.begin(backup_id, project)
    root.backups.copy_blobs(backup_id, lambda _done: None)
    return root.backups.finish(backup_id, project).id


def test_a_project_backup_restores_beside_other_projects(tmp_path: Path) -> None:
    password, location = secrets.token_urlsafe(12), tmp_path / "backups"
    source = _settings(tmp_path / "a", password, location)
    wanted, other = unique_project(), unique_project()
    with TestClient(create_app(source)) as http:
        oci = OCIClient(http, password)
        image = oci.push_image(f"{wanted}/app", "v1")
        oci.push_image(f"{other}/app", "v1")
    root = compose(source)
    backup = root.backups.get(_backup(root, wanted))
    root.close()
    assert backup.project == wanted
    assert [p.name for p in backup.snapshot.projects] == [wanted]
    assert len(backup.snapshot.blobs) == 2
    assert "audit_event" not in backup.snapshot.rows
    target = _settings(tmp_path / "b", password, location)
    with TestClient(create_app(target)) as http:
        oci = OCIClient(http, password)
        there = oci.push_image(f"{unique_project()}/app", "v1")
        restored = compose(target)
        tenants = restored.backups.plan_restore(backup.id, wanted)
        restored.backups.restore_blobs(backup.id, wanted, tenants, lambda _done: None)
        rows = restored.backups.restore_rows(backup.id, wanted, tenants)
        assert rows["project"] == 1
        assert restored.backups.restore_rows(backup.id, wanted, tenants) == {}  # a retry
        assert restored.audit_store.verify().ok
        restored.close()
        repo = f"{wanted}/app"
        assert oci.request("GET", f"/v2/{repo}/manifests/v1", repo).content == image.payload
        for digest in image.blobs:
            assert oci.request("GET", f"/v2/{repo}/blobs/{digest}", repo).status_code == 200
        assert there.digest  # the target's own project is untouched (its push succeeded)


def test_prune_keeps_the_newest_backups_and_their_blobs(tmp_path: Path) -> None:
    password, location = secrets.token_urlsafe(12), tmp_path / "backups"
    settings = _settings(tmp_path / "a", password, location)
    root = compose(settings)
    made = []
    with TestClient(create_app(settings)) as http:
        oci = OCIClient(http, password)
        gone = unique_project()
        oci.push_image(f"{gone}/app", "v1")
        oci.push_image(f"{unique_project()}/app", "v1")
        made.append(_backup(root))
        deleted_project = http.delete(f"/api/v1/projects/{gone}", auth=("admin", password))
        assert deleted_project.status_code == 204
        made.append(_backup(root))
        made.append(_backup(root))
    removed, deleted = root.backups.prune(2)
    assert removed == made[:1]
    kept = [b.id for b in root.backups.all()]
    assert kept == made[:0:-1]
    needed = {blob_key("plain", b.digest) for b in root.backups.get(made[-1]).snapshot.blobs}
    stored = {p.relative_to(location).as_posix() for p in (location / "blobs").rglob("*")}
    assert {k for k in stored if k.count("/") == 3} == needed
    assert deleted == 2  # the deleted project's config and layer
    assert root.backups.verify(made[-1], lambda _done: None).ok
    root.close()
