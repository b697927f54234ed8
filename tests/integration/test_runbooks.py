"""The runbooks of ``docs/runbooks`` run: their ``sh`` blocks are taken from the markdown and
executed in order with bash (``set -euo pipefail``), so the documents cannot drift from
what works. The steps a runbook gives in prose (starting and stopping processes with the
operator's service manager, the disaster itself) are done by the test between the blocks,
at the places the runbook names them; the block counts are checked, so a changed runbook
fails here."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
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
from tests.services.moorage import REPO_ROOT, start_moorage
from tests.services.process import free_port, spawn
from tests.services.temporal import start_temporal

if TYPE_CHECKING:
    from core.settings import Settings
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


def _run(blocks: list[str], env: dict[str, str]) -> str:
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
    return result.stdout


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


def _start(settings: Settings, workdir: Path, extra: dict[str, str]) -> Site:
    """A worker and an API process of ``settings``, with ``extra`` in their environment."""
    env = process_env(settings) | extra
    worker = spawn(
        "moorage worker",
        [sys.executable, "-m", "cli.main", "worker"],
        log_path=workdir / "worker.log",
        env=env,
        cwd=REPO_ROOT,
    )
    try:
        api = start_moorage(workdir / "api", env, ["--workers", "1"])
    except BaseException:
        worker.stop()
        raise
    return Site(settings, api, worker)


def _catalog_status(site: Site, token: str) -> int:
    with site.http() as client:
        headers = {"Authorization": f"Bearer {token}"}
        return client.get("/v2/_catalog", headers=headers).status_code


def _push_and_delete(site: Site, repo: str) -> str:
    """Push an image with a fresh layer into ``repo`` and delete it; the layer's digest."""
    with site.http() as client:
        oci = OCIClient(client, site.api.admin_password)
        manifest = oci.image(repo, layers=[secrets.token_bytes(256 * 1024)])
        payload = json.dumps(manifest).encode()
        assert oci.put_manifest(repo, "tmp", payload).status_code == 201
        digest = "sha256:" + hashlib.sha256(payload).hexdigest()
        assert oci.request("DELETE", f"/v2/{repo}/manifests/{digest}", repo).status_code == 202
    return str(manifest["layers"][0]["digest"])


def _files_named(root: Path, digest: str) -> list[Path]:
    hex_digest = digest.split(":", 1)[1]
    return [path for path in root.rglob(f"*{hex_digest}*") if path.is_file()]


