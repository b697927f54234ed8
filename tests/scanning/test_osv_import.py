"""OSV import into the database (SQLite and PostgreSQL): full, incremental, withdrawn."""

from __future__ import annotations

import copy
import secrets
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.osv_files import OsvFiles
from core.outbound import OutboundPolicy
from core.settings import Settings
from core.vulndb.importer import ImportFailedError, OsvImporter
from storage.db.engine import create_engines
from storage.db.migrate import upgrade
from storage.db.vulndb import SqlVulnDb
from tests.scanning.osv_exports import fixture_records, write_export

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request, tmp_path) -> Settings:
    if request.param == "sqlite":
        return Settings(data_dir=tmp_path / "data")
    postgres = request.getfixturevalue("postgres")
    url = postgres.create_database(f"vuln_{secrets.token_hex(4)}")
    return Settings(data_dir=tmp_path / "data", database_url=url)


@pytest.fixture
def vulndb(settings):
    upgrade(settings)
    engines = create_engines(settings)
    yield SqlVulnDb(engines)
    engines.dispose()


def importer(vulndb: SqlVulnDb) -> OsvImporter:
    return OsvImporter(vulndb, OsvFiles(OutboundPolicy()), lambda: NOW)


def ids(found) -> set[str]:
    return {document["id"] for _, document, _ in found}


def test_full_import_drops_withdrawn_and_indexes_by_ecosystem_and_name(vulndb, tmp_path):
    location = write_export(tmp_path / "osv", "Debian", fixture_records("Debian"))
    result = importer(vulndb).run("Debian", str(location))
    assert (result.read, result.saved, result.invalid, result.incremental) == (6, 5, 0, False)
    assert vulndb.stored_modified(["MOORAGE-TEST-0003"]) == {}  # withdrawn
    assert ids(vulndb.affected("Debian:12", ["openssl"])) == {
        "DSA-5532-1",
        "MOORAGE-TEST-0001",
        "MOORAGE-TEST-0002",
        "MOORAGE-TEST-0005",
    }
    assert ids(vulndb.affected("Debian:12", ["zlib", "nothing"])) == {"MOORAGE-TEST-0004"}
    assert vulndb.affected("Debian:11", ["openssl"]) == []
    state = vulndb.source_state("Debian")
    assert state is not None
    assert state.records == 5
    assert state.newest_modified == datetime(2024, 1, 5, tzinfo=UTC)
    # Running it again changes nothing.
    again = importer(vulndb).run("Debian", str(location), full=True)
    assert (again.saved, again.unchanged) == (0, 5)


def test_pypi_names_are_normalised(vulndb, tmp_path):
    location = write_export(tmp_path / "osv", "PyPI", fixture_records("PyPI"))
    importer(vulndb).run("PyPI", str(location))
    assert ids(vulndb.affected("PyPI", ["pyyaml"])) == {"GHSA-8q59-q68h-6hv4"}


def test_incremental_update_reads_only_changed_records(vulndb, tmp_path):
    records = fixture_records("Debian")
    location = write_export(tmp_path / "osv", "Debian", records)
    importer(vulndb).run("Debian", str(location))

    # Nothing changed: the zip is not even read (it may be gone).
    (location / "all.zip").unlink()
    unchanged = importer(vulndb).run("Debian", str(location))
    assert unchanged.incremental
    assert unchanged.read == 0

    updated = copy.deepcopy(records)
    by_id = {r["id"]: r for r in updated}
    by_id["MOORAGE-TEST-0001"]["modified"] = "2024-06-01T00:00:00Z"
    by_id["MOORAGE-TEST-0001"]["affected"][0]["package"]["name"] = "openssl-renamed"
    by_id["DSA-5532-1"]["modified"] = "2024-06-02T00:00:00Z"
    by_id["DSA-5532-1"]["withdrawn"] = "2024-06-02T00:00:00Z"
    updated.append(
        {
            "id": "MOORAGE-TEST-0006",
            "modified": "2024-06-03T00:00:00Z",
            "affected": [
                {
                    "package": {"ecosystem": "Debian:12", "name": "curl"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                }
            ],
        }
    )
    write_export(tmp_path / "osv", "Debian", updated)
    result = importer(vulndb).run("Debian", str(location))
    assert result.incremental
    assert (result.read, result.saved, result.withdrawn) == (3, 2, 1)
    assert ids(vulndb.affected("Debian:12", ["openssl"])) == {
        "MOORAGE-TEST-0002",
        "MOORAGE-TEST-0005",
    }
    assert ids(vulndb.affected("Debian:12", ["openssl-renamed", "curl"])) == {
        "MOORAGE-TEST-0001",
        "MOORAGE-TEST-0006",
    }
    state = vulndb.source_state("Debian")
    assert state is not None
    assert state.newest_modified == datetime(2024, 6, 3, tzinfo=UTC)


def test_full_import_removes_records_the_export_no_longer_has(vulndb, tmp_path):
    records = fixture_records("Debian")
    location = write_export(tmp_path / "osv", "Debian", records)
    importer(vulndb).run("Debian", str(location))
    write_export(tmp_path / "osv", "Debian", [r for r in records if r["id"] != "DSA-5532-1"])
    result = importer(vulndb).run("Debian", str(location), full=True)
    assert result.removed == 1
    assert "DSA-5532-1" not in ids(vulndb.affected("Debian:12", ["openssl"]))


def test_invalid_records_are_counted_and_skipped(vulndb, tmp_path):
    records = [
        *fixture_records("npm"),
        {"id": "MOORAGE-TEST-BAD", "affected": []},  # no modified time
        {"id": "../../etc", "modified": "2024-01-01T00:00:00Z"},
    ]
    location = write_export(tmp_path / "osv", "npm", records)
    result = importer(vulndb).run("npm", str(location))
    assert (result.saved, result.invalid) == (1, 2)


def test_a_plain_zip_path_and_missing_or_corrupt_exports(vulndb, tmp_path):
    location = write_export(tmp_path / "osv", "Maven", fixture_records("Maven"))
    result = importer(vulndb).run("Maven", str(location / "all.zip"))
    assert result.saved == 1
    with pytest.raises(ImportFailedError, match=r"no all\.zip"):
        importer(vulndb).run("Go", str(tmp_path / "missing"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "all.zip").write_bytes(b"not a zip")
    with pytest.raises(ImportFailedError, match="unreadable"):
        importer(vulndb).run("Go", str(broken))
    assert vulndb.counts() == {"Maven": 1}


def test_cli_import_and_status(tmp_path):
    root = tmp_path / "osv"
    write_export(root, "Debian", fixture_records("Debian"))
    write_export(root, "Alpine", fixture_records("Alpine"))
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "MOORAGE_DATA_DIR": str(tmp_path / "data"),
        "MOORAGE_SCAN__VULNDB__SOURCES": (
            f'{{"Debian": "{root / "Debian"}", "Alpine": "file://{root / "Alpine"}"}}'
        ),
    }
    command = [sys.executable, "-m", "cli.main", "vulndb"]
    done = subprocess.run(
        [*command, "import"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Debian: full import, 6 read, 5 saved" in done.stdout
    assert "Alpine: full import, 1 read, 1 saved" in done.stdout
    status = subprocess.run(
        [*command, "status"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["ECOSYSTEM", "RECORDS", "NEWEST", "RECORD", "IMPORTED"]
    assert lines[1].split()[:2] == ["Alpine", "1"]
    assert lines[2].split()[:2] == ["Debian", "5"]
    missing = subprocess.run(
        [*command, "import", "--ecosystem", "PyPI"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode != 0
    assert "no source configured for PyPI" in missing.stderr
