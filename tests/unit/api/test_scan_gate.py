"""The pull gate costs no database access for projects without a gating policy."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from api.scan_wiring import ScanPullGate
from core.errors import RegistryError
from core.pipeline import OCIRequest, OCIRoute
from core.records import ManifestRecord
from core.scan_records import AllowlistEntry, ScanPolicy, ScanReport
from core.scan_settings import ScanSettings
from core.vulndb.severity import Severity

SETTINGS = ScanSettings(policy_cache_seconds=60)


class CountingStore:
    """Answers the gate's reads and counts them."""

    def __init__(self, refuse_unscanned: bool = True) -> None:
        self.calls: list[str] = []
        self.refuse_unscanned = refuse_unscanned

    def gating_policies(self) -> dict[str, ScanPolicy]:
        self.calls.append("policies")
        policy = ScanPolicy(
            7, refuse_unscanned=self.refuse_unscanned, prevent_severity=Severity.HIGH
        )
        return {"gated": policy}

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
    digest = "sha256:" + hashlib.sha256(payload).hexdigest()
    return ManifestRecord(
        1, 1, digest, "application/vnd.oci.image.manifest.v1+json", None, None,
        None, len(payload), payload, datetime.now(UTC),
    )  # fmt: skip


async def test_ungated_projects_and_exempt_artifacts_cost_no_read() -> None:
    store = CountingStore()
    gate = ScanPullGate(store, SETTINGS)  # type: ignore[arg-type]
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
    image = _manifest().digest[:9]
    assert store.calls == ["policies", f"report 7 {image}", "allowlist None", "allowlist 7"]


async def test_a_gated_image_let_through_is_decided_once_per_verdict_period() -> None:
    """Repeated pulls reuse an allowance; a change made through this process drops it."""
    store = CountingStore(refuse_unscanned=False)  # no report, no finding: allowed
    gate = ScanPullGate(store, SETTINGS)  # type: ignore[arg-type]
    gate.refresh()
    image = _manifest()
    for _ in range(50):
        await gate.manifest_serving(_request("gated/app"), image)
    reads = [call for call in store.calls if call.startswith("report")]
    assert reads == [f"report 7 {image.digest[:9]}"]
    gate.changed()  # e.g. an allowlist entry removed through this API process
    await gate.manifest_serving(_request("gated/app"), image)
    assert len([call for call in store.calls if call.startswith("report")]) == 2


async def test_a_refusal_is_decided_anew_on_every_pull() -> None:
    """The pull right after the image's scan finished must not meet an old refusal."""
    store = CountingStore()
    gate = ScanPullGate(store, SETTINGS)  # type: ignore[arg-type]
    gate.refresh()
    image = _manifest()
    for _ in range(3):
        with pytest.raises(RegistryError):
            await gate.manifest_serving(_request("gated/app"), image)
    assert len([call for call in store.calls if call.startswith("report")]) == 3


async def test_without_a_verdict_period_every_pull_is_decided() -> None:
    store = CountingStore(refuse_unscanned=False)
    settings = ScanSettings(policy_cache_seconds=60, verdict_cache_seconds=0)
    gate = ScanPullGate(store, settings)  # type: ignore[arg-type]
    gate.refresh()
    for _ in range(3):
        await gate.manifest_serving(_request("gated/app"), _manifest())
    assert len([call for call in store.calls if call.startswith("report")]) == 3
