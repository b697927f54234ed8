"""The vulnerability pull policy: which artifacts it applies to, and whether a pull may go.

An artifact is **scannable** when it is a container image: an image manifest whose config
is an image config and whose layers are all filesystem layers, or an index of such
images, in either case without ``artifactType`` and without ``subject``. SBOMs,
signatures, attestations and every other artifact are exempt by that rule (they carry
an ``artifactType``, a non-image config, non-layer blobs or a ``subject``), so the
policy never refuses them.

A project's policy (:class:`core.scan_records.ScanPolicy`) refuses a pull of a scannable
artifact that has no report or a report still running (``refuse_unscanned``), whose scan
failed (``refuse_unscanned`` or ``prevent_severity``), or that has a finding at or above
``prevent_severity`` once the system and project allowlists (active entries, matched on
the vulnerability id or any alias) are applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from core.scan_records import AllowlistEntry, ScanPolicy, ScanReport, ScanStatus
from core.vulndb.severity import Severity

INDEX_TYPES: Final = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
IMAGE_CONFIGS: Final = frozenset(
    {
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.docker.container.image.v1+json",
    }
)
_LAYER_PREFIXES: Final = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
)
#: Most CVEs named in one refusal message.
NAMED: Final = 10


def scannable(media_type: str, payload: bytes) -> bool:
    """Whether the manifest ``payload`` is a container image (or an index of images)."""
    try:
        document: Any = json.loads(payload)
    except ValueError:
        return False
    if not isinstance(document, dict) or document.get("artifactType") or document.get("subject"):
        return False
    kind = str(document.get("mediaType") or media_type)
    if kind in INDEX_TYPES or ("manifests" in document and "layers" not in document):
        return bool(document.get("manifests"))
    config = document.get("config")
    layers = document.get("layers")
    if not isinstance(config, dict) or str(config.get("mediaType")) not in IMAGE_CONFIGS:
        return False
    if not isinstance(layers, list) or not layers:
        return False
    return all(
        isinstance(layer, dict) and str(layer.get("mediaType", "")).startswith(_LAYER_PREFIXES)
        for layer in layers
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a pull is refused, in words a person can act on."""

    reason: str
    vulnerabilities: tuple[str, ...] = ()

    def message(self, project: str) -> str:
        if not self.vulnerabilities:
            return self.reason
        shown = ", ".join(self.vulnerabilities[:NAMED])
        more = len(self.vulnerabilities) - NAMED
        if more > 0:
            shown += f" and {more} more"
        return (
            f"{self.reason}: {shown}. To accept them, add them to the allowlist of project "
            f"{project!r} (PUT /api/v1/projects/{project}/scan-allowlist) or the system "
            "allowlist (PUT /api/v1/scan-allowlist), or lower the project's prevent_severity"
        )


#: The refusal of an image without a finished scan.
UNSCANNED: Final = Refusal(
    "the image has not been scanned yet and the project refuses unscanned images; "
    "scan it (moorage scan run) and pull again when the scan finished"
)


def allowed_ids(entries: Iterable[AllowlistEntry], now: datetime) -> frozenset[str]:
    """The ids of the active entries (upper case)."""
    return frozenset(e.vulnerability_id.upper() for e in entries if e.active(now))


def unallowed(report: ScanReport, allowed: frozenset[str]) -> dict[str, Severity]:
    """The report's vulnerabilities not allowlisted, each with its worst severity.

    A vulnerability is named by its first CVE alias when it has one, else by its id; it
    is allowlisted when its id or any alias is in ``allowed``.
    """
    worst: dict[str, Severity] = {}
    for item in report.findings:
        finding = item.finding
        names = {finding.vulnerability_id.upper(), *(a.upper() for a in finding.aliases)}
        if names & allowed:
            continue
        cves = sorted(a for a in finding.aliases if a.upper().startswith("CVE-"))
        name = cves[0] if cves else finding.vulnerability_id
        if name not in worst or finding.severity.rank > worst[name].rank:
            worst[name] = finding.severity
    return worst


def blocking(report: ScanReport, threshold: Severity, allowed: frozenset[str]) -> tuple[str, ...]:
    """Vulnerabilities at or above ``threshold`` not allowlisted (worst first)."""
    worst = {
        name: severity
        for name, severity in unallowed(report, allowed).items()
        if severity.rank >= threshold.rank
    }
    return tuple(sorted(worst, key=lambda n: (-worst[n].rank, n)))


def decide(
    policy: ScanPolicy, report: ScanReport | None, allowed: frozenset[str]
) -> Refusal | None:
    """The refusal of a pull of a scannable artifact under ``policy``, or ``None``."""
    if not policy.gates_pulls:
        return None
    if report is None or (report.status is ScanStatus.RUNNING and report.finished_at is None):
        return UNSCANNED if policy.refuse_unscanned else None
    if report.status is ScanStatus.FAILED:
        return Refusal(
            f"the image's vulnerability scan failed ({report.reason or 'no reason given'}) "
            "and the project refuses images it could not check"
        )
    found = blocking(report, policy.prevent_severity, allowed) if policy.prevent_severity else ()
    if not found:
        return None
    return Refusal(
        f"the image has vulnerabilities of severity {policy.prevent_severity} or higher "
        "that the project refuses",
        found,
    )
