"""``moorage apply|plan|export`` against a real ``moorage api`` process.

The commands run in this process (Typer's runner) and reach the registry over HTTP like
any operator would; what they changed is checked through the management API.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from tests.services.moorage import MoorageServer, start_moorage

pytestmark = pytest.mark.integration
runner = CliRunner()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Registry:
    server: MoorageServer
    workdir: Path

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        base = {
            "MOORAGE_URL": self.server.url,
            "MOORAGE_USERNAME": self.server.admin_username,
            "MOORAGE_PASSWORD": self.server.admin_password,
            "HOME": str(self.workdir),
        }
        done = runner.invoke(app, list(args), env=base | (env or {}))
        return Result(done.exit_code, done.stdout, done.stderr)

    def write(self, docs: list[dict[str, Any]], suffix: str = ".yaml") -> Path:
        path = self.workdir / f"{uuid.uuid4().hex}{suffix}"
        if suffix == ".json":
            path.write_text(json.dumps(docs), encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump_all(docs), encoding="utf-8")
        return path

    def get(self, path: str) -> httpx.Response:
        auth = (self.server.admin_username, self.server.admin_password)
        return httpx.get(self.server.url + path, auth=auth, timeout=30.0)


def _registry(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp(name)
    server = start_moorage(root / "api", {"MOORAGE_DATA_DIR": str(root / "data")})
    try:
        yield Registry(server, root)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _registry(tmp_path_factory, "apply-cli")


@pytest.fixture(scope="module")
def refusing_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry of its own for the refused files: its export stays small to compare."""
    yield from _registry(tmp_path_factory, "apply-refused")


def _doc(kind: str, metadata: dict[str, Any], spec: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "moorage.io/v1", "kind": kind, "metadata": metadata}
    if spec is not None:
        doc["spec"] = spec
    return doc


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def _full_config(project: str, user: str, system_robot: str) -> list[dict[str, Any]]:
    return [
        _doc("User", {"name": user}, {"email": f"{user}@example.org", "password": "env:DEV_PW"}),
        _doc("Project", {"name": project}, {"public": True}),
        _doc("Quota", {"project": project}, {"bytes": 10_000_000, "artifacts": 50}),
        _doc(
            "RetentionPolicy",
            {"project": project},
            {"rules": [{"template": "latestPushedK", "n": 3, "tag": {"pattern": "v*"}}]},
        ),
        _doc("ImmutabilityPolicy", {"project": project}, {"rules": [{"tag": {"pattern": "1.*"}}]}),
        _doc(
            "Robot",
            {"name": "ci", "project": project},
            {"permissions": [{"repository": "app", "actions": ["push", "pull"]}]},
        ),
        _doc(
            "Robot",
            {"name": system_robot},
            {
                "permissions": [{"repository": f"{project}/*", "actions": ["pull"]}],
                "expires_at": "2031-01-01T00:00:00Z",
            },
        ),
        _doc("Member", {"project": project, "user": user}, {"role": "developer"}),
        _doc("Member", {"project": project, "robot": f"robot${project}+ci"}, {"role": "guest"}),
        _doc(
            "TrustedIssuer",
            {"name": f"https://{project}.issuer.example"},
            {
                "jwks_url": f"https://{project}.issuer.example/jwks",
                "audience": "moorage",
                "permissions": [{"repository": f"{project}/*", "actions": ["pull"]}],
            },
        ),
    ]


