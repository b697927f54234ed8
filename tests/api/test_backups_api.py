"""The backups API: admins only, complete backups listed newest first page by page, a
missing backup 404, and no location configured 409."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from litestar.testing import TestClient

from api.app import create_app
from cli.composition import compose
from cli.startup import prepare_installation
from core.settings import Settings
from tests.api.oci import OCIClient, unique_project
from tests.services.process import free_port

if TYPE_CHECKING:
    from pathlib import Path

BASE = "/api/v1/system/backups"


def _settings(root: Path, password: str, *, location: bool) -> Settings:
    backup: dict[str, Any] = {"path": str(root / "backups")} if location else {}
    auth: dict[str, Any] = {"admin_password": password, "create_project_on_push": True}
    settings = Settings(data_dir=root / "data", auth=auth, backup=backup)  # type: ignore[arg-type]
    prepare_installation(settings)
    return settings


def test_backups_are_listed_newest_first_for_admins_only(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(12)
    settings = _settings(tmp_path, password, location=True)
    admin = ("admin", password)
    with TestClient(create_app(settings)) as http:
        project = unique_project()
        OCIClient(http, password).push_image(f"{project}/app", "v1")
        root = compose(settings)
        made = []
        for _ in range(3):  # NOTE: the workflow's steps, in order, without Temporal
            backup_id = root.backups.new_id()
            root.backups.begin(backup_id, None)
            root.backups.copy_blobs(backup_id, lambda _done: None)
            made.append(root.backups.finish(backup_id, None).id)
        root.close()
        first = http.get(f"{BASE}/", params={"limit": 2}, auth=admin)
        assert first.status_code == 200, first.text
        page = first.json()
        assert [b["id"] for b in page["items"]] == made[::-1][:2]
        assert page["items"][0]["projects"] == [project]
        assert page["items"][0]["blobs"] == 2
        assert 'rel="next"' in first.headers["link"]
        rest = http.get(f"{BASE}/", params={"limit": 2, "last": page["next"]}, auth=admin)
        assert [b["id"] for b in rest.json()["items"]] == made[:1]
        assert rest.json()["next"] is None
        one = http.get(f"{BASE}/{made[0]}", auth=admin).json()
        assert one["schema_revision"] == root.backups.get(made[0]).snapshot.revision
        assert http.get(f"{BASE}/20000101-000000-nothing", auth=admin).status_code == 404
        assert http.get(f"{BASE}/", auth=None).status_code == 401
        user = {"username": "dev", "password": "a-Long-passw0rd!"}
        assert http.post("/api/v1/users", json=user, auth=admin).status_code == 201
        assert http.get(f"{BASE}/", auth=("dev", user["password"])).status_code == 403


def test_without_temporal_a_backup_answers_503(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(12)
    settings = _settings(tmp_path, password, location=True)
    settings.temporal.address = f"127.0.0.1:{free_port()}"
    with TestClient(create_app(settings)) as http:
        answer = http.post(f"{BASE}/", json={}, auth=("admin", password))
        assert answer.status_code == 503, answer.text
        other = http.get(f"{BASE}/operations/gc-123", auth=("admin", password))
        assert other.status_code == 404, other.text


def test_without_a_location_a_backup_is_refused(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(12)
    settings = _settings(tmp_path, password, location=False)
    with TestClient(create_app(settings)) as http:
        answer = http.post(f"{BASE}/", json={}, auth=("admin", password))
        assert answer.status_code == 409, answer.text
        assert "backup.path" in answer.text
