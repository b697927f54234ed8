"""Backups restore to a registry from which every tag pulls with skopeo, digests identical,
and whose audit log verifies: on both backends, across backends, and per project."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

import pytest

from tests.api.oci import OCIClient, unique_project
from tests.clients.commands import make_client_home
from tests.clients.images import read_image
from tests.clients.test_skopeo import Skopeo
from tests.integration.backup_rig import (
    Site,
    fs_location,
    installation,
    s3_location,
    start_api,
    start_site,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration


def _push(site: Site, projects: list[str]) -> dict[str, str]:
    """Push two tags into each of two repositories per project; ``ref -> digest``."""
    images: dict[str, str] = {}
    with site.http() as client:
        oci = OCIClient(client, site.api.admin_password)
        for project in projects:
            for repo in (f"{project}/app", f"{project}/tools/cli"):
                for tag in ("v1", "v2"):
                    images[f"{repo}:{tag}"] = oci.push_image(repo, tag).digest
            robot = {"name": "ci", "permissions": [{"repository": "app", "actions": ["pull"]}]}
            auth = (site.api.admin_username, site.api.admin_password)
            answer = client.post(f"/api/v1/projects/{project}/robots", json=robot, auth=auth)
            assert answer.status_code == 201, answer.text
    return images


def _pull_all(site: Site, images: dict[str, str], skopeo: str, home: Path) -> None:
    """skopeo copies every tag out of ``site``; each manifest has the pushed digest."""
    client = Skopeo(skopeo, make_client_home(home), site.api)
    for index, (ref, digest) in enumerate(sorted(images.items())):
        layout = home / f"layout-{index}"
        client.copy(
            f"docker://{site.api.host_port}/{ref}",
            f"oci:{layout}:t",
            src_creds=True,
            dest_creds=False,
        )
        assert read_image(layout, "t").manifest_digest == digest, ref


def _location(kind: str, root: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    if kind.startswith("fs"):
        return fs_location(root / "backups", encrypted=kind.endswith("encrypted"))
    return s3_location(request, encrypted=kind.endswith("encrypted"))


@pytest.mark.parametrize(
    ("source", "target", "location"),
    [
        ("sqlite-fs", "sqlite-fs", "fs-encrypted"),
        ("pg-s3", "pg-s3", "s3"),
        ("sqlite-fs", "pg-s3", "s3-encrypted"),
    ],
)
def test_a_whole_installation_restores_into_an_empty_one(
    source: str,
    target: str,
    location: str,
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    skopeo: str,
) -> None:
    password = secrets.token_urlsafe(12)
    backup = _location(location, tmp_path, request)
    first = installation(
        source,
        tmp_path / "a",
        temporal_server,
        request,
        password=password,
        backup=backup,
        label="bka",
    )
    site = start_site(first, tmp_path / "a")
    try:
        images = _push(site, [unique_project(), unique_project()])
        created = site.json("backup", "create", "--wait")
        assert created["state"] == "completed", created
        backup_id = created["backup_id"]
        assert created["result"]["blobs"] == 2 * len(images)
        assert backup_id in [b["id"] for b in site.json("backup", "list")["items"]]
        verified = site.json("backup", "verify", backup_id, "--wait")
        assert verified["result"]["ok"], verified
        assert verified["result"]["blobs_checked"] == 2 * len(images)
    finally:
        site.stop()
    second = installation(
        target,
        tmp_path / "b",
        temporal_server,
        request,
        password=password,
        backup=backup,
        label="bkb",
    )
    restored_site = start_site(second, tmp_path / "b")
    try:
        restored = restored_site.json("backup", "restore", backup_id, "--wait")
        assert restored["state"] == "completed", restored
        assert restored["result"]["blobs_copied"] == 2 * len(images)
        # NOTE: a whole restore replaces the signing keys: the API is restarted, as the
        # runbook says.
        restored_site.api.stop()
        restored_site.api = start_api(second, tmp_path / "b" / "api2")
        _pull_all(restored_site, images, skopeo, tmp_path / "pulls")
        audit = restored_site.moorage("audit", "verify")
        assert audit.returncode == 0, audit.stdout
    finally:
        restored_site.stop()


@pytest.mark.parametrize("backend", ["sqlite-fs", "pg-s3"])
def test_a_deleted_project_restores_beside_the_others(
    backend: str,
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    skopeo: str,
) -> None:
    password = secrets.token_urlsafe(12)
    backup = fs_location(tmp_path / "backups", encrypted=False)
    settings = installation(
        backend, tmp_path, temporal_server, request, password=password, backup=backup, label="bkt"
    )
    site = start_site(settings, tmp_path)
    try:
        lost, kept = unique_project(), unique_project()
        images = _push(site, [lost, kept])
        backup_id = site.json("backup", "create", "--wait")["backup_id"]
        auth = (site.api.admin_username, password)
        with site.http() as client:
            assert client.delete(f"/api/v1/projects/{lost}", auth=auth).status_code == 204
            later = OCIClient(client, password).push_image(f"{kept}/app", "after-backup")
        restored = site.json("backup", "restore", backup_id, "--project", lost, "--wait")
        assert restored["state"] == "completed", restored
        assert restored["result"]["rows"]["project"] == 1
        images[f"{kept}/app:after-backup"] = later.digest
        _pull_all(site, images, skopeo, tmp_path / "pulls")
        with site.http() as client:
            robots = client.get(f"/api/v1/projects/{lost}/robots", auth=auth).json()["items"]
            assert [r["name"] for r in robots] == [f"robot${lost}+ci"]
        again = site.moorage(
            "backup", "restore", backup_id, "--project", lost, "--wait", check=False
        )
        assert again.returncode == 1
        assert "exists" in again.stdout + again.stderr
        assert site.moorage("audit", "verify").returncode == 0
    finally:
        site.stop()
