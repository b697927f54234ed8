"""What the replication tests share: a site (API and worker processes), images, waits.

A site is one Moorage installation: ``moorage api`` and ``moorage worker`` as separate
processes on one data directory (SQLite, filesystem), a Temporal server and a task queue
of its own, loopback allowed as an outbound destination, quick retries and small chunks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from tests.services.moorage import REPO_ROOT, MoorageServer, start_moorage
from tests.services.process import ManagedProcess, spawn

#: Bound of every wait (seconds).
BOUND = 180.0
#: Seconds between two looks of a wait (the benchmark looks more often).
POLL = 0.2
#: Chunk size of the sites' uploads (blobs above it go chunked).
CHUNK = 256 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Site:
    """One installation: its API, its worker and how to reach them."""

    api: MoorageServer
    worker: ManagedProcess
    env: dict[str, str]
    workdir: Path

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def auth(self) -> tuple[str, str]:
        return self.api.admin_username, self.api.admin_password

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api.url, auth=self.auth, timeout=120)

    def restart_worker(self) -> None:
        self.worker = start_worker(self.workdir, self.env, self.api.url)

    def stop(self) -> None:
        self.worker.stop()
        self.api.stop()


def site_env(workdir: Path, temporal_address: str, **extra: str) -> dict[str, str]:
    env = {
        "MOORAGE_DATA_DIR": str(workdir / "data"),
        "MOORAGE_TEMPORAL__ADDRESS": temporal_address,
        "MOORAGE_TEMPORAL__TASK_QUEUE": f"repl-{secrets.token_hex(4)}",
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_OUTBOUND__ALLOW": '["127.0.0.0/8"]',
        "MOORAGE_OUTBOUND__ALLOW_HTTP": "true",
        "MOORAGE_CONTROL__OUTBOX_POLL_SECONDS": "0.1",
        "MOORAGE_CONTROL__EVENT_BATCH_SECONDS": "0.2",
        "MOORAGE_CONTROL__GC_EVERY_SECONDS": "0",
        "MOORAGE_CONTROL__POLICY_EVERY_SECONDS": "0",
        "MOORAGE_REPLICATION__CHUNK_SIZE": str(CHUNK),
        "MOORAGE_REPLICATION__RETRY_INITIAL_SECONDS": "0.2",
        "MOORAGE_REPLICATION__RETRY_MAX_SECONDS": "2",
        "MOORAGE_REPLICATION__HEARTBEAT_SECONDS": "3",
    }
    env.update(extra)
    return env


def start_worker(workdir: Path, env: dict[str, str], local_url: str) -> ManagedProcess:
    process_env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    process_env.update(env)
    process_env["MOORAGE_REPLICATION__LOCAL_URL"] = local_url
    process_env["PYTHONUNBUFFERED"] = "1"
    return spawn(
        "moorage worker",
        [sys.executable, "-m", "cli.main", "worker"],
        log_path=workdir / "worker.log",
        env=process_env,
        cwd=REPO_ROOT,
    )


def start_site(workdir: Path, temporal_address: str, **extra: str) -> Site:
    env = site_env(workdir, temporal_address, **extra)
    api = start_moorage(workdir, env)
    env = dict(api.env)
    return Site(api, start_worker(workdir, env, api.url), env, workdir)


def push_image(
    base_url: str,
    repo: str,
    tag: str,
    layers: list[bytes],
    auth: tuple[str, str] | None = None,
    *,
    note: str = "",
) -> str:
    """Push an image (config + ``layers``) with plain HTTP; its manifest digest."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "note": note or tag}).encode()
    with httpx.Client(base_url=base_url, auth=auth, timeout=120) as client:
        for blob in [config, *layers]:
            start = client.post(f"/v2/{repo}/blobs/uploads/")
            assert start.status_code == 202, start.text
            location = start.headers["location"]
            separator = "&" if "?" in location else "?"
            done = client.put(f"{location}{separator}digest={sha(blob)}", content=blob)
            assert done.status_code == 201, done.text
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha(layer),
                        "size": len(layer),
                    }
                    for layer in layers
                ],
            }
        ).encode()
        put = client.put(
            f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert put.status_code == 201, put.text
    return sha(manifest)


def push_index(
    base_url: str, repo: str, tag: str, children: list[str], auth: tuple[str, str] | None = None
) -> str:
    """Push an index over manifests already in ``repo`` (amd64, arm64, ...)."""
    platforms = ["amd64", "arm64", "s390x", "ppc64le"]
    with httpx.Client(base_url=base_url, auth=auth, timeout=120) as client:
        entries: list[dict[str, Any]] = []
        for digest, arch in zip(children, platforms, strict=False):
            head = client.head(f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
            assert head.status_code == 200, head.text
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": int(head.headers["content-length"]),
                    "platform": {"architecture": arch, "os": "linux"},
                }
            )
        body = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        ).encode()
        put = client.put(
            f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": OCI_INDEX}
        )
        assert put.status_code == 201, put.text
    return sha(body)


