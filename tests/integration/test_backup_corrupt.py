"""A corrupted backup blob is reported by ``verify`` and refused by ``restore`` (nothing
loaded), and a backup of another schema revision is refused with a clear error."""

from __future__ import annotations

import json
import secrets
import shutil
from typing import TYPE_CHECKING

import pytest

from tests.api.oci import OCIClient, unique_project
from tests.integration.backup_rig import fs_location, installation, start_site

if TYPE_CHECKING:
    from pathlib import Path

    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration


def test_a_corrupted_blob_is_reported_and_refused(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    password = secrets.token_urlsafe(12)
    location = tmp_path / "backups"
    backup = fs_location(location, encrypted=False)
    source = installation(
        "sqlite-fs",
        tmp_path / "a",
        temporal_server,
        request,
        password=password,
        backup=backup,
        label="bkx",
    )
    site = start_site(source, tmp_path / "a")
    try:
        with site.http() as client:
            pushed = OCIClient(client, password).push_image(f"{unique_project()}/app", "v1")
        backup_id = site.json("backup", "create", "--wait")["backup_id"]
        config = pushed.blobs[0]
        stored = location / "blobs" / "plain" / "sha256" / config.removeprefix("sha256:")
        data = bytearray(stored.read_bytes())
        data[0] ^= 0xFF
        stored.write_bytes(bytes(data))
        verified = site.moorage("backup", "verify", backup_id, "--wait", check=False)
        assert verified.returncode == 1
        outcome = json.loads(verified.stdout)
        assert outcome["result"]["ok"] is False
        assert any(config in problem for problem in outcome["result"]["problems"])
    finally:
        site.stop()
    old = tmp_path / "backups" / "backups" / backup_id
    other = "19990101-000000-oldschema"
    shutil.copytree(old, old.parent / other)
    manifest = json.loads((old.parent / other / "manifest.json").read_text())
    manifest["id"] = other
    manifest["snapshot"]["revision"] = "0001_initial_schema"
    (old.parent / other / "manifest.json").write_text(json.dumps(manifest))
    target = installation(
        "sqlite-fs",
        tmp_path / "b",
        temporal_server,
        request,
        password=password,
        backup=backup,
        label="bky",
    )
    empty = start_site(target, tmp_path / "b")
    try:
        refused = empty.moorage("backup", "restore", backup_id, "--wait", check=False)
        assert refused.returncode == 1
        assert "differs" in refused.stdout, refused.stdout
        auth = (empty.api.admin_username, password)
        with empty.http() as client:
            assert client.get("/api/v1/projects", auth=auth).json()["items"] == []
        revision = empty.moorage("backup", "restore", other, "--wait", check=False)
        assert revision.returncode == 1
        assert "schema revision 0001_initial_schema" in revision.stdout, revision.stdout
    finally:
        empty.stop()
