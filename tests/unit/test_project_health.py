"""The project's own health as open source: licence, version, ADRs, licences, SBOM."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return dict(tomllib.load(file)["project"])


def test_the_licence_file_is_the_one_pyproject_declares() -> None:
    assert _pyproject()["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_moorage_version_is_pyprojects() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"moorage {_pyproject()['version']}\n"


def test_every_decision_record_is_indexed_and_complete() -> None:
    index = (ROOT / "docs" / "adr" / "README.md").read_text(encoding="utf-8")
    linked = re.findall(r"\]\((\d{4}-[a-z0-9-]+\.md)\)", index)
    on_disk = sorted(p.name for p in (ROOT / "docs" / "adr").glob("[0-9][0-9][0-9][0-9]-*.md"))
    assert sorted(linked) == on_disk
    for name in ("temporal", "outbox", "garbage-collection", "tenancy"):
        assert any(name in record for record in on_disk), name
    for record in on_disk:
        text = (ROOT / "docs" / "adr" / record).read_text(encoding="utf-8")
        for section in ("- Status: ", "## Context", "## Decision", "## Consequences"):
            assert section in text, (record, section)


def _licences(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_licences.py"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_run_time_dependency_licences_are_allowed() -> None:
    done = _licences("--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row["licence"] for row in json.loads(done.stdout)}
    for requirement in ("litestar", "temporalio", "sqlmodel", "boto3", "psycopg"):
        assert requirement in rows
    assert rows["psycopg"].startswith("LGPL-3.0")
    assert "pytest" not in rows  # development tools are not shipped
    assert "ruff" not in rows


def test_a_licence_off_the_allow_list_fails_the_check() -> None:
    done = _licences("--allow", "MIT", "Apache-2.0", "BSD-3-Clause", "BSD-2-Clause")
    assert done.returncode == 1
    assert "NOT ALLOWED: psycopg " in done.stderr
    assert "LGPL-3.0-only is not allowed" in done.stderr


def test_the_sbom_lists_our_run_time_dependencies(tmp_path: Path) -> None:
    output = tmp_path / "sbom.cdx.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_sbom.py"), "--output", str(output)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    bom = json.loads(output.read_text(encoding="utf-8"))
    assert bom["bomFormat"] == "CycloneDX"
    assert bom["specVersion"] == "1.6"
    root = bom["metadata"]["component"]
    assert (root["name"], root["version"]) == ("moorage", _pyproject()["version"])
    components = {c["name"].lower(): c for c in bom["components"]}
    from importlib import metadata

    for name in ("litestar", "temporalio", "sqlmodel", "pydantic", "psycopg", "granian"):
        assert components[name]["version"] == metadata.version(name)
        assert components[name]["purl"].startswith(f"pkg:pypi/{name}@")
        assert components[name].get("licenses"), name
    for tool in ("pytest", "ruff", "mypy", "cyclonedx-bom"):
        assert tool not in components
    direct = next(d for d in bom["dependencies"] if d["ref"] == root["bom-ref"])
    assert any(ref.lower().startswith("litestar==") for ref in direct["dependsOn"])
