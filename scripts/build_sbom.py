#!/usr/bin/env python3
"""Build the SBOM of Moorage's run-time dependencies (CycloneDX 1.6 JSON).

Usage: ``python scripts/build_sbom.py [--output FILE]``
(default ``build/sbom/moorage-<version>.cdx.json``)

Run at build time in the environment being shipped. ``cyclonedx-py environment`` (the
``cyclonedx-bom`` package) describes every distribution installed in this interpreter's
environment, with licences and package URLs, and Moorage itself as the root component
(from ``pyproject.toml``); the result is then narrowed to the run-time closure
(``runtime_deps.py``), so test and lint tools of a development environment are not
listed as shipped. The output is reproducible (``SOURCE_DATE_EPOCH`` sets its
timestamp) and validated against the CycloneDX schema before it is written.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from runtime_deps import ROOT, project_requirements, runtime_closure

SPEC_VERSION = "1.6"


def generate() -> dict[str, Any]:
    """The environment's SBOM narrowed to the run-time closure."""
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "environment.cdx.json"
        subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
            [
                sys.executable,
                "-m",
                "cyclonedx_py",
                "environment",
                "--pyproject",
                str(ROOT / "pyproject.toml"),
                "--mc-type",
                "application",
                "--sv",
                SPEC_VERSION,
                "--output-reproducible",
                "--no-validate",  # NOTE: the narrowed result is validated below, once
                "--of",
                "JSON",
                "-o",
                str(raw),
                sys.executable,
            ],
            check=True,
        )
        bom: dict[str, Any] = json.loads(raw.read_text(encoding="utf-8"))
    closure = runtime_closure(project_requirements())
    kept = [c for c in bom.get("components", []) if canonicalize_name(c["name"]) in closure]
    missing = sorted(set(closure) - {canonicalize_name(c["name"]) for c in kept})
    if missing:
        raise SystemExit(f"the environment's SBOM lacks run-time dependencies: {missing}")
    refs = {c["bom-ref"] for c in kept} | {bom["metadata"]["component"]["bom-ref"]}
    bom["components"] = sorted(kept, key=lambda c: (c["name"].lower(), c.get("version", "")))
    bom["dependencies"] = [
        {**d, "dependsOn": sorted(x for x in d.get("dependsOn", []) if x in refs)}
        for d in bom.get("dependencies", [])
        if d["ref"] in refs
    ]
    return bom


def validate(bom: dict[str, Any]) -> None:
    from cyclonedx.schema import SchemaVersion  # noqa: PLC0415
    from cyclonedx.validation.json import JsonStrictValidator  # noqa: PLC0415

    error = JsonStrictValidator(SchemaVersion.from_version(SPEC_VERSION)).validate_str(
        json.dumps(bom)
    )
    if error is not None:
        raise SystemExit(f"the SBOM is not valid CycloneDX {SPEC_VERSION}: {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="Where to write the SBOM.")
    args = parser.parse_args()
    bom = generate()
    validate(bom)
    version = bom["metadata"]["component"].get("version", "unknown")
    output = args.output or ROOT / "build" / "sbom" / f"moorage-{version}.cdx.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(bom, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{output}: {len(bom['components'])} run-time components", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
