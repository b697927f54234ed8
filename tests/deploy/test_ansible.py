"""The moorage.registry Ansible collection against a running Moorage, and its sanity tests.

A playbook using every module runs in check mode (reports changes, makes none), then for
real (makes them), then again (reports none); the registry's state is read back through
the management API after each step.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from tests.clients.commands import run
from tests.services.ansible import ansible_home

if TYPE_CHECKING:
    from tests.services.moorage import MoorageServer

pytestmark = pytest.mark.clients

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "deploy" / "ansible"
COLLECTION = COLLECTIONS / "ansible_collections" / "moorage" / "registry"
BIN = Path(sys.executable).parent
RECAP = re.compile(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)")


def _playbook(path: Path, project: str, user: str, role: str, state: str = "present") -> Path:
    tasks: list[dict[str, Any]] = [
        {"moorage.registry.project": {"name": project, "public": False, "state": state}},
    ]
    if state == "present":
        tasks += [
            {"moorage.registry.member": {"project": project, "kind": "user", "name": user,
                                         "role": role}},
            {"moorage.registry.robot": {"project": project, "name": "ci",
                                        "permissions": [{"repository": "app",
                                                         "actions": ["pull", "push"]}]},
             "no_log": True},
            {"moorage.registry.quota": {"project": project, "bytes": 10_000_000,
                                        "artifacts": 50}},
            {"moorage.registry.immutability": {"project": project,
                                               "rules": [{"tag": {"pattern": "v*"}}]}},
            {"moorage.registry.retention": {"project": project, "rules": [
                {"template": "latestPushedK", "n": 3,
                 "tag": {"pattern": "**"}}]}},
            {"moorage.registry.webhook": {"project": project, "name": "ci",
                                          "target_url": "https://ci.example.test/hooks",
                                          "events": ["artifact.pushed", "tag.pushed"],
                                          "auth_header": "Bearer ci-token"},
             "no_log": True},
        ]  # fmt: skip
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
        "tasks": tasks,
    }
    path.write_text(yaml.safe_dump([play], sort_keys=False))
    return path


def _play(playbook: Path, registry: MoorageServer, *flags: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
    }
    result = run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
         "-e", f"moorage_url={registry.url}", "-e", f"moorage_username={registry.admin_username}",
         "-e", f"moorage_password={registry.admin_password}", *flags],
        env=env,
    )  # fmt: skip
    recap = RECAP.search(result.stdout)
    assert recap is not None, result.stdout
    assert (recap.group(3), recap.group(4)) == ("0", "0"), result.stdout
    assert registry.admin_password not in result.stdout
    return int(recap.group(2)), result.stdout


def _state(registry: MoorageServer, project: str) -> dict[str, Any] | None:
    auth = (registry.admin_username, registry.admin_password)
    with httpx.Client(base_url=registry.url, auth=auth, timeout=30) as client:
        found = client.get(f"/api/v1/projects/{project}")
        if found.status_code == 404:
            return None
        base = f"/api/v1/projects/{project}"
        return {
            "members": {(m["kind"], m["name"], m["role"])
                        for m in client.get(f"{base}/members").json()["items"]},
            "robots": [r["name"] for r in client.get(f"{base}/robots").json()["items"]],
            "quota": {k: client.get(f"{base}/quota").json()[k] for k in ("bytes", "artifacts")},
            "immutability": client.get(f"{base}/immutability").json()["rules"],
            "retention": client.get(f"{base}/retention").json()["rules"],
            "webhooks": [(w["name"], w["url"], sorted(w["events"]), w["has_auth_header"])
                         for w in client.get(f"{base}/webhooks").json()["items"]],
        }  # fmt: skip


def test_modules_apply_check_and_converge(registry: MoorageServer, tmp_path: Path) -> None:
    project = f"ansible-{secrets.token_hex(3)}"
    user = f"user-{secrets.token_hex(3)}"
    auth = (registry.admin_username, registry.admin_password)
    created = httpx.post(
        f"{registry.url}/api/v1/users", auth=auth, timeout=30,
        json={"username": user, "password": secrets.token_urlsafe(16)},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    playbook = _playbook(tmp_path / "site.yml", project, user, "developer")

    changed, output = _play(playbook, registry, "--check", "--diff")
    assert changed == 7
    assert '"public": false' in output  # the diff shows the project to be created
    assert _state(registry, project) is None  # check mode changed nothing

    changed, _ = _play(playbook, registry)
    assert changed == 7
    state = _state(registry, project)
    assert state is not None
    assert ("user", user, "developer") in state["members"]
    assert state["robots"] == [f"robot${project}+ci"]
    assert state["quota"] == {"bytes": 10_000_000, "artifacts": 50}
    assert state["immutability"][0]["tag"]["pattern"] == "v*"
    assert (state["retention"][0]["template"], state["retention"][0]["n"]) == ("latestPushedK", 3)
    hook = ("ci", "https://ci.example.test/hooks", ["artifact.pushed", "tag.pushed"], True)
    assert state["webhooks"] == [hook]

    changed, _ = _play(playbook, registry, "--diff")
    assert changed == 0  # idempotent

    promoted = _playbook(tmp_path / "promote.yml", project, user, "maintainer")
    changed, output = _play(promoted, registry, "--diff")
    assert changed == 1
    assert '"role": "maintainer"' in output
    state = _state(registry, project)
    assert state is not None
    assert ("user", user, "maintainer") in state["members"]

    removed = _playbook(tmp_path / "remove.yml", project, user, "maintainer", state="absent")
    assert _play(removed, registry)[0] == 1
    assert _state(registry, project) is None
    assert _play(removed, registry)[0] == 0


def test_collection_passes_ansible_test_sanity(tmp_path: Path) -> None:
    work = tmp_path / "ansible_collections" / "moorage" / "registry"
    shutil.copytree(COLLECTION, work, ignore=shutil.ignore_patterns("output", "__pycache__"))
    env = {**os.environ, "HOME": str(ansible_home()), "ANSIBLE_NOCOLOR": "1"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    result = run(
        [str(BIN / "ansible-test"), "sanity", "--python", "3.11", "--local", "--color", "no"],
        env=env, cwd=work, timeout=1500,
    )  # fmt: skip
    assert "FATAL" not in result.stdout + result.stderr
