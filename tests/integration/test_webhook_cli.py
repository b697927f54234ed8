"""`moorage webhook` against a running Moorage: create, list, test ping, deliveries."""

from __future__ import annotations

import json
import os
import secrets
import sys
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.services.forkserver import run_captured

if TYPE_CHECKING:
    from tests.services.moorage import MoorageServer

pytestmark = pytest.mark.integration


def _cli(registry: MoorageServer, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= {
        "MOORAGE_URL": registry.url,
        "MOORAGE_USERNAME": registry.admin_username,
        "MOORAGE_PASSWORD": registry.admin_password,
    }
    done = run_captured([sys.executable, "-m", "cli.main", "webhook", *args], env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert registry.admin_password not in done.stdout + done.stderr
    return json.loads(done.stdout)


def test_webhook_commands_manage_a_project_policy(registry: MoorageServer) -> None:
    project = f"hooks-{secrets.token_hex(3)}"
    created = httpx.post(
        f"{registry.url}/api/v1/projects", json={"name": project}, timeout=30,
        auth=(registry.admin_username, registry.admin_password),
    )  # fmt: skip
    assert created.status_code == 201, created.text
    hook = _cli(registry, "create", "-p", project, "-e", "artifact.pushed", "ci",
                "https://ci.example.test/hooks")  # fmt: skip
    assert hook["secret"].startswith("whsec_")
    listed = _cli(registry, "list", "-p", project)
    assert [h["name"] for h in listed["items"]] == ["ci"]
    assert all("secret" not in h or h["secret"] is None for h in listed["items"])
    assert _cli(registry, "deliveries", "-p", project, str(hook["id"]))["items"] == []
