"""`moorage promote` as a CI job runs it: a robot account, gates, ``--wait``, approval."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.api.oci import OCIClient, digest_of
from tests.services.forkserver import run_captured
from tests.services.moorage import REPO_ROOT
from tests.services.process import ManagedProcess, spawn

if TYPE_CHECKING:
    from pathlib import Path

    from tests.services.moorage import MoorageServer

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(registry: MoorageServer, tmp_path: Path) -> Iterator[ManagedProcess]:
    """A worker process on the registry's task queue, for this test only."""
    process = spawn(
        "moorage worker",
        [sys.executable, "-m", "cli.main", "worker"],
        log_path=tmp_path / "worker.log",
        env=registry.env,
        cwd=REPO_ROOT,
    )
    try:
        yield process
    finally:
        process.stop()


def _cli(registry: MoorageServer, auth: tuple[str, str], *args: str, ok: bool = True) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= {"MOORAGE_URL": registry.url, "MOORAGE_USERNAME": auth[0], "MOORAGE_PASSWORD": auth[1]}
    done = run_captured([sys.executable, "-m", "cli.main", "promote", *args], env=env, timeout=180)
    assert (done.returncode == 0) is ok, done.stdout + done.stderr
    return json.loads(done.stdout or done.stderr)


def test_a_ci_robot_promotes_through_gates_and_approval(
    registry: MoorageServer, worker: ManagedProcess
) -> None:
    del worker
    admin = (registry.admin_username, registry.admin_password)
    project = f"promo-{secrets.token_hex(3)}"
    created = httpx.post(f"{registry.url}/api/v1/projects", json={"name": project}, auth=admin)
    assert created.status_code == 201, created.text
    # No scan on push: the scan gate below must find the image not scanned.
    policy = httpx.put(
        f"{registry.url}/api/v1/projects/{project}/scan-policy",
        json={"scan_on_push": False},
        auth=admin,
    )
    assert policy.status_code == 200, policy.text
    robot = httpx.post(
        f"{registry.url}/api/v1/projects/{project}/robots",
        json={"name": "ci", "permissions": [{"repository": "*", "actions": ["pull", "promote"]}]},
        auth=admin,
    ).json()
    ci = (robot["name"], robot["secret"])
    oci = OCIClient(httpx.Client(base_url=registry.url, timeout=30), registry.admin_password)
    image = oci.push_image(f"{project}/app", "rc1")
    source = f"{project}/app:rc1"

    done = _cli(registry, ci, source, f"{project}/app:staging", "--wait")
    assert (done["status"], done["source"]) == ("promoted", f"{project}/app@{image.digest}")
    pulled = oci.request("GET", f"/v2/{project}/app/manifests/staging", f"{project}/app")
    assert digest_of(pulled.content) == image.digest

    refused = _cli(
        registry, ci, source, f"{project}/app:prod", "--gate", "scan=high", "--wait", ok=False
    )
    assert refused["status"] == "refused"
    assert refused["gates"] == [{"gate": "scan", "passed": False, "reason": "not scanned"}]

    started = _cli(registry, ci, source, f"{project}/app:release", "-g", "approval=600")
    assert _cli(registry, ci, "show", started["id"])["target"] == f"{project}/app:release"
    waiting = _cli(registry, ci, source, f"{project}/app:release", "-g", "approval=600")
    assert waiting["id"] == started["id"]
    _cli(registry, admin, "approve", started["id"])
    # The same request with --wait waits for the promotion already running.
    final = _cli(registry, ci, source, f"{project}/app:release", "-g", "approval=600", "--wait")
    assert final["status"] == "promoted"
    assert final["gates"][-1]["reason"] == "approved by admin"
    listed = _cli(registry, admin, "list", "-p", project)["items"]
    assert started["id"] in [item["id"] for item in listed]

    without = _cli(registry, ("nobody", "x"), source, f"{project}/app:x", ok=False)
    assert without["status"] == 401
