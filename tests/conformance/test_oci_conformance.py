"""The OCI distribution-spec conformance suites against Moorage, on both backends.

Two versions of the suite run, each built by ``scripts/install-tools``:

- ``classic``: the Ginkgo suite of the v1.1 era (``oci-conformance.test``), configured with
  the ``OCI_ROOT_URL``/``OCI_NAMESPACE``/``OCI_TEST_*`` variables;
- ``2026``: the redesigned suite (``oci-conformance-2026.test``, module version
  ``v0.0.0-20260831232431-97274622c111``), configured with ``OCI_REGISTRY``/``OCI_TLS``/
  ``OCI_REPO1``/``OCI_REPO2``/``OCI_VERSION``/``OCI_RESULTS_DIR`` and its ``OCI_DATA_*``
  data sets (sha512 content, empty blobs, non-distributable layers among them). It exits 0
  even when tests fail, so the verdict comes from its ``junit.xml`` alone.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import pytest

from tests.services.tools import MissingToolError, find_tool

if TYPE_CHECKING:
    from collections.abc import Callable
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


def _classic_env(registry: MoorageServer, runner: Runner, report_dir: Path) -> dict[str, str]:
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


def _current_env(registry: MoorageServer, runner: Runner, report_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCI_")}
    env.update(
        OCI_REGISTRY=urlsplit(registry.url).netloc,
        OCI_TLS="disabled",
        OCI_REPO1=f"{runner.project}/oci",
        OCI_REPO2=f"{runner.project}/other",
        OCI_USERNAME=runner.username,
        OCI_PASSWORD=runner.password,
        OCI_VERSION="1.1",
        OCI_LOG="warn",
        # NOTE: the data sets the issue named, on explicitly (they are the defaults too).
        OCI_DATA_NONDISTRIBUTABLE="true",
        OCI_DATA_SHA512="true",
        OCI_DATA_EMPTY_BLOB="true",
        OCI_RESULTS_DIR=str(report_dir),
    )
    return env


@dataclass(frozen=True)
class Suite:
    """One build of the conformance suite and how to configure it."""

    binary: str
    env: Callable[[MoorageServer, Runner, Path], dict[str, str]]


SUITES = {
    "classic": Suite("oci-conformance.test", _classic_env),
    "2026": Suite("oci-conformance-2026.test", _current_env),
}


@pytest.fixture(params=sorted(SUITES))
def suite(request: pytest.FixtureRequest) -> tuple[str, Suite]:
    """Each suite version (tests using it run once per version)."""
    chosen = SUITES[str(request.param)]
    try:
        return find_tool(chosen.binary), chosen
    except MissingToolError as exc:
        pytest.fail(str(exc), pytrace=False)


@dataclass(frozen=True)
class Results:
    """What a junit report says: test counts and the names of the failed tests."""

    total: int
    passed: int
    failed: list[str]


def _junit_results(report: Path) -> Results:
    """Count the test cases in a junit report and name the failed or errored ones.

    The classic suite marks a failure with a ``<failure>`` element, the 2026 suite with
    ``status="failure"`` (and counts repeated test names once per run in the suite totals).
    """
    root = ET.parse(report).getroot()  # noqa: S314 - the report our own run just wrote
    cases = list(root.iter("testcase"))
    failed = [
        f"{case.get('classname', '')} {case.get('name', '?')}".strip()
        for case in cases
        if case.find("failure") is not None
        or case.find("error") is not None
        or case.get("status") in {"failure", "error"}
    ]
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counted = [int(s.get("tests", "0")) for s in suites]
    total = sum(counted) or len(cases)
    not_passed = sum(
        int(s.get(key, "0") or 0)
        for s in suites
        for key in ("failures", "errors", "skipped", "disabled")
    )
    return Results(total, total - not_passed if sum(counted) else total - len(failed), failed)


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
    suite: tuple[str, Suite], backend_registry: MoorageServer, tmp_path: Path
) -> None:
    """Every test of each suite version passes on each backend (as the admin)."""
    project = f"conformance-{secrets.token_hex(3)}"
    admin = Runner(project, backend_registry.admin_username, backend_registry.admin_password)
    _run_suite(suite, backend_registry, admin, tmp_path)


def test_conformance_suite_as_a_ci_robot(
    suite: tuple[str, Suite], moorage_sqlite_fs: MoorageServer, tmp_path: Path
) -> None:
    """Everything a CI robot is allowed is 2xx: the whole suite passes with its secret."""
    _run_suite(suite, moorage_sqlite_fs, _ci_robot(moorage_sqlite_fs), tmp_path)


def _run_suite(
    suite: tuple[str, Suite], registry: MoorageServer, runner: Runner, tmp_path: Path
) -> None:
    binary, chosen = suite
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    result = subprocess.run(
        [binary],
        env=chosen.env(registry, runner, report_dir),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
        check=False,
    )
    report = report_dir / "junit.xml"
    assert report.is_file(), f"no junit.xml; exit {result.returncode}\n{result.stdout[-4000:]}"
    results = _junit_results(report)
    total, failed = results.total, results.failed
    assert total > 0, "the conformance suite reported no test cases"
    print(f"\n{chosen.binary}: {results.passed} of {total} passed, {len(failed)} failed")
    assert not failed, (
        f"{len(failed)} of {total} conformance tests failed (report in {report_dir}):\n"
        + "\n".join(f"  - {name}" for name in failed)
    )
    assert result.returncode == 0, f"suite exited {result.returncode}\n{result.stdout[-4000:]}"
