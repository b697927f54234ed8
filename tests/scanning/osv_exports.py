"""OSV exports for tests: ``<ECOSYSTEM>/all.zip`` and ``modified_id.csv`` from records."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

FIXTURES = Path(__file__).parent / "osv"


def fixture_records(ecosystem: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((FIXTURES / ecosystem).glob("*.json"))]


def write_export(root: Path, ecosystem: str, records: list[dict]) -> Path:
    """Write the export of one ecosystem under ``root``; returns its directory."""
    directory = root / ecosystem
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(directory / "all.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for record in records:
            info = zipfile.ZipInfo(f"{record['id']}.json", (1980, 1, 1, 0, 0, 0))
            archive.writestr(info, json.dumps(record), zipfile.ZIP_DEFLATED)
    lines = sorted(((r.get("modified", ""), r["id"]) for r in records), reverse=True)
    (directory / "modified_id.csv").write_text("".join(f"{m},{i}\n" for m, i in lines))
    return directory