def test_apply_plan_export_round_trip(registry: Registry) -> None:
    project, user, robot = _name("p"), _name("u"), _name("sys")
    env = {"DEV_PW": secrets.token_urlsafe(18)}
    path = registry.write(_full_config(project, user, robot))

    planned = registry.run("plan", "-f", str(path), "-o", "json", env=env)
    assert planned.code == 0, planned.err
    assert {c["action"] for c in planned.json()["changes"]} == {"create"}
    assert len(planned.json()["changes"]) == 10
    assert registry.get(f"/api/v1/projects/{project}").status_code == 404  # plan changed nothing
    assert registry.run("plan", "-f", str(path), "--detailed-exitcode", env=env).code == 2

    applied = registry.run("apply", "-f", str(path), "-o", "json", env=env)
    assert applied.code == 0, applied.err
    assert len(applied.json()["changes"]) == 10
    robot_secret = applied.json()["secrets"][f"robot${project}+ci"]
    assert set(applied.json()["secrets"]) == {f"robot${project}+ci", f"robot${robot}"}

    assert registry.get(f"/api/v1/projects/{project}").json()["public"] is True
    assert registry.get(f"/api/v1/projects/{project}/quota").json()["artifacts"] == 50
    members = registry.get(f"/api/v1/projects/{project}/members").json()["items"]
    assert {(m["kind"], m["name"], m["role"]) for m in members} == {
        ("user", user, "developer"),
        ("robot", f"robot${project}+ci", "guest"),
    }
    # the printed secret is the robot's: the user's password came from the environment
    login = httpx.get(
        f"{registry.server.url}/auth/token",
        params={"service": "moorage", "scope": f"repository:{project}/app:pull"},
        auth=(f"robot${project}+ci", robot_secret),
        timeout=30.0,
    )
    assert login.status_code == 200, login.text
    assert httpx.get(
        f"{registry.server.url}/api/v1/users/{user}", auth=(user, env["DEV_PW"]), timeout=30.0
    ).is_success

    again = registry.run("apply", "-f", str(path), "-o", "json", env=env)
    assert again.code == 0, again.err
    assert again.json() == {"changes": [], "secrets": {}}
    assert registry.run("plan", "-f", str(path), "--detailed-exitcode", env=env).code == 0

    exported = registry.run("export")
    assert exported.code == 0, exported.err
    assert robot_secret not in exported.out
    assert env["DEV_PW"] not in exported.out
    assert "password" not in exported.out
    export_path = registry.workdir / f"{project}-export.yaml"
    export_path.write_text(exported.out, encoding="utf-8")
    kinds = {
        (d["kind"], json.dumps(d["metadata"], sort_keys=True))
        for d in yaml.safe_load_all(exported.out)
    }
    assert ("Project", json.dumps({"name": project})) in kinds
    reapplied = registry.run("apply", "-f", str(export_path), "--prune", "-o", "json")
    assert reapplied.code == 0, reapplied.err
    assert reapplied.json()["changes"] == []

    # a change in place and a replacement: the robot's permissions are fixed at creation
    changed = _full_config(project, user, robot)
    changed[1]["spec"]["public"] = False
    changed[5]["spec"]["permissions"] = [{"repository": "app", "actions": ["pull"]}]
    result = registry.run(
        "apply", "-f", str(registry.write(changed, ".json")), "-o", "json", env=env
    )
    assert result.code == 0, result.err
    actions = {(c["kind"], c["action"]) for c in result.json()["changes"]}
    # deleting a robot drops its memberships: the replacement adds them again
    assert actions == {("Project", "update"), ("Robot", "replace"), ("Member", "create")}
    assert registry.get(f"/api/v1/projects/{project}").json()["public"] is False
    assert set(result.json()["secrets"]) == {f"robot${project}+ci"}
    members = registry.get(f"/api/v1/projects/{project}/members").json()["items"]
    assert ("robot", f"robot${project}+ci", "guest") in {
        (m["kind"], m["name"], m["role"]) for m in members
    }
    path = registry.write(changed)
    assert registry.run("apply", "-f", str(path), "-o", "json", env=env).json()["changes"] == []


def test_prune_removes_only_what_the_file_no_longer_names(registry: Registry) -> None:
    keep, drop, user = _name("keep"), _name("drop"), _name("u")
    env = {"DEV_PW": secrets.token_urlsafe(18)}
    config = _full_config(keep, user, _name("sys"))
    config.append(_doc("Project", {"name": drop}))
    assert registry.run("apply", "-f", str(registry.write(config)), env=env).code == 0

    exported = list(yaml.safe_load_all(registry.run("export").out))
    remaining = [
        d
        for d in exported
        if not (d["metadata"].get("name") == drop and d["kind"] == "Project")
        and not (d["kind"] == "Member" and d["metadata"].get("robot") == f"robot${keep}+ci")
        and not (d["kind"] == "Robot" and d["metadata"].get("project") == keep)
        and not (d["kind"] == "Quota" and d["metadata"]["project"] == keep)
    ]
    path = registry.write(remaining)

    # without --prune what the file leaves out stays
    assert registry.run("apply", "-f", str(path), "-o", "json").json()["changes"] == []
    assert registry.get(f"/api/v1/projects/{drop}").status_code == 200

    planned = registry.run("plan", "-f", str(path), "--prune", "-o", "json")
    assert planned.code == 0, planned.err
    assert {(c["action"], c["kind"], c["key"]) for c in planned.json()["changes"]} == {
        ("delete", "Project", drop),
        ("delete", "Member", f"{keep}/robot:robot${keep}+ci"),
        ("delete", "Robot", f"robot${keep}+ci"),
        ("update", "Quota", keep),
    }
    assert registry.get(f"/api/v1/projects/{drop}").status_code == 200  # plan changed nothing

    pruned = registry.run("apply", "-f", str(path), "--prune", "-o", "json")
    assert pruned.code == 0, pruned.err
    assert registry.get(f"/api/v1/projects/{drop}").status_code == 404
    assert registry.get(f"/api/v1/projects/{keep}/robots").json()["items"] == []
    assert registry.get(f"/api/v1/projects/{keep}/quota").json()["bytes"] is None
    members = registry.get(f"/api/v1/projects/{keep}/members").json()["items"]
    assert [(m["kind"], m["name"]) for m in members] == [("user", user)]
    assert registry.run("apply", "-f", str(path), "--prune", "-o", "json").json()["changes"] == []


