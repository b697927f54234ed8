"""``moorage apply|plan|export`` with ``Scanner`` and ``ProjectScanner`` documents.

Against a running ``moorage api`` of its own (its prune sees only this module's objects).
No adapter is needed: applying never calls one, and the scanners' URLs are public names
the outbound policy accepts. What the commands changed is read back through the API.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.integration.test_apply_cli import Registry, _doc, _name, _registry

pytestmark = pytest.mark.integration

URL = "https://scanner.example.com/adapter"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    yield from _registry(tmp_path_factory, "apply-scanners")


def _scanners(registry: Registry) -> dict[str, dict[str, Any]]:
    response = registry.get("/api/v1/scanners?limit=100")
    assert response.status_code == 200, response.text
    return {s["name"]: s for s in response.json()["items"]}


def _selection(registry: Registry, project: str) -> Any:
    response = registry.get(f"/api/v1/projects/{project}/scanner")
    assert response.status_code == 200, response.text
    return response.json()["scanner"]


def _config(project: str, first: str, second: str) -> list[dict[str, Any]]:
    return [
        _doc("Project", {"name": project}),
        _doc(
            "Scanner",
            {"name": first},
            {
                "url": URL + "/",
                "auth": "Bearer",
                "access_credential": "env:SCANNER_TOKEN",
                "default": True,
            },
        ),
        _doc("Scanner", {"name": second}, {"url": "https://other.example.com", "disabled": True}),
        _doc("ProjectScanner", {"project": project}, {"scanner": second}),
    ]


def _changes(result: Any) -> list[tuple[str, str, str]]:
    return [(c["action"], c["kind"], c["key"]) for c in result.json()["changes"]]


def test_scanner_kinds_apply_export_update_and_prune(registry: Registry) -> None:
    project, first, second = _name("sc"), _name("trivy-"), _name("clair-")
    env = {"SCANNER_TOKEN": secrets.token_urlsafe(18)}
    path = registry.write(_config(project, first, second))

    applied = registry.run("apply", "-f", str(path), "-o", "json", env=env)
    assert applied.code == 0, applied.out + applied.err
    assert _changes(applied) == [
        ("create", "Scanner", first),
        ("create", "Scanner", second),
        ("create", "Project", project),
        ("create", "ProjectScanner", project),
    ]
    scanners = _scanners(registry)
    made = scanners[first]
    assert (made["url"], made["auth"], made["has_access_credential"], made["is_default"]) == (
        URL,
        "Bearer",
        True,
        True,
    )
    assert (scanners[second]["disabled"], scanners[second]["is_default"]) == (True, False)
    assert _selection(registry, project) == second

    # the same file again changes nothing (the URL compared as stored)
    again = registry.run("apply", "-f", str(path), "-o", "json", env=env)
    assert again.code == 0, again.err
    assert again.json() == {"changes": [], "secrets": {}}

    exported = registry.run("export")
    assert exported.code == 0, exported.err
    assert env["SCANNER_TOKEN"] not in exported.out
    docs = list(yaml.safe_load_all(exported.out))
    by_key = {(d["kind"], json.dumps(d["metadata"])): d for d in docs}
    spec = by_key["Scanner", json.dumps({"name": first})]["spec"]
    assert (spec["access_credential"], spec["default"], spec["url"]) == ("stored", True, URL)
    selection = by_key["ProjectScanner", json.dumps({"project": project})]
    assert selection["spec"] == {"scanner": second}
    export_path = registry.workdir / f"{project}-export.yaml"
    export_path.write_text(exported.out, encoding="utf-8")
    reapplied = registry.run("apply", "-f", str(export_path), "--prune", "-o", "json")
    assert reapplied.code == 0, reapplied.err
    assert reapplied.json()["changes"] == []

    # plan shows, apply makes: a rotated credential, the other scanner the default
    changed = _config(project, first, second)
    changed[1]["spec"] |= {
        "description": "edge",
        "default": False,
        "access_credential_rotate": True,
    }
    changed[2]["spec"] |= {"disabled": False, "default": True}
    changed_path = registry.write(changed)
    rotated = {"SCANNER_TOKEN": secrets.token_urlsafe(18)}
    planned = registry.run("plan", "-f", str(changed_path), "-o", "json", env=rotated)
    assert planned.code == 0, planned.err
    fields = {(c["kind"], c["key"], *sorted(c["fields"])) for c in planned.json()["changes"]}
    assert fields == {
        ("Scanner", first, "access_credential", "default", "description"),
        ("Scanner", second, "default", "disabled"),
    }
    assert _scanners(registry)[first]["is_default"] is True  # plan changed nothing
    updated = registry.run("apply", "-f", str(changed_path), "-o", "json", env=rotated)
    assert updated.code == 0, updated.err
    scanners = _scanners(registry)
    assert [n for n, s in scanners.items() if s["is_default"]] == [second]
    assert scanners[first]["description"] == "edge"
    assert scanners[first]["has_access_credential"] is True

    # --prune with neither: the project's selection is reset first, then both go
    rest = [_doc("Project", {"name": project})]
    pruned = registry.run("apply", "-f", str(registry.write(rest)), "--prune", "-o", "json")
    assert pruned.code == 0, pruned.err
    changes = _changes(pruned)
    assert changes[0] == ("update", "ProjectScanner", project)
    assert sorted(changes[1:]) == sorted(
        [("delete", "Scanner", first), ("delete", "Scanner", second)]
    )
    assert _selection(registry, project) is None
    assert first not in _scanners(registry)
    assert second not in _scanners(registry)


def _refused(registry: Registry, docs: list[dict[str, Any]]) -> list[str]:
    """The errors of applying ``docs``, after checking that nothing was applied."""
    before = registry.run("export").out
    path = registry.write(docs)
    result = registry.run("apply", "-f", str(path), env={"SCANNER_TOKEN": "t0ken"})
    assert result.code == 1, result.out
    assert registry.run("export").out == before
    return [e.removeprefix(f"{path}: ") for e in json.loads(result.err)["errors"]]


def test_bad_scanner_documents_are_refused_precisely_and_nothing_is_applied(
    registry: Registry,
) -> None:
    project, first, second = _name("bad"), _name("trivy-"), _name("clair-")
    project_doc, first_doc, second_doc, selection_doc = _config(project, first, second)

    unknown = {**first_doc, "spec": {**first_doc["spec"], "token": "env:SCANNER_TOKEN"}}
    (problem,) = _refused(registry, [project_doc, unknown])
    assert problem.endswith("spec.token: unknown key"), problem

    inline = {**first_doc, "spec": {**first_doc["spec"], "access_credential": "hunter2"}}
    problems = _refused(registry, [project_doc, inline])
    assert any("spec.access_credential" in p and "should match pattern" in p for p in problems)
    assert not any("hunter2" in p for p in problems), problems

    bare = {**first_doc, "spec": {"url": URL, "auth": "Bearer"}}
    (problem,) = _refused(registry, [project_doc, bare])
    assert "auth 'Bearer' needs an access_credential" in problem

    twice = {**second_doc, "spec": {**second_doc["spec"], "default": True}}
    (problem,) = _refused(registry, [project_doc, first_doc, twice])
    assert "spec.default" in problem
    assert f"scanner {second!r} is a second default" in problem

    orphan = {**selection_doc, "spec": {"scanner": "nowhere"}}
    (problem,) = _refused(registry, [project_doc, orphan])
    assert problem.endswith("spec.scanner: no scanner 'nowhere' in the file or the registry")

    # refused by the server (the outbound policy): what was made before it is undone
    metadata_url = {**second_doc, "spec": {"url": "http://169.254.169.254/latest"}}
    before = registry.run("export").out
    failed = registry.run(
        "apply",
        "-f",
        str(registry.write([project_doc, first_doc, metadata_url])),
        env={"SCANNER_TOKEN": "t0ken"},
    )
    assert failed.code == 1
    report = json.loads(failed.err)
    assert report["change"] == f"+ Scanner {second}"
    assert "url" in json.dumps(report["problem"])
    assert report["undo_failures"] == []
    assert first not in _scanners(registry)
    assert registry.run("export").out == before


def test_the_scanner_command_manages_registrations(registry: Registry) -> None:
    name, project = _name("cli-"), _name("sc")
    env = {"MOORAGE_SCANNER_CREDENTIAL": secrets.token_urlsafe(12)}
    added = registry.run(
        "scanner", "add", name, URL, "--auth", "X-ScannerAdapter-API-Key", "--default", env=env
    )
    assert added.code == 0, added.out + added.err
    assert added.json()["is_default"] is True
    assert added.json()["has_access_credential"] is True
    assert env["MOORAGE_SCANNER_CREDENTIAL"] not in added.out
    listed = registry.run("scanner", "list")
    assert listed.code == 0, listed.err
    assert name in {s["name"] for s in listed.json()["items"]}
    assert registry.run("scanner", "default", name).code == 0

    created = registry.run("apply", "-f", str(registry.write([_doc("Project", {"name": project})])))
    assert created.code == 0, created.err
    used = registry.run("scanner", "use", project, name)
    assert used.code == 0, used.err
    assert used.json() == {"scanner": name, "effective": name}
    refused = registry.run("scanner", "remove", name)
    assert refused.code == 1
    assert json.loads(refused.err)["status"] == 409
    assert registry.run("scanner", "use", project, "--default").code == 0
    # the adapter's host does not resolve here: the ping fails with the reason
    pinged = registry.run("scanner", "ping", name)
    assert pinged.code == 1
    assert json.loads(pinged.err)["status"] == 502
    assert registry.run("scanner", "remove", name).code == 0
    assert name not in _scanners(registry)
