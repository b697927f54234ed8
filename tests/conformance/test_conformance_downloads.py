"""The OCI conformance suites pass with every blob GET redirected to the download listener.

A Moorage (SQLite, filesystem) whose redirect threshold is 0: each full blob ``GET`` the
suites send is answered with a ``307`` to the worker's sendfile listener, which the
suites' HTTP client follows. ``HEAD`` and ``Range`` requests stay on ``/v2``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.conformance.test_oci_conformance import Runner, Suite, _run_suite, suite
from tests.services.moorage import MoorageServer, start_moorage

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.conformance

__all__ = ["suite"]  # the fixture, parametrized over the suite versions


@pytest.fixture(scope="module")
def all_redirected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoorageServer]:
    workdir = tmp_path_factory.mktemp("moorage-all-redirected")
    env = {
        "MOORAGE_DATA_DIR": str(workdir / "data"),
        "MOORAGE_STORAGE": "filesystem",
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_DOWNLOADS__THRESHOLD_BYTES": "0",
    }
    server = start_moorage(workdir, env)
    yield server
    server.stop()


def test_conformance_through_the_download_redirect(
    suite: tuple[str, Suite], all_redirected: MoorageServer, tmp_path: Path
) -> None:
    project = f"conformance-dl-{secrets.token_hex(3)}"
    admin = Runner(project, all_redirected.admin_username, all_redirected.admin_password)
    _run_suite(suite, all_redirected, admin, tmp_path)