def _bad_cases(project: str) -> dict[str, tuple[list[dict[str, Any]], str]]:
    good = _doc("Project", {"name": project})
    return {
        "unknown key": (
            [good, _doc("Quota", {"project": project}, {"bytes": 1, "artefacts": 2})],
            "document 2 (line 6): spec.artefacts: unknown key",
        ),
        "wrong type": (
            [_doc("Project", {"name": project}, {"public": "sometimes"})],
            "document 1 (line 1): spec.public: Input should be a valid boolean",
        ),
        "unknown key in a nested rule": (
            [
                good,
                _doc(
                    "RetentionPolicy",
                    {"project": project},
                    {"rules": [{"template": "always", "untaged": True}]},
                ),
            ],
            "spec.rules[0].untaged: unknown key",
        ),
        "missing project": (
            [
                good,
                _doc("Member", {"project": "no-such-project", "user": "admin"}, {"role": "guest"}),
            ],
            "metadata.project: no project 'no-such-project' in the file or the registry",
        ),
        "missing robot": (
            [
                good,
                _doc("Member", {"project": project, "robot": "robot$nobody"}, {"role": "guest"}),
            ],
            "metadata.robot: no robot 'robot$nobody'",
        ),
        "duplicate name": ([good, good], f"duplicate Project '{project}'"),
        "inline secret": (
            [good, _doc("User", {"name": _name("u")}, {"password": "hunter2hunter2"})],
            "spec.password: String should match pattern",
        ),
        "unset secret": (
            [good, _doc("User", {"name": _name("u")}, {"password": "env:NO_SUCH_VARIABLE_SET"})],
            "the environment variable NO_SUCH_VARIABLE_SET is not set",
        ),
        "unknown key in a scan policy": (
            [good, _doc("ScanPolicy", {"project": project}, {"scan_on_pushed": False})],
            "document 2 (line 6): spec.scan_on_pushed: unknown key",
        ),
        "wrong severity": (
            [good, _doc("ScanPolicy", {"project": project}, {"prevent_severity": "Severe"})],
            (
                "document 2 (line 6): spec.prevent_severity: Input should be 'Unknown', "
                "'Negligible', 'Low', 'Medium', 'High' or 'Critical'"
            ),
        ),
        "duplicate allowlist id": (
            [
                good,
                _doc(
                    "CveAllowlist",
                    {"project": project},
                    {"items": [{"id": "CVE-2024-1234"}, {"id": "cve-2024-1234"}]},
                ),
            ],
            "spec.items: Value error, items[1]: duplicate id 'cve-2024-1234' (as items[0])",
        ),
        "allowlist of a missing project": (
            [good, _doc("CveAllowlist", {"project": "no-such-project"}, {"items": []})],
            "metadata.project: no project 'no-such-project' in the file or the registry",
        ),
        "unknown key in a trust policy": (
            [good, _doc("TrustPolicy", {"project": project}, {"enforced": False})],
            "document 2 (line 6): spec.enforced: unknown key",
        ),
        "trust policy key that does not load": (
            [
                good,
                _doc(
                    "TrustPolicy",
                    {"project": project},
                    {"keys": [{"name": "ci", "public_key": "not a key"}]},
                ),
            ],
            "spec: Value error, keys.0.public_key: key 'ci' is not a PEM public key",
        ),
        "trust policy signer without a key": (
            [good, _doc("TrustPolicy", {"project": project}, {"signatures": {"signers": ["ci"]}})],
            "spec: Value error, signatures.signers: no key named 'ci'",
        ),
        "system allowlist and scan policy refused later by the server, undone": (
            [
                good,
                _doc("ScanPolicy", {"project": project}, {"prevent_severity": "Low"}),
                {
                    "apiVersion": "moorage.io/v1",
                    "kind": "CveAllowlist",
                    "spec": {"items": [{"id": "CVE-2020-0001"}]},
                },
                _doc(
                    "Webhook",
                    {"name": "x", "project": project},
                    {"url": "https://127.0.0.1/x", "events": ["tag.pushed"]},
                ),
            ],
            f'"change": "+ Webhook {project}/x"',
        ),
        "missing user (refused by the server, undone)": (
            [
                good,
                _doc(
                    "Robot",
                    {"name": "ci", "project": project},
                    {"permissions": [{"repository": "a", "actions": ["pull"]}]},
                ),
                _doc("Quota", {"project": project}, {"bytes": 5}),
                _doc("Member", {"project": project, "user": "ghost-user"}, {"role": "guest"}),
            ],
            "no user 'ghost-user'",
        ),
    }


