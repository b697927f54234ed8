"""The moorage.registry.replication_policy Ansible module against a running Moorage.

Check mode reports the change and makes none, a real run makes it, a second run reports
none, a changed option updates the policy in place, ``state: absent`` removes it.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from tests.deploy.test_ansible import _play

if TYPE_CHECKING:
    from tests.services.moorage import MoorageServer

pytestmark = pytest.mark.clients


def _playbook(path: Path, task: dict[str, Any]) -> Path:
    play = {
        "hosts": "localhost",
        "gather_facts": False,
        "module_defaults": {
            "group/moorage.registry.all": {
                "url": "{{ moorage_url }}",
                "username": "{{ moorage_username }}",
                "password": "{{ moorage_password }}",
            }
        },
        "tasks": [{"moorage.registry.replication_policy": task}],
    }
    path.write_text(yaml.safe_dump([play], sort_keys=False))
    return path


def _policy(registry: MoorageServer, name: str) -> dict[str, Any] | None:
    auth = (registry.admin_username, registry.admin_password)
    with httpx.Client(base_url=registry.url, auth=auth, timeout=30) as client:
        items = client.get("/api/v1/replication/policies", params={"limit": 1000}).json()["items"]
    found = [p for p in items if p["name"] == name]
    return found[0] if found else None


def test_replication_policy_module_converges(registry: MoorageServer, tmp_path: Path) -> None:
    endpoint, name = f"peer-{secrets.token_hex(3)}", f"ans-{secrets.token_hex(3)}"
    auth = (registry.admin_username, registry.admin_password)
    created = httpx.post(
        f"{registry.url}/api/v1/registries",
        json={"name": endpoint, "url": "https://peer.example.test", "type": "moorage"},
        auth=auth,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    task = {
        "name": name,
        "direction": "push",
        "endpoint": endpoint,
        "repositories": "team/**",
        "trigger": "event",
        "deletions": True,
    }
    playbook = _playbook(tmp_path / "site.yml", task)
    changed, _ = _play(playbook, registry, "--check", "--diff")
    assert changed == 1
    assert _policy(registry, name) is None, "check mode changes nothing"
    changed, _ = _play(playbook, registry)
    assert changed == 1
    stored = _policy(registry, name)
    assert stored is not None
    assert (stored["repositories"], stored["trigger"], stored["deletions"]) == (
        "team/**",
        "event",
        True,
    )
    changed, _ = _play(playbook, registry)
    assert changed == 0, "a second run changes nothing"

    changed, _ = _play(_playbook(tmp_path / "more.yml", {**task, "concurrency": 2}), registry)
    assert changed == 1
    updated = _policy(registry, name)
    assert updated is not None
    assert (updated["id"], updated["concurrency"], updated["deletions"]) == (stored["id"], 2, True)

    gone = _playbook(tmp_path / "gone.yml", {"name": name, "state": "absent"})
    changed, _ = _play(gone, registry)
    assert changed == 1
    assert _policy(registry, name) is None
