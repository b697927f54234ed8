"""`moorage trust` against a running Moorage: set, show and delete a policy, read a verdict."""

from __future__ import annotations

import json
import os
import secrets
import sys
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.api.oci import OCIClient
from tests.services.forkserver import run_captured
from tests.unit.core.trust_fixtures import new_key, public_pem

if TYPE_CHECKING:
    from pathlib import Path

    from tests.services.moorage import MoorageServer

pytestmark = pytest.mark.integration


def _cli(registry: MoorageServer, *args: str, ok: bool = True) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= {
        "MOORAGE_URL": registry.url,
        "MOORAGE_USERNAME": registry.admin_username,
        "MOORAGE_PASSWORD": registry.admin_password,
    }
    done = run_captured([sys.executable, "-m", "cli.main", "trust", *args], env=env, timeout=60)
    assert (done.returncode == 0) is ok, done.stdout + done.stderr
    return json.loads(done.stdout if ok else done.stderr)


def test_trust_commands_manage_a_policy_and_report_a_verdict(
    registry: MoorageServer, tmp_path: Path
) -> None:
    project = f"trust-{secrets.token_hex(3)}"
    auth = (registry.admin_username, registry.admin_password)
    created = httpx.post(
        f"{registry.url}/api/v1/projects", json={"name": project}, auth=auth, timeout=30
    )
    assert created.status_code == 201, created.text
    oci = OCIClient(httpx.Client(base_url=registry.url, timeout=30), registry.admin_password)
    image = oci.push_image(f"{project}/app", "v1")

    document = {
        "keys": [{"name": "ci", "public_key": public_pem(new_key())}],
        "signatures": {"required_signers": 1},
    }
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    saved = _cli(registry, "policy", "set", "-p", project, str(path))
    assert saved["revision"] == 1
    shown = _cli(registry, "policy", "show", "-p", project)
    assert shown["document"]["keys"][0]["name"] == "ci"
    assert shown["document"]["signatures"]["required_signers"] == 1

    verdict = _cli(registry, "verdict", f"{project}/app", "v1")
    assert verdict["digest"] == image.digest
    assert verdict["allowed"] is False
    assert verdict["failed_requirement"] == (
        "signatures: 0 of 1 required distinct signers verified (trusted: ci)"
    )
    assert _cli(registry, "results", f"{project}/app", image.digest)["items"] == []

    path.write_text(json.dumps({"keys": [], "signatures": {"required_signers": 2}}))
    problem = _cli(registry, "policy", "set", "-p", project, str(path), ok=False)
    assert "signatures.required_signers" in json.dumps(problem)
    _cli(registry, "policy", "delete", "-p", project)
    assert _cli(registry, "verdict", f"{project}/app", "v1")["policy"] is False
