"""The runbooks of ``docs/runbooks`` run: their ``sh`` blocks are taken from the markdown and
executed in order with bash (``set -euo pipefail``), so the documents cannot drift from
what works. The steps a runbook gives in prose (starting and stopping processes with the
operator's service manager) are done by the test between the blocks, at the places the
runbook names them; the block counts are checked, so a changed runbook fails here."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.api.oci import OCIClient, unique_project
from tests.integration.backup_rig import (
    Site,
    fs_location,
    installation,
    process_env,
    start_api,
    start_site,
    start_worker,
)
from tests.services.moorage import REPO_ROOT

if TYPE_CHECKING:
    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration
RUNBOOKS = REPO_ROOT / "docs" / "runbooks"
_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)


def sh_blocks(name: str) -> list[str]:
    return _BLOCK.findall((RUNBOOKS / name).read_text(encoding="utf-8"))


def _shims(root: Path) -> Path:
    """A ``bin`` with ``moorage`` (this tree's CLI) and ``python3`` (this interpreter)."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    moorage = bin_dir / "moorage"
    moorage.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cli.main "$@"\n')
    moorage.chmod(0o755)
    python3 = bin_dir / "python3"
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python3.chmod(0o755)
    return bin_dir


def _run(blocks: list[str], env: dict[str, str]) -> None:
    script = "set -euo pipefail\n" + "\n".join(blocks)
    result = subprocess.run(
        ["bash", "-c", script],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"runbook commands failed ({result.returncode})\n--- script\n{script}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )


def _env(site: Site, bin_dir: Path, **extra: str) -> dict[str, str]:
    env = site.cli_env()
    env["PATH"] = f"{bin_dir}:{env.get('PATH', os.defpath)}"
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env | extra


def _push(site: Site, projects: list[str]) -> dict[str, bytes]:
    pushed: dict[str, bytes] = {}
    with site.http() as client:
        oci = OCIClient(client, site.api.admin_password)
        for project in projects:
            for tag in ("v1", "v2"):
                pushed[f"{project}/app:{tag}"] = oci.push_image(f"{project}/app", tag).payload
    return pushed


def _assert_pulls(site: Site, pushed: dict[str, bytes]) -> None:
    with site.http() as client:
        oci = OCIClient(client, site.api.admin_password)
        for ref, payload in pushed.items():
            repo, tag = ref.rsplit(":", 1)
            assert oci.request("GET", f"/v2/{repo}/manifests/{tag}", repo).content == payload


def test_project_deleted_by_mistake(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    blocks = sh_blocks("project-deleted.md")
    assert len(blocks) == 4
    settings = installation(
        "sqlite-fs",
        tmp_path,
        temporal_server,
        request,
        password=secrets.token_urlsafe(12),
        backup=fs_location(tmp_path / "backups", encrypted=False),
        label="rbp",
    )
    site = start_site(settings, tmp_path)
    try:
        lost, kept = unique_project(), unique_project()
        pushed = _push(site, [lost, kept])
        site.json("backup", "create", "--wait")
        auth = (site.api.admin_username, site.api.admin_password)
        with site.http() as client:
            assert client.delete(f"/api/v1/projects/{lost}", auth=auth).status_code == 204
        _run(blocks, _env(site, _shims(tmp_path), PROJECT=lost))
        _assert_pulls(site, pushed)
    finally:
        site.stop()


def test_corrupted_or_lost_database(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    blocks = sh_blocks("database-lost.md")
    assert len(blocks) == 4  # migrate | verify | restore | check
    password = secrets.token_urlsafe(12)
    backup = fs_location(tmp_path / "backups", encrypted=True)
    old = installation(
        "sqlite-fs",
        tmp_path / "old",
        temporal_server,
        request,
        password=password,
        backup=backup,
        label="rbo",
    )
    site = start_site(old, tmp_path / "old")
    try:
        pushed = _push(site, [unique_project(), unique_project()])
        site.json("backup", "create", "--wait")
    finally:
        site.stop()  # step 1: every process stopped; the database is lost
    new = installation(
        "pg-s3",
        tmp_path / "new",
        temporal_server,
        request,
        password=password,
        backup=backup,
        label="rbn",
        prepare=False,
    )
    bin_dir = _shims(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= process_env(new) | {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    _run(blocks[:1], env)  # step 2: moorage migrate on the new database
    worker = start_worker(new, tmp_path / "new" / "worker.log")  # step 3
    restored = Site(new, start_api(new, tmp_path / "new" / "api"), worker)
    try:
        _run(blocks[1:3], _env(restored, bin_dir))  # steps 4 and 5
        restored.api.stop()  # step 6: restart the API
        restored.api = start_api(new, tmp_path / "new" / "api2")
        _run(blocks[3:], _env(restored, bin_dir))
        _assert_pulls(restored, pushed)
    finally:
        restored.stop()
