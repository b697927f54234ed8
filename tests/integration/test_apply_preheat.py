"""``moorage apply|plan|export`` with ``P2PInstance`` and ``PreheatPolicy`` documents.

Against a running ``moorage api`` of its own (its prune sees only this module's objects)
and a Temporal dev server (a scheduled policy's schedule is kept there). No provider is
needed: applying never calls one, and the instance's endpoint is a public name the
outbound policy accepts. What the commands changed is read back through the API.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.integration.test_apply_cli import Registry, _doc, _name
from tests.services.moorage import start_moorage
from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration

ENDPOINT = "https://dragonfly.example.com"


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, temporal_server: TemporalServer
) -> Iterator[Registry]:
    """A registry of its own, with Temporal (a scheduled policy gets a Temporal schedule)."""
    root = tmp_path_factory.mktemp("apply-preheat")
    env = {
        "MOORAGE_DATA_DIR": str(root / "data"),
        "MOORAGE_TEMPORAL__ADDRESS": temporal_server.address,
        "MOORAGE_TEMPORAL__NAMESPACE": temporal_server.namespace,
        "MOORAGE_TEMPORAL__TASK_QUEUE": f"apply-preheat-{secrets.token_hex(4)}",
    }
    server = start_moorage(root / "api", env)
    try:
        yield Registry(server, root)
    finally:
        server.stop()


def _instances(registry: Registry) -> dict[str, dict[str, Any]]:
    response = registry.get("/api/v1/p2p/instances?limit=100")
    assert response.status_code == 200, response.text
    return {i["name"]: i for i in response.json()["items"]}


def _policies(registry: Registry, project: str) -> dict[str, dict[str, Any]]:
    response = registry.get(f"/api/v1/projects/{project}/preheat/policies?limit=100")
    assert response.status_code == 200, response.text
    return {p["name"]: p for p in response.json()["items"]}


def _config(project: str, instance: str) -> list[dict[str, Any]]:
    return [
        _doc("Project", {"name": project}),
        _doc(
            "P2PInstance",
            {"name": instance},
            {
                "vendor": "dragonfly",
                "endpoint": ENDPOINT + "/",
                "auth_mode": "bearer",
                "secret": "env:DF_TOKEN",
            },
        ),
        _doc(
            "PreheatPolicy",
            {"project": project, "name": "nightly"},
            {
                "instance": instance,
                "repositories": "app/**",
                "tags": "v*",
                "severity": "high",
                "trigger": "scheduled",
                "cron": "0  3 * * *",
                "scope": "all_seed_peers",
                "cluster_ids": [3, 1],
            },
        ),
    ]


def _changes(result: Any) -> list[tuple[str, str, str]]:
    return [(c["action"], c["kind"], c["key"]) for c in result.json()["changes"]]


def test_preheat_kinds_apply_export_update_and_prune(registry: Registry) -> None:
    project, instance = _name("ph"), _name("df-")
    env = {"DF_TOKEN": secrets.token_urlsafe(18)}
    config = _config(project, instance)
    path = registry.write(config)

    applied = registry.run("apply", "-f", str(path), "-o", "json", env=env)
    assert applied.code == 0, applied.out + applied.err
    assert _changes(applied) == [
        ("create", "P2PInstance", instance),
        ("create", "Project", project),
        ("create", "PreheatPolicy", f"{project}/nightly"),
    ]
    created = _instances(registry)[instance]
    assert (created["endpoint"], created["auth_mode"], created["has_secret"]) == (
        ENDPOINT,
        "bearer",
        True,
    )
    policy = _policies(registry, project)["nightly"]
    assert (policy["instance"], policy["cron"], policy["cluster_ids"]) == (
        instance,
        "0 3 * * *",
        [1, 3],
    )

    # the same file again changes nothing (endpoint, cron and clusters compared as stored)
    again = registry.run("apply", "-f", str(path), "-o", "json", env=env)
    assert again.code == 0, again.err
    assert again.json() == {"changes": [], "secrets": {}}

    exported = registry.run("export")
    assert exported.code == 0, exported.err
    assert env["DF_TOKEN"] not in exported.out
    docs = list(yaml.safe_load_all(exported.out))
    by_kind = {d["kind"]: d for d in docs if d["kind"] in {"P2PInstance", "PreheatPolicy"}}
    assert by_kind["P2PInstance"]["metadata"] == {"name": instance}
    assert by_kind["P2PInstance"]["spec"]["secret"] == "stored"
    assert by_kind["PreheatPolicy"]["metadata"] == {"project": project, "name": "nightly"}
    assert by_kind["PreheatPolicy"]["spec"]["instance"] == instance
    export_path = registry.workdir / f"{project}-export.yaml"
    export_path.write_text(exported.out, encoding="utf-8")
    reapplied = registry.run("apply", "-f", str(export_path), "--prune", "-o", "json")
    assert reapplied.code == 0, reapplied.err
    assert reapplied.json()["changes"] == []

    # changes in place keep the ids; a rotated secret is sent again
    changed = _config(project, instance)
    changed[1]["spec"] |= {"description": "edge", "secret_rotate": True}
    changed[2]["spec"] |= {"tags": "**", "trigger": "manual", "cron": None}
    rotated = {"DF_TOKEN": secrets.token_urlsafe(18)}
    updated = registry.run("apply", "-f", str(registry.write(changed)), "-o", "json", env=rotated)
    assert updated.code == 0, updated.err
    assert {(c["kind"], c["action"], *sorted(c["fields"])) for c in updated.json()["changes"]} == {
        ("P2PInstance", "update", "description", "secret"),
        ("PreheatPolicy", "update", "cron", "tags", "trigger"),
    }
    assert _instances(registry)[instance]["description"] == "edge"
    assert _instances(registry)[instance]["id"] == created["id"]
    now = _policies(registry, project)["nightly"]
    assert (now["id"], now["tags"], now["trigger"], now["cron"]) == (
        policy["id"],
        "**",
        "manual",
        None,
    )

    # --prune with neither: the policy goes first, then the instance it named
    rest = [d for d in docs if d["kind"] not in {"P2PInstance", "PreheatPolicy"}]
    pruned = registry.run("apply", "-f", str(registry.write(rest)), "--prune", "-o", "json")
    assert pruned.code == 0, pruned.err
    assert _changes(pruned) == [
        ("delete", "PreheatPolicy", f"{project}/nightly"),
        ("delete", "P2PInstance", instance),
    ]
    assert _policies(registry, project) == {}
    assert instance not in _instances(registry)


def _refused(registry: Registry, docs: list[dict[str, Any]]) -> list[str]:
    """The errors of applying ``docs``, after checking that nothing was applied."""
    before = registry.run("export").out
    path = registry.write(docs)
    result = registry.run("apply", "-f", str(path), env={"DF_TOKEN": "t0ken"})
    assert result.code == 1, result.out
    assert registry.run("export").out == before
    return [e.removeprefix(f"{path}: ") for e in json.loads(result.err)["errors"]]


def test_bad_preheat_documents_are_refused_precisely_and_nothing_is_applied(
    registry: Registry,
) -> None:
    project, instance = _name("bad"), _name("df-")
    project_doc, instance_doc, policy_doc = _config(project, instance)

    unknown = {**instance_doc, "spec": {**instance_doc["spec"], "token": "env:DF_TOKEN"}}
    assert _refused(registry, [project_doc, unknown]) == [
        "document 2 (line 6): spec.token: unknown key"
    ]

    vendor = {**instance_doc, "spec": {**instance_doc["spec"], "vendor": "uber"}}
    assert _refused(registry, [project_doc, vendor]) == [
        "document 2 (line 6): spec.vendor: Input should be 'dragonfly' or 'kraken'"
    ]

    orphan = {**policy_doc, "spec": {**policy_doc["spec"], "instance": "nowhere"}}
    assert _refused(registry, [project_doc, orphan]) == [
        "document 2 (line 6): spec.instance: no P2P instance 'nowhere' in the file or the registry"
    ]

    assert _refused(registry, [instance_doc, policy_doc]) == [
        (
            f"document 2 (line 11): metadata.project: no project {project!r} in the file or "
            "the registry"
        )
    ]

    # refused by the server (the outbound policy): what was made before it is undone
    mirror = _name("hub-")
    endpoint = _doc("RegistryEndpoint", {"name": mirror}, {"url": "https://mirror.example.com"})
    loopback = {**instance_doc, "spec": {**instance_doc["spec"], "endpoint": "https://127.0.0.1"}}
    before = registry.run("export").out
    failed = registry.run(
        "apply",
        "-f",
        str(registry.write([endpoint, project_doc, loopback, policy_doc])),
        env={"DF_TOKEN": "t0ken"},
    )
    assert failed.code == 1
    report = json.loads(failed.err)
    assert report["change"] == f"+ P2PInstance {instance}"
    assert "endpoint" in json.dumps(report["problem"])
    assert report["undo_failures"] == []
    assert registry.get(f"/api/v1/registries/{mirror}").status_code == 404
    assert registry.run("export").out == before
