"""The answer of one execution of a policy (replication, preheat): what every kind shares."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel


class ExecutionOut(BaseModel):
    """An execution: its trigger, status, task counts and why it failed (if it did)."""

    id: str
    policy_id: int
    policy: str
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    total: int
    succeeded: int
    failed: int
    reason: str | None

    @classmethod
    def of(cls, execution: Any) -> Self:
        """The answer of a stored execution (its enums as their text)."""
        fields = {name: getattr(execution, name) for name in cls.model_fields}
        fields["trigger"] = str(execution.trigger)
        fields["status"] = str(execution.status)
        return cls(**fields)
