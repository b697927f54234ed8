"""The audit log: every path recorded, hash chain verification, queries, export, syslog,
purge with an anchor, pull sampling."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from litestar.testing import TestClient
from pydantic import SecretStr

from api.app import create_app
from cli.startup import prepare_installation
from core.identity_settings import AuditSettings
from core.settings import AuthSettings, Settings
from tests.api.identity_helpers import Api
from tests.api.oci import OCIClient
from tests.services.moorage import audit_verify
from tests.services.process import LOOPBACK


def _events(client: Any, auth: tuple[str, str], **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/audit", params={"limit": 1000, **params}, auth=auth)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_every_path_is_recorded(oci: OCIClient, repo: str) -> None:
    api = Api(oci.client, (oci.username, oci.password))
    user = api.user()
    project = repo.partition("/")[0]
    oci.push_image(repo, "v1")
    oci.client.get(f"/v2/{repo}/manifests/v1", headers={"X-Request-ID": "req-audit-1"})
    oci.client.get("/auth/token", auth=(user[0], "wrong"))
    oci.client.get(f"/api/v1/projects/{project}", auth=user)
    events = _events(oci.client, api.admin, project=project)
    by_action = {(e["action"], e["result"]) for e in events}
    assert ("push_manifest", "success") in by_action
    assert ("pull_manifest", "denied") in by_action
    denied = next(e for e in events if e["request_id"] == "req-audit-1")
    assert denied["status"] == 401
    assert denied["actor_kind"] == "anonymous"
    pushed = next(e for e in events if e["action"] == "push_manifest")
    assert pushed["actor"] == "admin"
    assert pushed["auth_method"] == "token"
    assert pushed["client"]
    assert "user_agent" in pushed
    failed = _events(oci.client, api.admin, actor=user[0], action="token")
    assert failed
    assert failed[0]["result"] == "denied"
    assert failed[0]["actor_kind"] == "unauthenticated"
    read = [
        e for e in _events(oci.client, api.admin, actor=user[0]) if e["action"] == "read_project"
    ]
    assert read
    assert read[0]["status"] == 404
    assert read[0]["auth_method"] == "password"


def test_pagination_and_jsonl_export(oci: OCIClient, repo: str) -> None:
    api = Api(oci.client, (oci.username, oci.password))
    for _ in range(3):
        oci.client.get(f"/v2/{repo}/tags/list")
    project = repo.partition("/")[0]
    first = oci.client.get("/api/v1/audit", params={"project": project, "limit": 2}, auth=api.admin)
    page = first.json()
    assert len(page["items"]) == 2
    assert page["next"]
    second = oci.client.get(
        "/api/v1/audit",
        params={"project": project, "limit": 2, "after": page["next"]},
        auth=api.admin,
    ).json()
    assert second["items"][0]["id"] > page["items"][1]["id"]
    exported = oci.client.get(
        "/api/v1/audit", params={"project": project, "format": "jsonl"}, auth=api.admin
    )
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert len(lines) >= 3
    assert all(line["project"] == project for line in lines)


def test_project_audit_for_project_admins_only(oci: OCIClient) -> None:
    api = Api(oci.client, (oci.username, oci.password))
    project = api.project()
    admin, guest, outsider = api.user(), api.user(), api.user()
    api.member(project, "admin", user=admin[0])
    api.member(project, "guest", user=guest[0])
    path = f"/api/v1/projects/{project}/audit"
    events = oci.client.get(path, auth=admin)
    assert events.status_code == 200
    assert all(e["project"] == project for e in events.json()["items"])
    assert oci.client.get(path, auth=guest).status_code == 403
    assert oci.client.get(path, auth=outsider).status_code == 404
    assert oci.client.get("/api/v1/audit", auth=admin).status_code == 403


@pytest.fixture
def audited(tmp_path: Path) -> Any:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((LOOPBACK, 0))
    receiver.settimeout(10)
    settings = Settings(
        data_dir=tmp_path,
        auth=AuthSettings(
            admin_password=SecretStr("admin-password-1"), create_project_on_push=True
        ),
        audit=AuditSettings(
            syslog_address=f"{LOOPBACK}:{receiver.getsockname()[1]}", pull_sample_rate=0
        ),
    )
    prepare_installation(settings)
    with TestClient(create_app(settings)) as client:
        yield client, settings, receiver
    receiver.close()


def test_chain_detects_edits_and_deletions(audited: Any) -> None:
    client, settings, _ = audited
    auth = ("admin", "admin-password-1")
    for _ in range(5):
        client.get("/v2/", auth=auth)
    assert len(_events(client, auth)) >= 5
    assert audit_verify(settings.data_dir).returncode == 0
    engine = sqlalchemy.create_engine(settings.resolved_database_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("UPDATE audit_event SET actor = 'mallory' WHERE id = 2"))
    tampered = audit_verify(settings.data_dir)
    assert tampered.returncode == 1
    assert "event 2 was modified" in tampered.stderr
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("DELETE FROM audit_event WHERE id = 2"))
    assert "chain broken" in audit_verify(settings.data_dir).stderr
    engine.dispose()


def test_tail_deletion_is_detected(audited: Any) -> None:
    client, settings, _ = audited
    auth = ("admin", "admin-password-1")
    client.get("/v2/", auth=auth)
    last = _events(client, auth)[-1]["id"]
    engine = sqlalchemy.create_engine(settings.resolved_database_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("DELETE FROM audit_event WHERE id = :id"), {"id": last})
    engine.dispose()
    tampered = audit_verify(settings.data_dir)
    assert tampered.returncode == 1
    assert "TAMPERED" in tampered.stderr


def test_purge_keeps_the_chain_verifiable(audited: Any) -> None:
    client, settings, _ = audited
    auth = ("admin", "admin-password-1")
    for _ in range(3):
        client.get("/v2/", auth=auth)
    registry = client.app.state["registry"]
    removed = registry.identity.audit.purge(datetime.now(UTC) + timedelta(seconds=1))
    assert removed >= 3
    client.get("/v2/", auth=auth)
    assert _events(client, auth)
    assert audit_verify(settings.data_dir).returncode == 0


def test_syslog_forwarding_and_pull_sampling(audited: Any) -> None:
    client, _, receiver = audited
    auth = ("admin", "admin-password-1")
    oci = OCIClient(client, "admin-password-1")
    oci.push_image("sampled/app", "v1")
    token = oci.token("repository:sampled/app:pull")
    pulled = client.get(
        "/v2/sampled/app/manifests/v1", headers={"Authorization": f"Bearer {token}"}
    )
    assert pulled.status_code == 200
    actions = {e["action"] for e in _events(client, auth, project="sampled")}
    assert "push_manifest" in actions
    assert "pull_manifest" not in actions
    message = receiver.recv(65536).decode()
    assert "moorage-audit:" in message
    assert '"hash"' in message
