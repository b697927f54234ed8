"""Retention runs requested through the management API and carried out by the worker:
a dry run lists exactly what the real run then deletes, and repositories no rule
selects are left untouched."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest
from litestar.testing import TestClient

from api.app import create_app
from cli.composition import compose
from cli.wiring import build_activities
from cli.worker import run_worker
from core.settings import Settings
from core.subscribers import builtin_subscribers
from tests.api.oci import OCIClient, unique_project
from tests.conftest import BACKENDS
from tests.services.control_backends import control_settings
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration
BOUND = 90.0
_CONTROL = {"outbox_poll_seconds": 0.2, "gc_every_seconds": 0, "policy_every_seconds": 0}


@contextlib.asynccontextmanager
async def _worker(settings: Settings) -> AsyncIterator[None]:
    stop, polling = asyncio.Event(), asyncio.Event()
    root = compose(settings)
    task = asyncio.create_task(
        run_worker(
            settings,
            build_activities(root),
            stop,
            outbox=root.outbox_dispatcher(builtin_subscribers()),
            polling=polling,
        )
    )
    async with asyncio.timeout(BOUND):
        await asyncio.wait(
            {task, asyncio.create_task(polling.wait())}, return_when="FIRST_COMPLETED"
        )
    assert polling.is_set(), task.exception() if task.done() else "worker not polling"
    try:
        yield
    finally:
        stop.set()
        async with asyncio.timeout(BOUND):
            await task
        root.close()


def _admin(oci: OCIClient) -> tuple[str, str]:
    return ("admin", oci.password)


def _request_run(oci: OCIClient, project: str, dry_run: bool) -> str:
    url = f"/api/v1/projects/{project}/retention/runs"
    response = oci.client.post(url, json={"dry_run": dry_run}, auth=_admin(oci))
    assert response.status_code == 202, response.text
    return f"{url}/{response.json()['id']}"


async def _run(oci: OCIClient, project: str, *, dry_run: bool) -> dict[str, Any]:
    url = await anyio.to_thread.run_sync(_request_run, oci, project, dry_run)
    async with asyncio.timeout(BOUND):
        while True:
            response = await anyio.to_thread.run_sync(lambda: oci.client.get(url, auth=_admin(oci)))
            body: dict[str, Any] = response.json()
            if body["state"] in {"completed", "failed"}:
                break
            await asyncio.sleep(0.3)
    assert body["state"] == "completed", body
    return body


def _deleted(run: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (item["repository"], item["digest"])
        for item in run["report"]["items"]
        if item["action"] == "delete"
    }


def _pulls(oci: OCIClient, repo: str, digest: str) -> bool:
    return oci.request("GET", f"/v2/{repo}/manifests/{digest}", repo).status_code == 200


@pytest.mark.parametrize("backend", BACKENDS)
async def test_worker_dry_run_lists_what_the_real_run_deletes(
    backend: str, tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    settings = control_settings(backend, tmp_path, temporal_server, request, _CONTROL, label="rs")
    password = settings.auth.admin_password
    assert password is not None
    with TestClient(create_app(settings)) as http:
        oci, project = OCIClient(http, password.get_secret_value()), unique_project()
        rtest, app = f"{project}/rtest", f"{project}/app"

        def push() -> tuple[dict[str, list[str]], list[str]]:
            pushed: dict[str, list[str]] = {rtest: [], app: []}
            for repo in (rtest, app):
                for tag in ("v1", "v2", "stable", "v3"):
                    pushed[repo].append(oci.push_image(repo, tag).digest)
            untagged = [oci.push_image(repo, "tmp").digest for repo in (rtest, app)]
            for repo in (rtest, app):
                assert oci.request("DELETE", f"/v2/{repo}/manifests/tmp", repo).status_code == 202
            rules = [
                {"template": "latestPushedK", "n": 1, "repository": {"pattern": "rtest"}},
                {
                    "template": "always",
                    "repository": {"pattern": "rtest"},
                    "tag": {"pattern": "s*"},
                },
            ]
            url = f"/api/v1/projects/{project}/retention"
            put = oci.client.put(url, json={"rules": rules}, auth=_admin(oci))
            assert put.status_code == 200, put.text
            return pushed, untagged

        pushed, untagged = await anyio.to_thread.run_sync(push)
        async with _worker(settings):
            dry = await _run(oci, project, dry_run=True)
            assert all(_pulls(oci, rtest, digest) for digest in pushed[rtest])
            real = await _run(oci, project, dry_run=False)
        v1, v2, stable, v3 = pushed[rtest]
        expected = {(rtest, v1), (rtest, v2), (rtest, untagged[0])}
        assert _deleted(dry) == _deleted(real) == expected
        assert {item["repository"] for item in dry["report"]["items"]} == {rtest}
        assert [_pulls(oci, rtest, d) for d in (v1, v2, stable, v3, untagged[0])] == [
            False,
            False,
            True,
            True,
            False,
        ]
        assert all(_pulls(oci, app, digest) for digest in [*pushed[app], untagged[1]])
