"""Temporal Schedules of scheduled preheat policies.

``moorage-preheat-<policy id>``, kept as ``api.policy_schedules`` keeps every kind's.
"""

from __future__ import annotations

from activities.search_attributes import search_values
from api.policy_schedules import PolicySchedules
from core.preheat import EXECUTION_WORKFLOW, ExecutionRequest, Policy, TriggerKind
from core.settings import TemporalSettings


def preheat_schedules(settings: TemporalSettings) -> PolicySchedules[Policy]:
    """The schedules of preheat policies whose trigger is ``scheduled``."""
    return PolicySchedules(
        settings,
        "preheat",
        EXECUTION_WORKFLOW,
        scheduled=lambda policy: policy.trigger is TriggerKind.SCHEDULED,
        request=lambda policy: ExecutionRequest("", policy.id, TriggerKind.SCHEDULED),
        search=lambda policy: search_values(policy=policy.name, project=policy.project),
    )
