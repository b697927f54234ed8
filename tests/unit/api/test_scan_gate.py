"""The pull gate costs no database access for projects without a gating policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from api.scan_wiring import ScanPullGate
from core.errors import RegistryError
from core.pipeline import OCIRequest, OCIRoute
from core.records import ManifestRecord
from core.scan_records import AllowlistEntry, ScanPolicy, ScanReport
from core.vulndb.severity import Severity


class CountingStore:
    """Answers the gate's reads and counts them."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def gating_policies(self) -> dict[str, ScanPolicy]:
        self.calls.append("policies")
        return {"gated": ScanPolicy(7, refuse_unscanned=True, prevent_severity=Severity.HIGH)}

    def report(self, project_id: int, digest: str) -> ScanReport | None:
        self.calls.append(f"report {project_id} {digest[:9]}")
        return None

    def allowlist(self, project_id: int | None) -> list[AllowlistEntry]:
        self.calls.append(f"allowlist {project_id}")
        return []


def _request(repository: str) -> OCIRequest:
    return OCIRequest("GET", f"/v2/{repository}/manifests/v1", OCIRoute.MANIFEST,
                      repository, "v1", "r1")  # fmt: skip


def _manifest(**fields: object) -> ManifestRecord:
    payload = json.dumps(
        {
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json"},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}],
            **fields,
        }
    ).encode()
    return ManifestRecord(
        1, 1, "sha256:" + "a" * 64, "application/vnd.oci.image.manifest.v1+json", None, None,
        None, len(payload), payload, datetime.now(UTC),
    )  # fmt: skip


async def test_ungated_projects_and_exempt_artifacts_cost_no_read() -> None:
    store = CountingStore()
    gate = ScanPullGate(store, ttl=60)  # type: ignore[arg-type]
    gate.refresh()
    assert store.calls == ["policies"]
    for _ in range(100):
        await gate.manifest_serving(_request("free/app"), _manifest())
    await gate.manifest_serving(
        _request("gated/app"), _manifest(artifactType="application/spdx+json")
    )
    assert store.calls == ["policies"]
    with pytest.raises(RegistryError) as refused:
        await gate.manifest_serving(_request("gated/app"), _manifest())
    assert "not been scanned" in refused.value.message
    assert store.calls == ["policies", "report 7 sha256:aa", "allowlist None", "allowlist 7"]
