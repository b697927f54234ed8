"""A replication policy for unit tests, with every field set and any of them overridden."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from core.replication import ArtifactKind, Direction, ReplicationPolicy, TriggerKind

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def replication_policy(**extra: Any) -> ReplicationPolicy:
    """An enabled push policy of every repository and tag to ``peer`` (``extra`` overrides)."""
    values: dict[str, Any] = {
        "id": 1,
        "name": "p",
        "description": "",
        "enabled": True,
        "direction": Direction.PUSH,
        "endpoint": "peer",
        "repositories": "**",
        "tags": "**",
        "artifact_kind": ArtifactKind.ALL,
        "referrers": True,
        "flatten": 0,
        "prefix": "",
        "trigger": TriggerKind.EVENT,
        "cron": None,
        "deletions": False,
        "override": True,
        "bandwidth_kbps": 0,
        "concurrency": 4,
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(extra)
    return ReplicationPolicy(**values)
