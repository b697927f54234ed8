"""The OCI distribution-spec conformance suite (classic v1.1 suite) against Moorage."""

from __future__ import annotations

import os
import secrets
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from tests.services.moorage import MoorageServer

pytestmark = pytest.mark.conformance

# Below scripts/test's per-test timeout, so that this bound reports first.
SUITE_TIMEOUT = 420.0


@dataclass(frozen=True)
class Runner:
    """Who runs the suite, and in which project (cross-mounts stay inside it)."""

    project: str
    username: str
    password: str


def _suite_env(registry: MoorageServer, runner: Runner, report_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCI_")}
    env.update(
        OCI_ROOT_URL=registry.url,
        OCI_NAMESPACE=f"{runner.project}/oci",
        OCI_CROSSMOUNT_NAMESPACE=f"{runner.project}/other",
        OCI_USERNAME=runner.username,
        OCI_PASSWORD=runner.password,
        OCI_TEST_PULL="1",
        OCI_TEST_PUSH="1",
        OCI_TEST_CONTENT_DISCOVERY="1",
        OCI_TEST_CONTENT_MANAGEMENT="1",
        OCI_HIDE_SKIPPED_WORKFLOWS="0",
        OCI_DELETE_MANIFEST_BEFORE_BLOBS="1",
        OCI_REPORT_DIR=str(report_dir),
    )
    return env


def _junit_results(report: Path) -> tuple[int, list[str]]:
    """Count the test cases in a junit report and name the failed or errored ones."""
    root = ET.parse(report).getroot()  # noqa: S314 - the report our own run just wrote
    cases = list(root.iter("testcase"))
    failed = [
        case.get("name", "?")
        for case in cases
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return len(cases), failed


def _ci_robot(registry: MoorageServer) -> Runner:
    """A new private project and a project robot that may pull, push and delete in it."""
    project = f"conformance-robot-{secrets.token_hex(3)}"
    with httpx.Client(
        base_url=registry.url,
        auth=(registry.admin_username, registry.admin_password),
        timeout=30.0,
    ) as api:
        created = api.post("/api/v1/projects", json={"name": project, "public": False})
        assert created.status_code == 201, created.text
        robot = api.post(
            f"/api/v1/projects/{project}/robots",
            json={
                "name": "ci",
                "permissions": [{"repository": "**", "actions": ["pull", "push", "delete"]}],
            },
        )
        assert robot.status_code == 201, robot.text
        body = robot.json()
    return Runner(project, str(body["name"]), str(body["secret"]))


def test_conformance_suite(
    oci_conformance: str, backend_registry: MoorageServer, tmp_path: Path
) -> None:
    admin = Runner("conformance", backend_registry.admin_username, backend_registry.admin_password)
    _run_suite(oci_conformance, backend_registry, admin, tmp_path)


def test_conformance_suite_as_a_ci_robot(
    oci_conformance: str, moorage_sqlite_fs: MoorageServer, tmp_path: Path
) -> None:
    """Everything a CI robot is allowed is 2xx: the whole suite passes with its secret."""
    _run_suite(oci_conformance, moorage_sqlite_fs, _ci_robot(moorage_sqlite_fs), tmp_path)


def _run_suite(
    oci_conformance: str, registry: MoorageServer, runner: Runner, tmp_path: Path
) -> None:
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    result = subprocess.run(
        [oci_conformance],
        env=_suite_env(registry, runner, report_dir),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
        check=False,
    )
    report = report_dir / "junit.xml"
    assert report.is_file(), f"no junit.xml; exit {result.returncode}\n{result.stdout[-4000:]}"
    total, failed = _junit_results(report)
    assert total > 0, "the conformance suite reported no test cases"
    assert not failed, (
        f"{len(failed)} of {total} conformance tests failed (report in {report_dir}):\n"
        + "\n".join(f"  - {name}" for name in failed)
    )
    assert result.returncode == 0, f"suite exited {result.returncode}\n{result.stdout[-4000:]}"