@pytest.mark.parametrize("case", list(_bad_cases("x")))
def test_bad_input_is_refused_precisely_and_nothing_is_applied(
    refusing_registry: Registry, case: str
) -> None:
    registry = refusing_registry
    project = _name("bad")
    docs, expected = _bad_cases(project)[case]
    path = registry.write(docs)
    before = registry.run("export").out
    result = registry.run("apply", "-f", str(path))
    assert result.code == 1
    assert expected in result.err, result.err
    assert registry.get(f"/api/v1/projects/{project}").status_code == 404
    assert registry.run("export").out == before


@pytest.fixture(scope="module")
def outbound_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry of its own for webhooks and endpoints (its prune sees only them)."""
    yield from _registry(tmp_path_factory, "apply-outbound")


def _outbound_config(project: str, endpoint: str, system_hook: str) -> list[dict[str, Any]]:
    return [
        _doc("Project", {"name": project}),
        _doc(
            "RegistryEndpoint",
            {"name": endpoint},
            {
                "url": "https://mirror.example.test",
                "type": "distribution",
                "credential": "basic",
                "username": "puller",
                "secret": "env:HUB_PW",
            },
        ),
        _doc("ProxyBinding", {"project": project}, {"endpoint": endpoint, "freshness_seconds": 60}),
        _doc(
            "Webhook",
            {"name": "ci", "project": project},
            {
                "url": "https://hooks.example.test/ci",
                "events": ["tag.pushed", "artifact.pushed"],
                "auth_header": "env:HOOK_AUTH",
            },
        ),
        _doc(
            "Webhook",
            {"name": system_hook},
            {"url": "https://hooks.example.test/all", "events": ["gc.finished"], "enabled": False},
        ),
    ]


def test_webhooks_endpoints_and_proxy_bindings_as_code(outbound_registry: Registry) -> None:
    registry = outbound_registry
    project, endpoint, hook = _name("cache"), _name("hub-"), _name("all")
    env = {"HUB_PW": secrets.token_urlsafe(18), "HOOK_AUTH": f"Bearer {secrets.token_hex(8)}"}
    config = _outbound_config(project, endpoint, hook)
    path = registry.write(config)

    applied = registry.run("apply", "-f", str(path), "-o", "json", env=env)
    assert applied.code == 0, applied.err
    assert [(c["action"], c["kind"]) for c in applied.json()["changes"]] == [
        ("create", "RegistryEndpoint"),
        ("create", "Project"),
        ("create", "ProxyBinding"),
        ("create", "Webhook"),
        ("create", "Webhook"),
    ]
    # the signing secrets, generated by the server, are printed once
    assert set(applied.json()["secrets"]) == {f"webhook {project}/ci", f"webhook */{hook}"}
    stored = registry.get(f"/api/v1/registries/{endpoint}").json()
    assert (stored["has_secret"], stored["username"], stored["type"]) == (
        True,
        "puller",
        "distribution",
    )
    assert registry.get(f"/api/v1/projects/{project}/proxy").json() == {
        "endpoint": endpoint,
        "freshness_seconds": 60,
        "serve_stale": None,
    }
    [project_hook] = registry.get(f"/api/v1/projects/{project}/webhooks").json()["items"]
    assert project_hook["has_auth_header"] is True
    assert sorted(project_hook["events"]) == ["artifact.pushed", "tag.pushed"]
    system_hooks = {h["name"]: h for h in registry.get("/api/v1/webhooks").json()["items"]}
    assert system_hooks[hook]["enabled"] is False

    # the file's references stand for the secrets the registry holds: nothing to change
    again = registry.run("apply", "-f", str(path), "-o", "json", env=env)
    assert again.json() == {"changes": [], "secrets": {}}, again.err

    exported = registry.run("export")
    assert exported.code == 0, exported.err
    assert env["HUB_PW"] not in exported.out
    assert env["HOOK_AUTH"] not in exported.out
    for value in applied.json()["secrets"].values():
        assert value not in exported.out
    docs = list(yaml.safe_load_all(exported.out))
    [hook_doc] = [d for d in docs if d["kind"] == "Webhook" and d["metadata"]["name"] == "ci"]
    assert hook_doc["spec"]["auth_header"] == "stored"
    export_path = registry.workdir / "outbound-export.yaml"
    export_path.write_text(exported.out, encoding="utf-8")
    reapplied = registry.run("apply", "-f", str(export_path), "--prune", "-o", "json")
    assert reapplied.code == 0, reapplied.err
    assert reapplied.json()["changes"] == []

    # asking for a rotation sends the referenced header again
    config[3]["spec"]["auth_header_rotate"] = True
    rotated = registry.run("apply", "-f", str(registry.write(config)), "-o", "json", env=env)
    assert rotated.code == 0, rotated.err
    assert rotated.json()["changes"][0]["fields"] == {
        "auth_header": {"before": "set", "after": "rotate"}
    }

    # --prune with the project alone: binding reset first, then webhooks and the endpoint
    kept = [d for d in docs if d["kind"] not in {"ProxyBinding", "Webhook", "RegistryEndpoint"}]
    pruned = registry.run("apply", "-f", str(registry.write(kept)), "--prune", "-o", "json")
    assert pruned.code == 0, pruned.err
    assert [(c["action"], c["kind"]) for c in pruned.json()["changes"]] == [
        ("update", "ProxyBinding"),
        ("delete", "Webhook"),
        ("delete", "Webhook"),
        ("delete", "RegistryEndpoint"),
    ]
    assert registry.get(f"/api/v1/projects/{project}/proxy").json()["endpoint"] is None
    assert registry.get(f"/api/v1/projects/{project}/webhooks").json()["items"] == []
    assert registry.get(f"/api/v1/registries/{endpoint}").status_code == 404
    settled = registry.run("plan", "-f", str(registry.write(kept)), "--prune", "-o", "json")
    assert settled.json()["changes"] == []


def test_outbound_kinds_are_refused_precisely_and_undone(outbound_registry: Registry) -> None:
    registry = outbound_registry
    project, endpoint = _name("p"), _name("hub-")
    unknown = [
        _doc("Project", {"name": project}),
        _doc("ProxyBinding", {"project": project}, {"endpoint": "nowhere"}),
        _doc("Webhook", {"name": "x", "project": project}, {"url": "https://h.example.test/x"}),
    ]
    path = registry.write(unknown)
    refused = registry.run("plan", "-f", str(path))
    assert refused.code == 1
    assert json.loads(refused.err)["errors"] == [
        f"{path}: document 3 (line 13): spec.events: Field required"
    ]
    path = registry.write(unknown[:2])
    refused = registry.run("plan", "-f", str(path))
    assert refused.code == 1
    assert json.loads(refused.err)["errors"] == [
        (
            f"{path}: document 2 (line 6): spec.endpoint: no registry endpoint 'nowhere' "
            "in the file or the registry"
        )
    ]
    assert registry.get(f"/api/v1/projects/{project}").status_code == 404

    # the second change is refused by the server (no public address): the first is undone
    config = [
        _doc("RegistryEndpoint", {"name": endpoint}, {"url": "https://mirror.example.test"}),
        _doc("Webhook", {"name": "bad"}, {"url": "https://127.0.0.1/x", "events": ["gc.finished"]}),
    ]
    failed = registry.run("apply", "-f", str(registry.write(config)))
    assert failed.code == 1
    report = json.loads(failed.err)
    assert report["change"] == "+ Webhook */bad"
    assert report["undo_failures"] == []
    assert registry.get(f"/api/v1/registries/{endpoint}").status_code == 404
