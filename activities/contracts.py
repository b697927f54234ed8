"""Names and payloads of Moorage's Temporal activities.

Workflows call activities by name (``workflow.execute_activity(NAME, params,
result_type=...)``), so they import nothing from the modules that do I/O. This module
holds only plain values: it must stay free of I/O imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

#: Task queue the worker polls unless configured otherwise.
DEFAULT_TASK_QUEUE: Final = "moorage"

#: Activity name: drop upload sessions older than a cut-off and their stored parts.
REAP_EXPIRED_UPLOADS: Final = "reap_expired_uploads"


@dataclass(frozen=True, slots=True)
class ReapUploadsInput:
    """What the upload reaper should collect.

    Attributes:
        older_than_seconds: Reap sessions whose last activity is older than this.
    """

    older_than_seconds: int


@dataclass(frozen=True, slots=True)
class ReapUploadsResult:
    """What one reaper run removed.

    Attributes:
        sessions_reaped: Upload sessions deleted from the metadata database.
        storage_leftovers_aborted: Upload data in the blob store that had no session
            row (or an expired one) and was aborted.
    """

    sessions_reaped: int
    storage_leftovers_aborted: int


#: Activity names of garbage collection.
GC_RECORD_RUN: Final = "gc_record_run"
GC_COLLECT_MANIFESTS: Final = "gc_collect_manifests"
GC_COLLECT_BLOBS: Final = "gc_collect_blobs"
GC_SWEEP_ORPHANS: Final = "gc_sweep_orphans"
#: Activity name: react to one data-plane event from the outbox.
HANDLE_EVENT: Final = "handle_event"


@dataclass(frozen=True, slots=True)
class GcInput:
    """One GC run.

    Attributes:
        run_id: The run's id (also its workflow id and its ``gc_run`` row).
        dry_run: Report what would go; change nothing.
        delete_untagged: Also delete manifests without tags, parents or live subject.
        review_delay_seconds: Override of the review delay for this run (``None``: the
            configured delay).
    """

    run_id: str
    dry_run: bool = False
    delete_untagged: bool = False
    review_delay_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class GcStepResult:
    """What one GC activity did, as counters (every attempt of the step).

    The listed items are in the run's row (``gc_run``), written once by the batches
    that decided them; ``items`` stays empty (histories recorded before held them).
    """

    reviewed: int
    deleted: int
    kept: int
    bytes_freed: int
    items: list[dict[str, Any]] = field(default_factory=list)
    quarantined: int = 0


@dataclass(frozen=True, slots=True)
class GcRecordInput:
    """State of a run to record (``running``, ``completed`` or ``failed``) and its report.

    Attributes:
        run: The run's options.
        state: The state to record.
        report: The workflow's counters, used only when the row holds no progress.
        report_json: The same as a JSON text (sent by workflows started before
            ``report``; read when ``report`` is ``None``).
    """

    run: GcInput
    state: str
    report_json: str | None = None
    report: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class GcRecordResult:
    """The run's state as recorded (a finished run keeps its own: e.g. ``cancelled``)."""

    state: str


@dataclass(frozen=True, slots=True)
class EventInput:
    """One outbox event, by value (ids and digests, never rows)."""

    event_id: int
    kind: str
    project_id: int | None
    repository: str | None
    digest: str | None
    tag: str | None


#: Activity name: plan and apply retention for a project (or every project with a policy).
RUN_RETENTION: Final = "run_retention"


@dataclass(frozen=True, slots=True)
class RetentionInput:
    """One retention run.

    Attributes:
        run_id: The run's id (its workflow id and its ``control_run`` row).
        project: The project; empty for every project that has a retention policy.
        dry_run: List every artifact with its decision; delete nothing.
    """

    run_id: str
    project: str = ""
    dry_run: bool = False


#: Activity name: recompute every quota'd project's usage and check it against storage.
RECONCILE_QUOTAS: Final = "reconcile_quotas"


@dataclass(frozen=True, slots=True)
class ReconcileInput:
    """One quota reconciliation run (``run_id`` empty: named by the workflow id)."""

    run_id: str = ""


#: Activity names: add the token-signing key of a scheduled rotation; retire old keys.
ROTATE_SIGNING_KEY: Final = "rotate_signing_key"
RETIRE_SIGNING_KEYS: Final = "retire_signing_keys"


@dataclass(frozen=True, slots=True)
class KeyRotationInput:
    """One scheduled key rotation.

    Attributes:
        grace_seconds: How long the replaced key keeps verifying before it is retired
            (token lifetime + key reload delay + clock skew).
        scheduled_at: ISO time the rotation is keyed on; empty: the schedule's time
            (or the workflow's start when not started by a schedule).
    """

    grace_seconds: int
    scheduled_at: str = ""


@dataclass(frozen=True, slots=True)
class RotateKeyInput:
    """Add the key of the rotation scheduled at ``scheduled_at`` (ISO), once."""

    scheduled_at: str


@dataclass(frozen=True, slots=True)
class RetireKeysInput:
    """Retire keys whose successor has signed for more than ``grace_seconds``."""

    grace_seconds: int


@dataclass(frozen=True, slots=True)
class KeyRotationResult:
    """What a rotation did.

    Attributes:
        kid: The rotation's key.
        added: False when an earlier run for the same time already added it.
        retired: Keys deleted after the grace period.
    """

    kid: str
    added: bool
    retired: list[str]
