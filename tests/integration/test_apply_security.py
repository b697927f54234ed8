"""``moorage apply|plan|export`` with trust policies, scan policies and CVE allowlists.

Against a running ``moorage api`` of its own (its system allowlist and prune are this
module's alone); what the commands changed is read back through the management API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.integration.test_apply_cli import Registry, _doc, _name, _registry
from tests.unit.core.trust_fixtures import new_key, public_pem

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _registry(tmp_path_factory, "apply-security")


def _security_config(project: str, key_pem: str) -> list[dict[str, Any]]:
    return [
        _doc("Project", {"name": project}),
        _doc(
            "TrustPolicy",
            {"project": project},
            {
                "keys": [{"name": "ci", "public_key": key_pem}],
                "signatures": {"required_signers": 1, "signers": ["ci"]},
                "attestations": [
                    {"predicate_type": "https://slsa.dev/provenance/v1", "signers": ["ci"]}
                ],
            },
        ),
        _doc(
            "ScanPolicy",
            {"project": project},
            {"scan_on_push": False, "prevent_severity": "High", "refuse_unscanned": True},
        ),
        _doc(
            "CveAllowlist",
            {"project": project},
            {
                "items": [
                    # lower case and a zone other than UTC: the registry stores them normalized
                    {"id": "cve-2024-0001", "expires_at": "2031-01-01T02:00:00+02:00"},
                    {"id": "GHSA-abcd-efgh-ijkl", "comment": "not reachable"},
                ]
            },
        ),
        {
            "apiVersion": "moorage.io/v1",
            "kind": "CveAllowlist",
            "spec": {"items": [{"id": "CVE-2020-0002"}]},
        },
    ]


def _changes(result: Any) -> set[tuple[str, str, str]]:
    return {(c["action"], c["kind"], c["key"]) for c in result.json()["changes"]}


def test_security_policies_apply_plan_export_and_prune(registry: Registry) -> None:
    project, key_pem = _name("sec"), public_pem(new_key())
    config = _security_config(project, key_pem)
    path = registry.write(config)

    planned = registry.run("plan", "-f", str(path), "-o", "json")
    assert planned.code == 0, planned.err
    assert _changes(planned) == {
        ("create", "Project", project),
        ("create", "TrustPolicy", project),
        ("create", "ScanPolicy", project),
        ("create", "CveAllowlist", project),
        ("update", "CveAllowlist", "(system)"),
    }
    assert registry.get(f"/api/v1/projects/{project}").status_code == 404
    assert registry.get("/api/v1/scan-allowlist").json()["items"] == []

    applied = registry.run("apply", "-f", str(path), "-o", "json")
    assert applied.code == 0, applied.err
    trust = registry.get(f"/api/v1/projects/{project}/trust/policy").json()["document"]
    assert [k["name"] for k in trust["keys"]] == ["ci"]
    assert trust["signatures"] == {"required_signers": 1, "signers": ["ci"]}
    assert trust["attestations"][0]["predicate_type"] == "https://slsa.dev/provenance/v1"
    assert registry.get(f"/api/v1/projects/{project}/scan-policy").json() == {
        "scan_on_push": False,
        "prevent_severity": "High",
        "refuse_unscanned": True,
    }
    items = registry.get(f"/api/v1/projects/{project}/scan-allowlist").json()["items"]
    assert [(i["id"], i["comment"]) for i in items] == [
        ("CVE-2024-0001", ""),
        ("GHSA-ABCD-EFGH-IJKL", "not reachable"),
    ]
    assert items[0]["expires_at"].startswith("2031-01-01T00:00:00")
    assert items[1]["expires_at"] is None
    system = registry.get("/api/v1/scan-allowlist").json()["items"]
    assert [i["id"] for i in system] == ["CVE-2020-0002"]

    # the same file again changes nothing (ids and expiry compared as the registry keeps them)
    again = registry.run("apply", "-f", str(path), "-o", "json")
    assert again.code == 0, again.err
    assert again.json() == {"changes": [], "secrets": {}}
    assert registry.run("plan", "-f", str(path), "--detailed-exitcode").code == 0

    exported = registry.run("export")
    assert exported.code == 0, exported.err
    docs = list(yaml.safe_load_all(exported.out))
    by_kind = {(d["kind"], d.get("metadata", {}).get("project")): d for d in docs}
    assert by_kind["TrustPolicy", project]["spec"]["keys"][0]["public_key"] == key_pem
    assert by_kind["ScanPolicy", project]["spec"]["prevent_severity"] == "High"
    assert by_kind["CveAllowlist", project]["spec"]["items"][0] == {
        "id": "CVE-2024-0001",
        "expires_at": "2031-01-01T00:00:00+00:00",
        "comment": "",
    }
    assert "metadata" not in by_kind["CveAllowlist", None]
    export_path = registry.workdir / f"{project}-export.yaml"
    export_path.write_text(exported.out, encoding="utf-8")
    reapplied = registry.run("apply", "-f", str(export_path), "--prune", "-o", "json")
    assert reapplied.code == 0, reapplied.err
    assert reapplied.json()["changes"] == []

    # changes in place: each document is put whole
    changed = _security_config(project, key_pem)
    changed[1]["spec"]["enforce"] = False
    changed[2]["spec"]["prevent_severity"] = "Critical"
    changed[3]["spec"]["items"] = changed[3]["spec"]["items"][1:]
    updated = registry.run("apply", "-f", str(registry.write(changed)), "-o", "json")
    assert updated.code == 0, updated.err
    assert {(c["kind"], c["action"], tuple(c["fields"])) for c in updated.json()["changes"]} == {
        ("TrustPolicy", "update", ("enforce",)),
        ("ScanPolicy", "update", ("prevent_severity",)),
        ("CveAllowlist", "update", ("items",)),
    }
    trust = registry.get(f"/api/v1/projects/{project}/trust/policy").json()["document"]
    assert trust["enforce"] is False
    policy = registry.get(f"/api/v1/projects/{project}/scan-policy").json()
    assert policy["prevent_severity"] == "Critical"
    items = registry.get(f"/api/v1/projects/{project}/scan-allowlist").json()["items"]
    assert [i["id"] for i in items] == ["GHSA-ABCD-EFGH-IJKL"]

    # --prune with the project alone: the trust policy goes, the rest is reset
    bare = [d for d in docs if d["kind"] not in {"TrustPolicy", "ScanPolicy", "CveAllowlist"}]
    bare_path = registry.write(bare)
    assert registry.run("apply", "-f", str(bare_path), "-o", "json").json()["changes"] == []
    planned = registry.run("plan", "-f", str(bare_path), "--prune", "-o", "json")
    assert planned.code == 0, planned.err
    assert _changes(planned) == {
        ("delete", "TrustPolicy", project),
        ("update", "ScanPolicy", project),
        ("update", "CveAllowlist", project),
        ("update", "CveAllowlist", "(system)"),
    }
    pruned = registry.run("apply", "-f", str(bare_path), "--prune", "-o", "json")
    assert pruned.code == 0, pruned.err
    assert registry.get(f"/api/v1/projects/{project}/trust/policy").status_code == 404
    assert registry.get(f"/api/v1/projects/{project}/scan-policy").json() == {
        "scan_on_push": True,
        "prevent_severity": None,
        "refuse_unscanned": False,
    }
    assert registry.get(f"/api/v1/projects/{project}/scan-allowlist").json()["items"] == []
    assert registry.get("/api/v1/scan-allowlist").json()["items"] == []
    settled = registry.run("plan", "-f", str(bare_path), "--prune", "-o", "json")
    assert settled.json()["changes"] == []
    left = {d["kind"] for d in yaml.safe_load_all(registry.run("export").out)}
    assert not {"TrustPolicy", "ScanPolicy", "CveAllowlist"} & left


def test_security_changes_are_undone_when_a_later_change_is_refused(registry: Registry) -> None:
    kept, bare, key_pem = _name("kept"), _name("bare"), public_pem(new_key())
    config = [*_security_config(kept, key_pem), _doc("Project", {"name": bare})]
    assert registry.run("apply", "-f", str(registry.write(config))).code == 0

    def state() -> list[Any]:
        reads = [
            f"/api/v1/projects/{kept}/trust/policy",
            f"/api/v1/projects/{kept}/scan-policy",
            f"/api/v1/projects/{kept}/scan-allowlist",
            "/api/v1/scan-allowlist",
            f"/api/v1/projects/{bare}/scan-policy",
        ]
        answers = [registry.get(path).json() for path in reads]
        answers[0] = answers[0]["document"]
        return answers

    before = state()
    changed = _security_config(kept, public_pem(new_key()))
    changed[2]["spec"]["scan_on_push"] = True
    changed[3]["spec"]["items"] = [{"id": "CVE-1999-0001"}]
    changed[4]["spec"]["items"] = []
    changed += [
        _doc("Project", {"name": bare}),
        _doc("TrustPolicy", {"project": bare}, {"keys": [{"name": "k", "public_key": key_pem}]}),
        _doc("ScanPolicy", {"project": bare}, {"prevent_severity": "Low"}),
        # refused by the server (no public address), after every change above
        _doc(
            "Webhook",
            {"name": "x", "project": bare},
            {"url": "https://127.0.0.1/x", "events": ["tag.pushed"]},
        ),
    ]
    failed = registry.run("apply", "-f", str(registry.write(changed)))
    assert failed.code == 1
    report = json.loads(failed.err)
    assert report["change"] == f"+ Webhook {bare}/x"
    assert report["undo_failures"] == []
    assert state() == before
    assert registry.get(f"/api/v1/projects/{bare}/trust/policy").status_code == 404
