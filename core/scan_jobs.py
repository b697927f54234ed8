"""Names and values of the scan workflows and activities (no I/O: workflows import it).

Workflow ids (so a duplicate trigger is a no-op and every run is findable):

- on push: ``scan-<project id>-<digest>-e<event id>-<event time>``: one run per push event;
- on demand: ``scan-<project id>-<digest>-<token>``; a project or everything:
  ``scan-many-<project|all>-<token>``, whose runs are ``<its id>-<project id>-<digest>``;
- re-match: ``scan-rematch-<token>`` (after an import: ``scan-rematch-<import run id>``).

Every artifact run carries the search attributes project, repository and digest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from core import events
from core.scan_records import ScanPolicy, ScanTarget
from core.subscribers import Interest, Subscriber, project_interest

SCAN_WORKFLOW: Final = "ScanArtifactWorkflow"
SCAN_MANY_WORKFLOW: Final = "ScanManyWorkflow"
REMATCH_WORKFLOW: Final = "ScanRematchWorkflow"
VULNDB_IMPORT_WORKFLOW: Final = "VulnDbImportWorkflow"

SCAN_ANALYZE: Final = "scan_analyze_artifact"
SCAN_MATCH: Final = "scan_match_artifact"
SCAN_FAIL: Final = "scan_record_failure"
SCAN_SBOM: Final = "scan_attach_sboms"
SCAN_CANDIDATES: Final = "scan_list_candidates"
SCAN_REMATCH: Final = "scan_rematch_reports"
VULNDB_IMPORT: Final = "vulndb_import_sources"
#: A scan handed to the external scanner (``scanner_api.delegate``); it answers
#: :data:`NOT_DELEGATED` when the artifact's project does not use one.
SCAN_DELEGATE: Final = "scan_delegate_artifact"
NOT_DELEGATED: Final = "local"
#: The patch of the artifact scan workflow that asks about delegation first.
DELEGATE_PATCH: Final = "scan-delegate"
#: A scan requested through the served scanner API (its id is the workflow's suffix).
ADAPTER_SCAN_WORKFLOW: Final = "ScannerApiScanWorkflow"
ADAPTER_SCAN: Final = "scanner_api_scan_artifact"
ADAPTER_FAIL: Final = "scanner_api_record_failure"
#: Activity of the scan subscriber.
DELIVER_SCANS: Final = "deliver_events_scan"

#: The scan subscriber: every pushed manifest of a project that scans on push.
SCAN_SUBSCRIBER: Final = Subscriber("scan", frozenset({events.MANIFEST_PUSHED}), DELIVER_SCANS)

#: Concurrent artifact scans of one on-demand run over a project or everything.
DEFAULT_CONCURRENCY: Final = 4


def push_workflow_id(target: ScanTarget, event_id: int, created_at: str) -> str:
    """The run of one push event: fixed by the event (its id and time of writing).

    The time keeps ids apart across installations (or a database started afresh) that
    share a Temporal namespace: event ids alone repeat there.
    """
    stamp = "".join(c for c in created_at if c.isdigit())
    return f"scan-{target.project_id}-{target.digest}-e{event_id}-{stamp}"


def demand_workflow_id(target: ScanTarget) -> str:
    return f"scan-{target.project_id}-{target.digest}-{demand_token()}"


def demand_token() -> str:
    """A fresh suffix for the id of an on-demand run."""
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True, slots=True)
class ScanFailure:
    target: ScanTarget
    reason: str


def adapter_workflow_id(scan_id: str) -> str:
    """The run of a scan requested through the served scanner API."""
    return f"scanner-api-{scan_id}"


@dataclass(frozen=True, slots=True)
class AdapterFailure:
    scan_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class ScanManyInput:
    """Scan every scannable artifact of a project (``project_id``), or of all projects."""

    project_id: int | None
    concurrency: int = DEFAULT_CONCURRENCY
    #: Where a continued run resumes, and how many it started before.
    after: int = 0
    started: int = 0


@dataclass(frozen=True, slots=True)
class CandidatesInput:
    project_id: int | None
    after: int
    limit: int


@dataclass(frozen=True, slots=True)
class CandidatesPage:
    targets: list[ScanTarget] = field(default_factory=list)
    next_after: int = 0
    more: bool = False


@dataclass(frozen=True, slots=True)
class RematchInput:
    after: int = 0
    limit: int = 100
    matched: int = 0


@dataclass(frozen=True, slots=True)
class RematchPage:
    next_after: int
    matched: int
    more: bool


@dataclass(frozen=True, slots=True)
class ImportInput:
    """Import the configured OSV sources (``full``: re-read the whole exports)."""

    full: bool = False


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    #: Records saved or removed over all sources (0: nothing changed).
    changed: int
    failed: list[str] = field(default_factory=list)


def scan_interest(policy: Callable[[int], ScanPolicy]) -> Interest:
    """The scan subscriber's interest: pushes into projects that scan on push."""
    return project_interest(lambda project: policy(project).scan_on_push)
