"""A scanning installation for tests: the API in process, OSV data loaded, real workers.

Images are built from real layer content (os-release and a dpkg status database) and
pushed over ``/v2``; the workers are ``moorage worker`` processes (or the faulty worker)
on the test's own task queue.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from litestar.testing import TestClient
from temporalio.client import Client

from adapters.osv_files import OsvFiles
from api.app import create_app
from core.outbound import OutboundPolicy
from core.scan_records import ScanReport
from core.settings import Settings
from core.vulndb.importer import OsvImporter
from storage.db.engine import create_engines
from storage.db.scans import SqlScanStore
from storage.db.vulndb import SqlVulnDb
from tests.api.oci import OCIClient, digest_of
from tests.scanning.images import LAYER_GZIP, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Layer
from tests.scanning.osv_exports import write_export
from tests.services.control_backends import control_settings, worker_env
from tests.services.moorage import REPO_ROOT
from tests.services.process import ManagedProcess, spawn
from tests.services.temporal import TemporalServer

#: Bound of every wait (seconds).
BOUND = 180.0
T = TypeVar("T")

OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
    "VERSION_CODENAME=bookworm\n"
)
#: openssl 3.0.11-1~deb12u1: affected by DSA-5532-1 (CVE-2023-5363, fixed in deb12u2).
STATUS = """Package: libssl3
Status: install ok installed
Architecture: {arch}
Source: openssl
Version: 3.0.11-1~deb12u1

Package: openssl
Status: install ok installed
Architecture: {arch}
Version: 3.0.11-1~deb12u1
"""


def debian_layer(arch: str = "amd64", extra: str = "") -> bytes:
    layer = (
        Layer()
        .file("etc/os-release", OS_RELEASE)
        .file("var/lib/dpkg/status", STATUS.format(arch=arch) + extra)
    )
    return layer.tar()


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a loop of its own (a thread keeps it apart from other loops)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, make()).result(timeout=BOUND + 30)


@dataclass
class ScanRig:
    settings: Settings
    root: Path
    oci: OCIClient
    store: SqlScanStore
    vulndb: SqlVulnDb
    workers: list[ManagedProcess] = field(default_factory=list)

    @property
    def registry(self) -> Any:
        return self.oci.client.app.state["registry"]  # type: ignore[attr-defined]

    # -- data -----------------------------------------------------------------------------

    def load_osv(self, ecosystem: str, records: list[dict[str, Any]]) -> None:
        location = write_export(self.root / "osv", ecosystem, records)
        importer = OsvImporter(self.vulndb, OsvFiles(OutboundPolicy()), lambda: datetime.now(UTC))
        importer.run(ecosystem, str(location), full=True)

    def push_image(self, repo: str, tag: str, layers: list[bytes], arch: str = "amd64") -> str:
        blobs = [gzip.compress(raw, mtime=0) for raw in layers]
        config = json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [digest_of(raw) for raw in layers]},
            }
        ).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": self.oci.push_blob(repo, config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": LAYER_GZIP, "digest": self.oci.push_blob(repo, b), "size": len(b)}
                for b in blobs
            ],
        }
        payload = json.dumps(manifest).encode()
        response = self.oci.put_manifest(repo, tag, payload)
        assert response.status_code == 201, response.text
        return digest_of(payload)

    def push_index(self, repo: str, tag: str, children: list[tuple[str, str]]) -> str:
        manifests = []
        for digest, arch in children:
            got = self.oci.request("GET", f"/v2/{repo}/manifests/{digest}", repo)
            manifests.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": digest,
                    "size": len(got.content),
                    "platform": {"os": "linux", "architecture": arch},
                }
            )
        payload = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        ).encode()
        response = self.oci.put_manifest(repo, tag, payload, media_type=OCI_INDEX)
        assert response.status_code == 201, response.text
        return digest_of(payload)

    def project_id(self, name: str) -> int:
        with self.registry.metadata.read() as session:
            project = session.projects.get(name)
        assert project is not None, name
        return int(project.id)

    def wait_report(
        self, project: str, digest: str, done: Callable[[ScanReport], bool] | None = None
    ) -> ScanReport:
        project_id = self.project_id(project)
        deadline = time.monotonic() + BOUND
        while True:
            report = self.store.report(project_id, digest)
            if report is not None and report.finished_at is not None:  # noqa: SIM102
                if done is None or done(report):
                    return report
            if self.workers:
                code = self.workers[-1].popen.poll()
                assert code is None, f"the worker exited with {code}"
            assert time.monotonic() < deadline, f"no finished report for {digest}: {report}"
            time.sleep(0.2)

    # -- Temporal -------------------------------------------------------------------------

    async def client(self) -> Client:
        return await Client.connect(
            self.settings.temporal.address, namespace=self.settings.temporal.namespace
        )

    def start(self, workflow: str, arg: object, workflow_id: str, **kwargs: Any) -> None:
        async def go() -> None:
            client = await self.client()
            await client.start_workflow(
                workflow,
                arg,
                id=workflow_id,
                task_queue=self.settings.temporal.task_queue,
                **kwargs,
            )

        run_async(go)

    def result(self, workflow_id: str) -> Any:
        async def go() -> Any:
            client = await self.client()
            async with asyncio.timeout(BOUND):
                return await client.get_workflow_handle(workflow_id).result()

        return run_async(go)

    def find(self, query: str) -> list[tuple[str, str]]:
        """(workflow type, id) of the runs a visibility query finds (waits, bounded)."""

        async def go() -> list[tuple[str, str]]:
            client = await self.client()
            async with asyncio.timeout(BOUND):
                while True:
                    found = [(w.workflow_type, w.id) async for w in client.list_workflows(query)]
                    if found:
                        return found
                    await asyncio.sleep(0.3)

        return run_async(go)

    # -- workers --------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return worker_env(
            self.settings,
            {"OUTBOX_POLL_SECONDS": "0.2", "GC_EVERY_SECONDS": "0", "POLICY_EVERY_SECONDS": "0"},
        )

    def spawn_worker(
        self,
        argv: list[str] | None = None,
        name: str = "moorage worker",
        extra_env: dict[str, str] | None = None,
    ) -> ManagedProcess:
        argv = argv or [sys.executable, "-m", "cli.main", "worker"]
        log = self.root / f"worker-{len(self.workers)}.log"
        env = self.env() | (extra_env or {})
        worker = spawn(name, argv, log_path=log, env=env, cwd=REPO_ROOT)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()


@contextmanager
def scan_rig(
    backend: str, root: Path, temporal: TemporalServer, request: pytest.FixtureRequest
) -> Iterator[ScanRig]:
    control = {"gc_every_seconds": 0, "policy_every_seconds": 0, "gc_review_delay_seconds": 0}
    settings = control_settings(backend, root, temporal, request, control, label="scan")
    assert settings.auth.admin_password is not None
    engines = create_engines(settings)
    try:
        with TestClient(create_app(settings)) as http:
            rig = ScanRig(
                settings,
                root,
                OCIClient(http, settings.auth.admin_password.get_secret_value()),
                SqlScanStore(engines),
                SqlVulnDb(engines),
            )
            try:
                yield rig
            finally:
                rig.stop_all()
    finally:
        engines.dispose()