def wait_for(
    check: Callable[[], Any], what: str, timeout: float = BOUND, poll: float = POLL
) -> Any:
    """Poll ``check`` every ``poll`` seconds until it returns something true.

    Bounded in time and in polls.
    """
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / poll) + 1):
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            break
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def finished(client: httpx.Client, execution_id: str) -> dict[str, Any] | None:
    """The execution once it is no longer running."""
    response = client.get(f"/api/v1/replication/executions/{execution_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return None if body["status"] in ("running", "stopping") else body


def run_policy(client: httpx.Client, policy_id: int, poll: float = POLL) -> dict[str, Any]:
    """Run a policy by hand and wait for its execution to finish (looking every ``poll`` s)."""
    started = client.post(f"/api/v1/replication/policies/{policy_id}/executions")
    assert started.status_code == 202, started.text
    execution_id = started.json()["id"]
    done: dict[str, Any] = wait_for(
        lambda: finished(client, execution_id), "the execution", poll=poll
    )
    return done


def tasks(client: httpx.Client, execution_id: str) -> list[dict[str, Any]]:
    response = client.get(
        f"/api/v1/replication/executions/{execution_id}/tasks", params={"limit": 1000}
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["items"]
    return found


def manifest_digest(
    base_url: str, repo: str, reference: str, auth: tuple[str, str] | None = None
) -> str | None:
    accept = f"{OCI_MANIFEST}, {OCI_INDEX}"
    with httpx.Client(base_url=base_url, auth=auth, timeout=60) as client:
        response = client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept})
    if response.status_code != 200:
        return None
    return sha(response.content)


def blob_present(
    base_url: str, repo: str, digest: str, auth: tuple[str, str] | None = None
) -> bool:
    with httpx.Client(base_url=base_url, auth=auth, timeout=60) as client:
        return client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200


def terminate_workflow(site: Site, workflow_id: str) -> None:
    """Terminate a workflow on the site's Temporal, as an operator would in its UI or CLI."""

    async def run() -> None:
        client = await Client.connect(site.env["MOORAGE_TEMPORAL__ADDRESS"])
        await client.get_workflow_handle(workflow_id).terminate(reason="by hand")

    asyncio.run(run())


def workflow_states(site: Site, ids: list[str]) -> dict[str, tuple[Any, int]]:
    """Each workflow's status and how many activities it still has pending."""

    async def describe() -> dict[str, tuple[Any, int]]:
        client = await Client.connect(site.env["MOORAGE_TEMPORAL__ADDRESS"])
        found: dict[str, tuple[Any, int]] = {}
        for workflow_id in ids:
            described = await client.get_workflow_handle(workflow_id).describe()
            pending = len(described.raw_description.pending_activities)
            found[workflow_id] = (described.status, pending)
        return found

    return asyncio.run(describe())
