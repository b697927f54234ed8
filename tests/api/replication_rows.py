"""Replication rows for store-level tests: a policy and running executions of it."""

from __future__ import annotations

import secrets
from datetime import datetime

from core.replication import (
    ArtifactKind,
    Direction,
    Execution,
    ExecutionStatus,
    ReplicationPolicy,
    TriggerKind,
)
from storage.db.replication import SqlReplicationStore


def add_policy(store: SqlReplicationStore, now: datetime) -> ReplicationPolicy:
    """A manual pull policy (``src/**`` into ``dst``) under a fresh name."""
    policy = store.add_policy(
        ReplicationPolicy(
            0, f"rows-{secrets.token_hex(4)}", "", True, Direction.PULL, "ep", "src/**", "**",
            ArtifactKind.ALL, True, 0, "dst", TriggerKind.MANUAL, None, False, True, 0, 2,
            now, now,
        )
    )  # fmt: skip
    assert policy is not None
    return policy


def add_running(store: SqlReplicationStore, policy: ReplicationPolicy, started: datetime) -> str:
    """A ``running`` manual execution of ``policy`` with no tasks yet; its id."""
    execution_id = f"rows-{secrets.token_hex(4)}"
    store.add_execution(
        Execution(
            execution_id, policy.id, policy.name, TriggerKind.MANUAL,
            ExecutionStatus.RUNNING, started, None, 0, 0, 0, 0,
        )
    )  # fmt: skip
    return execution_id
