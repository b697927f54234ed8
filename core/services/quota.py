"""Quota checks inside the write transaction that adds a blob or a manifest.

Usage is derived from rows, never counted: the bytes of the distinct blobs linked to
any repository of the project plus the bytes of its manifests, and the number of its
manifests (``PolicyRepository.usage``). A check locks the project (PostgreSQL: its row;
SQLite: the database write lock is already held), reads the usage and compares it with
the limit plus what the change adds, so concurrent pushes into one project queue on the
lock and cannot jointly exceed the limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from core import events
from core.control_records import Usage
from core.errors import OCIErrorCode, RegistryError
from core.ports import UnitOfWork
from core.records import PushTarget, RepositoryRecord

QUOTA: str = "quota"
QUOTA_WARNING: str = "quota.warning"
QUOTA_EXCEEDED: str = events.QUOTA_EXCEEDED


@dataclass(eq=False)
class QuotaExceededError(RegistryError):
    """A push refused by a project's quota (``DENIED``, 403); ``quota`` names which."""

    quota: str = ""


def _denied(what: str, used: int, adding: int, limit: int, unit: str) -> QuotaExceededError:
    return QuotaExceededError(
        OCIErrorCode.DENIED,
        f"quota exceeded: adding {adding} {unit} to the project's {what} usage of {used} "
        f"{unit} would exceed its {what} quota of {limit} {unit}",
        detail={"quota": what, "used": used, "adding": adding, "limit": limit},
        quota=what,
    )


class QuotaLimits(BaseModel):
    """Limits of one project; ``None`` is unlimited."""

    bytes: int | None = Field(default=None, ge=0)
    artifacts: int | None = Field(default=None, ge=0)

    @classmethod
    def load(cls, body: str | None) -> QuotaLimits:
        return cls.model_validate(json.loads(body)) if body else cls()

    @property
    def unlimited(self) -> bool:
        return self.bytes is None and self.artifacts is None


def reserve(
    session: UnitOfWork,
    repository: RepositoryRecord | PushTarget,
    *,
    add_bytes: int,
    add_artifacts: int,
    warning_ratio: float,
) -> None:
    """Check that the project can take ``add_bytes`` and ``add_artifacts`` more.

    Raises :class:`QuotaExceededError` (``DENIED``, 403) naming the quota; writes a
    ``quota.warning`` event when the change crosses ``warning_ratio`` of a limit.
    """
    limits = QuotaLimits.load(session.policies.get(repository.project_id, QUOTA))
    if limits.unlimited or (add_bytes == 0 and add_artifacts == 0):
        return
    session.projects.lock(repository.project_id)
    usage = session.policies.usage(repository.project_id)
    if limits.bytes is not None and usage.bytes + add_bytes > limits.bytes:
        raise _denied("storage", usage.bytes, add_bytes, limits.bytes, "bytes")
    if limits.artifacts is not None and usage.artifacts + add_artifacts > limits.artifacts:
        raise _denied("artifact", usage.artifacts, add_artifacts, limits.artifacts, "artifacts")
    after = Usage(usage.bytes + add_bytes, usage.artifacts + add_artifacts)
    if crosses(limits, usage, after, warning_ratio):
        session.outbox.add(
            QUOTA_WARNING,
            project_id=repository.project_id,
            repository=repository.name,
            data=json.dumps({"bytes": after.bytes, "artifacts": after.artifacts}),
        )


def record_exceeded(
    session: UnitOfWork,
    repository: RepositoryRecord | PushTarget,
    denied: QuotaExceededError,
    now: datetime,
) -> None:
    """Write the ``quota.exceeded`` event of a refused push, once per project, quota and hour.

    Runs in its own transaction after the refused push rolled back. A client retrying a
    refused push writes no further events in the same hour (the key names the hour).
    """
    key = f"{denied.quota}@{now:%Y-%m-%dT%H}"
    session.projects.lock(repository.project_id)
    if session.outbox.keyed_exists(QUOTA_EXCEEDED, repository.project_id, key):
        return
    session.outbox.add(
        QUOTA_EXCEEDED,
        project_id=repository.project_id,
        repository=repository.name,
        data=json.dumps({**(denied.detail or {}), "key": key}),
    )


def crosses(limits: QuotaLimits, before: Usage, after: Usage, ratio: float) -> bool:
    """Whether usage passes ``ratio`` of a limit with this change."""
    for limit, old, new in (
        (limits.bytes, before.bytes, after.bytes),
        (limits.artifacts, before.artifacts, after.artifacts),
    ):
        if limit and old < ratio * limit <= new:
            return True
    return False


__all__ = [
    "QUOTA",
    "QUOTA_EXCEEDED",
    "QUOTA_WARNING",
    "QuotaExceededError",
    "QuotaLimits",
    "crosses",
    "events",
    "record_exceeded",
    "reserve",
]