def test_leaked_signing_key_and_full_disk(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    leaked, full = sh_blocks("signing-key-leaked.md"), sh_blocks("disk-full.md")
    assert (len(leaked), len(full)) == (2, 3)
    backups = tmp_path / "backups"
    settings = installation(
        "sqlite-fs",
        tmp_path,
        temporal_server,
        request,
        password=secrets.token_urlsafe(12),
        backup=fs_location(backups, encrypted=False),
        label="rbk",
    )
    quick_gc = {
        "MOORAGE_CONTROL__GC_REVIEW_DELAY_SECONDS": "0",
        "MOORAGE_CONTROL__GC_ORPHAN_GRACE_SECONDS": "0",
    }
    bin_dir = _shims(tmp_path)
    site = _start(settings, tmp_path / "site", quick_gc)
    try:
        project = unique_project()
        pushed = _push(site, [project])
        auth = (site.api.admin_username, site.api.admin_password)
        with site.http() as client:
            answer = client.get("/auth/token", params={"scope": "registry:catalog:*"}, auth=auth)
            old_token = str(answer.json()["token"])
        assert _catalog_status(site, old_token) == 200

        # A leaked signing key: rotate with --revoke, restart the API (step 2), check.
        _run(leaked[:1], _env(site, bin_dir))
        site.api.stop()
        site.api = start_moorage(
            tmp_path / "site" / "api2", process_env(settings) | quick_gc, ["--workers", "1"]
        )
        assert "new tokens accepted" in _run(leaked[1:], _env(site, bin_dir))
        assert _catalog_status(site, old_token) == 401

        # A full disk: garbage in the blob store (an image deleted since the last GC) and
        # in the backup location (an image only an older backup holds) is freed.
        repo = f"{project}/scratch"
        only_backed_up = _push_and_delete(site, repo)
        site.json("backup", "create", "--wait")
        site.json("gc", "run", "--wait")
        garbage = _push_and_delete(site, repo)
        site.json("backup", "create", "--wait")
        assert _files_named(backups, only_backed_up)
        assert _files_named(settings.data_dir, garbage)
        _run(full, _env(site, bin_dir))
        assert not _files_named(settings.data_dir, garbage)
        assert not _files_named(backups, only_backed_up)
        assert len(site.json("backup", "list")["items"]) == 1
        _assert_pulls(site, pushed)
    finally:
        site.stop()


def test_temporal_cluster_lost(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    blocks = sh_blocks("temporal-lost.md")
    assert len(blocks) == 2  # while it is gone | after the new one is in place
    first = start_temporal(tmp_path / "temporal-1")
    second: TemporalServer | None = None
    settings = installation(
        "sqlite-fs",
        tmp_path,
        first,
        request,
        password=secrets.token_urlsafe(12),
        backup=fs_location(tmp_path / "backups", encrypted=False),
        label="rbt",
    )
    port = free_port()
    extra = {
        "MOORAGE_OBSERVABILITY__METRICS__WORKER_PORT": str(port),
        "MOORAGE_OBSERVABILITY__METRICS__GAUGES_REFRESH_SECONDS": "0",
    }
    metrics = {"WORKER_METRICS": f"http://127.0.0.1:{port}/metrics"}
    bin_dir = _shims(tmp_path)
    site = _start(settings, tmp_path / "before", extra)
    try:
        project = unique_project()
        pushed = _push(site, [project])
        first.stop()  # the Temporal cluster is lost
        # Pushes and requested runs are taken while it is gone; their work waits.
        with site.http() as client:
            late = OCIClient(client, site.api.admin_password).push_image(f"{project}/late", "v1")
        pushed[f"{project}/late:v1"] = late.payload
        gc_run = site.json("gc", "run")
        _run(blocks[:1], _env(site, bin_dir, **metrics))
        assert site.json("gc", "status", gc_run["id"])["state"] == "queued"

        # Step 2: a new Temporal server; workers and API restarted against it.
        second = start_temporal(tmp_path / "temporal-2")
        site.stop()
        temporal = settings.temporal.model_copy(update={"address": second.address})
        settings = settings.model_copy(update={"temporal": temporal})
        site = _start(settings, tmp_path / "after", extra)
        _run(blocks[1:], _env(site, bin_dir, **metrics))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = site.json("gc", "status", gc_run["id"])["state"]
            logged = late.digest in site.worker.log_path.read_text(encoding="utf-8")
            if state == "completed" and logged:
                break
            time.sleep(1)
        assert (state, logged) == ("completed", True)
        _assert_pulls(site, pushed)
    finally:
        site.stop()
        first.stop()
        if second is not None:
            second.stop()


def test_total_loss_of_a_site(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    blocks = sh_blocks("site-lost.md")
    assert len(blocks) == 3  # migrate | verify and restore | check and pull everything
    password = secrets.token_urlsafe(12)
    backup = fs_location(tmp_path / "offsite", encrypted=True)
    old = installation(
        "sqlite-fs",
        tmp_path / "old",
        temporal_server,
        request,
        password=password,
        backup=backup,
        label="rbs",
    )
    site = start_site(old, tmp_path / "old")
    try:
        pushed = _push(site, [unique_project(), unique_project()])
        site.json("backup", "create", "--wait")
    finally:
        site.stop()
    # The site is lost; the master key was kept with the backup key.
    master_key = (old.data_dir / "master.key").read_bytes()
    shutil.rmtree(tmp_path / "old")
    new = installation(
        "sqlite-fs",
        tmp_path / "new",
        temporal_server,
        request,
        password=password,
        backup=backup,
        label="rbs",
        prepare=False,
    )
    new.data_dir.mkdir(parents=True)
    (new.data_dir / "master.key").write_bytes(master_key)
    bin_dir = _shims(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= process_env(new) | {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    _run(blocks[:1], env)  # step 1
    worker = start_worker(new, tmp_path / "new" / "worker.log")  # step 2
    restored = Site(new, start_api(new, tmp_path / "new" / "api"), worker)
    try:
        _run(blocks[1:2], _env(restored, bin_dir))
        restored.api.stop()  # step 3: restart the API
        restored.api = start_api(new, tmp_path / "new" / "api2")
        output = _run(blocks[2:], _env(restored, bin_dir))
        assert {line.removeprefix("pulled ") for line in output.splitlines()} >= set(pushed)
        _assert_pulls(restored, pushed)
    finally:
        restored.stop()
