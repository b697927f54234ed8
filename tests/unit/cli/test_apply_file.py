"""Configuration files: YAML and JSON documents, precise errors, the published schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.apply_file import load_documents
from cli.apply_schema import SCHEMA_PATH, render
from cli.apply_secrets import SecretError, resolve
from core.ascode_plan import PlanError

YAML = """\
apiVersion: moorage.io/v1
kind: Project
metadata: {name: team}
spec: {public: true}
---
# a comment before the second document
apiVersion: moorage.io/v1
kind: Robot
metadata: {name: ci, project: team}
spec:
  permissions:
    - repository: app
      actions: [pull]
---
"""


def test_yaml_documents_are_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "team.yaml"
    path.write_text(YAML, encoding="utf-8")
    docs = load_documents([path])
    assert [(d.doc.kind, d.doc.key()) for d in docs] == [
        ("Project", "team"),
        ("Robot", "robot$team+ci"),
    ]
    assert docs[1].where == f"{path}: document 2 (line 7)"


def test_a_directory_and_a_json_list(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(YAML, encoding="utf-8")
    docs = [{"apiVersion": "moorage.io/v1", "kind": "Project", "metadata": {"name": "other"}}]
    (tmp_path / "b.json").write_text(json.dumps(docs), encoding="utf-8")
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    assert [d.doc.key() for d in load_documents([tmp_path])] == ["team", "robot$team+ci", "other"]


def test_every_error_names_the_document_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        YAML.replace("public: true", "public: true, color: red")
        .replace("actions: [pull]", "actions: [fly]")
        .replace("kind: Robot", "kind: Robot\nextra: 1"),
        encoding="utf-8",
    )
    with pytest.raises(PlanError) as caught:
        load_documents([path])
    assert caught.value.problems == [
        f"{path}: document 1 (line 1): spec.color: unknown key",
        (
            f"{path}: document 2 (line 7): spec.permissions[0].actions[0]: "
            "Input should be 'pull', 'push', 'delete' or 'promote'"
        ),
        f"{path}: document 2 (line 7): extra: unknown key",
    ]


def test_unknown_kind_and_version(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(
        json.dumps(
            [
                {"apiVersion": "moorage.io/v1", "kind": "Gadget", "metadata": {}},
                {"apiVersion": "v2", "kind": "Project", "metadata": {"name": "a"}},
            ]
        ),
        encoding="utf-8",
    )
    with pytest.raises(PlanError) as caught:
        load_documents([path])
    first, second = caught.value.problems
    assert first.startswith(
        f"{path}: document 1: (document): Input tag 'Gadget' found using 'kind'"
    )
    assert second == f"{path}: document 2: apiVersion: Input should be 'moorage.io/v1'"


def test_syntax_errors_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("kind: [unclosed\n", encoding="utf-8")
    with pytest.raises(PlanError) as caught:
        load_documents([path, tmp_path / "absent.yaml"])
    assert caught.value.problems[0].startswith(f"{path}: not valid YAML")
    assert "line 1, column 7" in caught.value.problems[0]
    assert caught.value.problems[1] == f"{tmp_path / 'absent.yaml'}: no such file"


def test_secrets_resolve_from_the_environment_or_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOME_SECRET", "s3cret")
    assert resolve("env:SOME_SECRET") == "s3cret"
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file\n", encoding="utf-8")
    assert resolve(f"file:{secret_file}") == "from-a-file"
    with pytest.raises(SecretError, match="not set"):
        resolve("env:SURELY_NOT_SET_ANYWHERE")
    with pytest.raises(SecretError):
        resolve(f"file:{tmp_path / 'absent'}")
    with pytest.raises(ValueError, match="never inline"):
        resolve("hunter2")


def test_the_published_schema_is_up_to_date() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == render(), (
        "regenerate it: python -m cli.apply_schema"
    )
    schema = json.loads(render())
    kinds = {
        definition["properties"]["kind"]["const"]
        for definition in schema["$defs"].values()
        if "kind" in definition.get("properties", {})
    }
    assert kinds == {
        "Project",
        "User",
        "Robot",
        "Member",
        "Quota",
        "RetentionPolicy",
        "ImmutabilityPolicy",
        "TrustedIssuer",
        "Webhook",
        "RegistryEndpoint",
        "ProxyBinding",
        "ReplicationPolicy",
        "Scanner",
        "ProjectScanner",
        "P2PInstance",
        "PreheatPolicy",
        "PromotionRule",
        "TrustPolicy",
        "ScanPolicy",
        "CveAllowlist",
    }


def test_the_published_schema_validates_files_like_apply_does() -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    good = [
        {"apiVersion": "moorage.io/v1", "kind": "Project", "metadata": {"name": "team"}},
        {
            "apiVersion": "moorage.io/v1",
            "kind": "User",
            "metadata": {"name": "dev"},
            "spec": {"password": "env:DEV_PASSWORD"},
        },
    ]
    security = [
        {
            "apiVersion": "moorage.io/v1",
            "kind": "ScanPolicy",
            "metadata": {"project": "team"},
            "spec": {"prevent_severity": "High"},
        },
        {"apiVersion": "moorage.io/v1", "kind": "CveAllowlist", "spec": {"items": []}},
        {
            "apiVersion": "moorage.io/v1",
            "kind": "TrustPolicy",
            "metadata": {"project": "team"},
            "spec": {"enforce": False},
        },
    ]
    assert list(validator.iter_errors(good + security)) == []
    assert list(validator.iter_errors(good[0])) == []
    for bad in (
        {**security[0], "spec": {"prevent_severity": "Severe"}},  # not a severity
        {**security[1], "spec": {"items": [{"id": "CVE-1", "until": "2030"}]}},  # unknown key
        {**security[2], "metadata": {}},  # a trust policy belongs to a project
        {**good[0], "spec": {"public": True, "color": "red"}},  # unknown key
        {**good[0], "spec": {"public": "sometimes"}},  # wrong type
        {**good[0], "metadata": {"name": "Not A Name"}},  # the project name grammar
        {**good[1], "spec": {"password": "inline-secret"}},  # secrets by reference only
        {**good[0], "kind": "Gadget"},
    ):
        assert list(validator.iter_errors(bad)), bad
