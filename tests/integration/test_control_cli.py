"""The ``moorage gc|quota|immutability|retention`` commands against a real API and worker.

The commands run as the installed ``moorage`` script, configured only through the
environment (``MOORAGE_URL``, ``MOORAGE_USERNAME``, ``MOORAGE_PASSWORD``), and talk to a
``moorage api`` process; a ``moorage worker`` carries the requested runs out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services.moorage import REPO_ROOT, MoorageServer, start_moorage
from tests.services.process import ManagedProcess, spawn
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration
MOORAGE = REPO_ROOT / ".venv" / "bin" / "moorage"
COMMAND_TIMEOUT = 180.0


@dataclass
class Result:
    code: int
    out: Any
    err: str


@dataclass
class Deployment:
    server: MoorageServer
    home: Path

    def moorage(self, *args: str, auth: tuple[str, str] | None = None) -> Result:
        username, password = auth or (self.server.admin_username, self.server.admin_password)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        env |= {
            "HOME": str(self.home),
            "MOORAGE_URL": self.server.url,
            "MOORAGE_USERNAME": username,
            "MOORAGE_PASSWORD": password,
        }
        done = subprocess.run(
            [str(MOORAGE), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        out = json.loads(done.stdout) if done.stdout.strip() else None
        return Result(done.returncode, out, done.stderr)

    def ok(self, *args: str) -> Any:
        result = self.moorage(*args)
        assert result.code == 0, result.err
        return result.out

    def admin_post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        auth = (self.server.admin_username, self.server.admin_password)
        return httpx.post(self.server.url + path, json=body, auth=auth, timeout=30.0)


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, temporal_server: TemporalServer
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("control-cli")
    env = {
        "MOORAGE_DATA_DIR": str(root / "data"),
        "MOORAGE_TEMPORAL__ADDRESS": temporal_server.address,
        "MOORAGE_TEMPORAL__TASK_QUEUE": f"q-{uuid.uuid4().hex}",
        "MOORAGE_CONTROL__OUTBOX_POLL_SECONDS": "0.2",
        "MOORAGE_CONTROL__GC_EVERY_SECONDS": "0",
    }
    server = start_moorage(root / "api", env)
    worker: ManagedProcess | None = None
    try:
        worker_env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        worker = spawn(
            "moorage worker",
            [sys.executable, "-m", "cli.main", "worker"],
            log_path=root / "worker.log",
            env=worker_env | server.env,
            cwd=REPO_ROOT,
        )
        home = root / "home"
        home.mkdir()
        yield Deployment(server, home)
    finally:
        if worker is not None:
            worker.stop()
        server.stop()


def _project(deployment: Deployment) -> str:
    name = f"p{uuid.uuid4().hex[:12]}"
    assert deployment.admin_post("/api/v1/projects", {"name": name}).status_code == 201
    return name


def test_gc_dry_run_waits_for_its_report(deployment: Deployment) -> None:
    queued = deployment.ok("gc", "run", "--dry-run")
    assert queued["state"] == "queued"
    assert queued["dry_run"] is True
    assert deployment.ok("gc", "status", queued["id"])["id"] == queued["id"]
    finished = deployment.ok("gc", "run", "--dry-run", "--wait", "--timeout", "120")
    assert finished["state"] == "completed"
    assert finished["dry_run"] is True
    assert finished["report"] is not None
    listed = deployment.ok("gc", "runs")["items"]
    assert {queued["id"], finished["id"]} <= {run["id"] for run in listed}


def test_quota_set_and_get(deployment: Deployment) -> None:
    project = _project(deployment)
    limits = deployment.ok("quota", "set", project, "--bytes", "1000000", "--artifacts", "3")
    assert (limits["bytes"], limits["artifacts"], limits["used_bytes"]) == (1_000_000, 3, 0)
    assert deployment.ok("quota", "get", project) == limits
    unlimited = deployment.ok("quota", "set", project, "--bytes", "-1")
    assert (unlimited["bytes"], unlimited["artifacts"]) == (None, 3)


def test_immutability_set_and_get(deployment: Deployment) -> None:
    project = _project(deployment)
    rules = {"rules": [{"repository": {"pattern": "release/**"}, "tag": {"pattern": "v*"}}]}
    path = deployment.home / "immutability.json"
    path.write_text(json.dumps(rules), encoding="utf-8")
    deployment.ok("immutability", "set", project, str(path))
    read = deployment.ok("immutability", "get", project)
    assert [(r["repository"]["pattern"], r["tag"]["pattern"]) for r in read["rules"]] == [
        ("release/**", "v*")
    ]


def test_retention_set_and_dry_run(deployment: Deployment) -> None:
    project = _project(deployment)
    path = deployment.home / "retention.json"
    path.write_text(json.dumps({"rules": [{"template": "latestPushedK", "n": 2}]}), "utf-8")
    deployment.ok("retention", "set", project, str(path))
    assert deployment.ok("retention", "get", project)["rules"][0]["n"] == 2
    run = deployment.ok("retention", "run", project, "--dry-run", "--wait", "--timeout", "120")
    assert run["state"] == "completed"
    assert run["dry_run"] is True
    assert run["id"] in [r["id"] for r in deployment.ok("retention", "runs", project)["items"]]


def test_errors_go_to_stderr_as_problem_details(deployment: Deployment) -> None:
    missing = deployment.moorage("quota", "get", "nosuchproject0")
    assert missing.code != 0
    assert missing.out is None
    assert json.loads(missing.err)["status"] == 404
    project = _project(deployment)
    refused = deployment.moorage("quota", "set", project, "--bytes", "1", auth=("admin", "wrong"))
    assert refused.code != 0
    assert json.loads(refused.err)["status"] == 401
    bad = deployment.home / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    invalid = deployment.moorage("immutability", "set", project, str(bad))
    assert invalid.code != 0
    assert json.loads(invalid.err)["title"] == "invalid input"


def test_gc_and_retention_runs_are_cancelled_from_the_shell(
    tmp_path: Path, temporal_server: TemporalServer
) -> None:
    """An API without a worker: the requested runs wait in the outbox until cancelled."""
    env = {
        "MOORAGE_DATA_DIR": str(tmp_path / "data"),
        "MOORAGE_TEMPORAL__ADDRESS": temporal_server.address,
        "MOORAGE_TEMPORAL__TASK_QUEUE": f"q-{uuid.uuid4().hex}",
    }
    server = start_moorage(tmp_path / "api", env)
    try:
        idle = Deployment(server, tmp_path)
        gc = idle.ok("gc", "run")
        cancelled = idle.ok("gc", "cancel", gc["id"])
        assert (cancelled["id"], cancelled["state"]) == (gc["id"], "cancelled")
        assert idle.ok("gc", "status", gc["id"])["state"] == "cancelled"
        again = idle.moorage("gc", "cancel", gc["id"])
        assert again.code == 1
        assert json.loads(again.err)["status"] == 409

        project = _project(idle)
        retention = idle.ok("retention", "run", project, "--dry-run")
        stopped = idle.ok("retention", "cancel", project, retention["id"])
        assert (stopped["id"], stopped["state"]) == (retention["id"], "cancelled")
        assert idle.ok("retention", "status", project, retention["id"])["state"] == "cancelled"
    finally:
        server.stop()
