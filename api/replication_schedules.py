"""Temporal Schedules of scheduled replication policies (``core.replication.ScheduleSync``).

``moorage-replication-<policy id>``, kept as ``api.policy_schedules`` keeps every kind's.
"""

from __future__ import annotations

from activities.search_attributes import search_values
from api.policy_schedules import PolicySchedules
from core.replication import EXECUTION_WORKFLOW, ExecutionRequest, ReplicationPolicy, TriggerKind
from core.settings import TemporalSettings


def replication_schedules(settings: TemporalSettings) -> PolicySchedules[ReplicationPolicy]:
    """The schedules of replication policies whose trigger is ``scheduled``."""
    return PolicySchedules(
        settings,
        "replication",
        EXECUTION_WORKFLOW,
        scheduled=lambda policy: policy.trigger is TriggerKind.SCHEDULED,
        request=lambda policy: ExecutionRequest("", policy.id, TriggerKind.SCHEDULED),
        search=lambda policy: search_values(policy=policy.name),
    )
