"""CI promotions: the request, its gates, and the values that cross the Temporal boundary.

A promotion copies one image (by digest) from a source repository to a target tag inside
this registry once its gates pass:

- ``scan``: a scan report exists and has no finding at or above ``max_severity`` (read
  through the :class:`ScanReports` port; without a wired report store every image is
  "not scanned" and the gate fails saying so);
- ``signed``: the image meets the source project's trust policy (the verdict of
  ``core.trust_policy.evaluate`` over the stored verification results);
- ``provenance``: a verified SLSA provenance attestation names ``builder`` as its builder;
- ``approval``: someone sends the approval signal before ``approval_timeout_seconds``.

The automatic gates (scan, signed, provenance) are decided once by default. With
``wait_seconds``, gates that fail are evaluated again every :data:`GATE_RECHECK_SECONDS`
until they all pass or that time is over (then the promotion is refused with the last
reasons): an image pushed a moment ago is promoted once its scan or its signature has
arrived, as a promotion rule that fires on the push needs.

The workflow id derives from the source digest and the target, so the same request twice
is one promotion (:func:`promotion_id`). Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Protocol

from core.errors import InvalidInputError
from core.names import Reference, RepositoryName

#: Workflow type of one promotion.
PROMOTION_WORKFLOW: Final = "promotion"
#: Activity: resolve the source and evaluate the automatic gates.
EVALUATE_GATES: Final = "promotion_evaluate"
#: Activity: copy manifest, blobs and referrers and set the target tag.
COPY_IMAGE: Final = "promotion_copy"
#: Activity: write the promotion's audit event (outcome).
RECORD_OUTCOME: Final = "promotion_record"
#: Signal that approves a promotion waiting for manual approval.
APPROVE_SIGNAL: Final = "approve"
#: Query answering the promotion's current :class:`PromotionState`.
STATE_QUERY: Final = "state"
#: Application error type of a refusal that retrying cannot change.
PROMOTION_REFUSED: Final = "PromotionRefused"

#: Severities from lowest to highest (OSV / CVSS qualitative names).
SEVERITIES: Final = ("low", "medium", "high", "critical")
SLSA_PROVENANCE: Final = frozenset(
    {"https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2"}
)
DEFAULT_APPROVAL_TIMEOUT: Final = 24 * 3600
#: Between two evaluations of gates that are waited for.
GATE_RECHECK_SECONDS: Final = 10
#: Longest wait for gates to pass.
MAX_GATE_WAIT: Final = 7 * 24 * 3600


class Status(StrEnum):
    RUNNING = "running"
    WAITING_GATES = "waiting_gates"
    WAITING_APPROVAL = "waiting_approval"
    PROMOTED = "promoted"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Gates:
    """Which gates a promotion asks for (all optional)."""

    max_severity: str | None = None
    signed: bool = False
    builder: str | None = None
    approval: bool = False
    approval_timeout_seconds: int = DEFAULT_APPROVAL_TIMEOUT
    #: How long failing automatic gates are evaluated again before a refusal (0: once).
    wait_seconds: int = 0


@dataclass(frozen=True, slots=True)
class PromotionRequest:
    """A checked request: the workflow's input (names and a digest, no rows)."""

    id: str
    source_repository: str
    source_digest: str
    target_repository: str
    target_tag: str
    gates: Gates
    requested_by: str
    #: Sign the promoted image with the target project's key (``core.promotion_signing``).
    sign: bool = False


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: str
    passed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The automatic gates' results for the source digest."""

    results: list[GateResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def failures(self) -> str:
        return "; ".join(f"{r.gate}: {r.reason}" for r in self.results if not r.passed)


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What a copy did: manifests and blobs it added to the target repository."""

    digest: str
    manifests: int
    blobs: int
    referrers: int


@dataclass(frozen=True, slots=True)
class CopyInput:
    """The copy's input: the request, the gates it passed, when they were decided."""

    request: PromotionRequest
    gates: list[GateResult]
    #: ISO 8601 time the workflow fixed (the promotion record's ``timeVerified``).
    decided_at: str


@dataclass(frozen=True, slots=True)
class OutcomeInput:
    request: PromotionRequest
    status: str
    reason: str


@dataclass(slots=True)
class PromotionState:
    """What ``moorage promote show`` prints (the workflow's query answer)."""

    id: str
    source: str = ""
    target: str = ""
    status: str = Status.RUNNING.value
    gates: list[GateResult] = field(default_factory=list)
    reason: str = ""
    copied: CopyResult | None = None


@dataclass(frozen=True, slots=True)
class Source:
    repository: RepositoryName
    reference: Reference


def parse_source(text: str) -> Source:
    """``project/repo@sha256:…`` or ``project/repo:tag`` (else field ``source`` is refused)."""
    name, at, digest = text.partition("@")
    if not at:
        name, colon, digest = text.rpartition(":")
        if not colon or "/" in digest:
            raise InvalidInputError(
                "the source is project/repo@digest or project/repo:tag", field="source"
            )
    try:
        return Source(RepositoryName.parse(name), Reference.parse(digest))
    except Exception as exc:
        raise InvalidInputError(f"bad source reference: {exc}", field="source") from exc


def parse_target(text: str) -> tuple[RepositoryName, str]:
    """``project/repo:tag`` (field ``target``)."""
    name, colon, tag = text.rpartition(":")
    if not colon or "/" in tag:
        raise InvalidInputError("the target is project/repo:tag", field="target")
    try:
        reference = Reference.parse(tag)
        repository = RepositoryName.parse(name)
    except Exception as exc:
        raise InvalidInputError(f"bad target reference: {exc}", field="target") from exc
    if reference.tag is None:
        raise InvalidInputError("the target is project/repo:tag", field="target")
    return repository, reference.tag


def check_gates(gates: Gates) -> Gates:
    """Refuse unknown severities and bad timeouts (field ``gates.*``)."""
    if gates.max_severity is not None and gates.max_severity not in SEVERITIES:
        raise InvalidInputError(
            f"severity is one of {', '.join(SEVERITIES)}", field="gates.max_severity"
        )
    if not 1 <= gates.approval_timeout_seconds <= 30 * 24 * 3600:
        raise InvalidInputError(
            "the approval timeout is 1 s to 30 days", field="gates.approval_timeout_seconds"
        )
    if not 0 <= gates.wait_seconds <= MAX_GATE_WAIT:
        raise InvalidInputError("the wait for gates is 0 s to 7 days", field="gates.wait_seconds")
    return gates


def promotion_memo(request: PromotionRequest) -> dict[str, str]:
    """The run's memo: what ``moorage promote show`` prints while no worker answers."""
    return {
        "source": f"{request.source_repository}@{request.source_digest}",
        "target": f"{request.target_repository}:{request.target_tag}",
    }


def promotion_id(source_digest: str, target_repository: str, target_tag: str) -> str:
    """The workflow id: one promotion per (source digest, target)."""
    key = f"{source_digest}\n{target_repository}:{target_tag}".encode()
    return "promotion-" + hashlib.sha256(key).hexdigest()[:32]


# -- the scan gate's port ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanFinding:
    """One vulnerability of a report, after allow-lists."""

    id: str
    severity: str


@dataclass(frozen=True, slots=True)
class ScanReport:
    findings: list[ScanFinding]


class ScanReports(Protocol):
    """Scan reports per image, with allow-listed findings already removed."""

    def report(self, repository: str, digest: str) -> ScanReport | None:
        """The newest successful report of the image; ``None``: not scanned."""
        ...


def scan_gate(report: ScanReport | None, max_severity: str) -> GateResult:
    """Pass when a report exists and no finding is at or above ``max_severity``."""
    if report is None:
        return GateResult("scan", passed=False, reason="not scanned")
    floor = SEVERITIES.index(max_severity)
    blocking = [
        f
        for f in report.findings
        if f.severity in SEVERITIES and SEVERITIES.index(f.severity) >= floor
    ]
    if blocking:
        names = ", ".join(sorted(f.id for f in blocking)[:10])
        return GateResult(
            "scan",
            passed=False,
            reason=f"{len(blocking)} findings at or above {max_severity}: {names}",
        )
    return GateResult("scan", passed=True, reason=f"no finding at or above {max_severity}")
