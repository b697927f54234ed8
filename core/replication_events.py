"""The outbox event a finished replication execution is announced by (``replication.finished``).

The store writes it in the transaction that closes the execution
(``core.replication.ReplicationStore.finish_execution``), once: a repeated close (the
activity retried after its worker died) finds the execution closed and writes none. It
is a system event (replication policies are the installation's, not a project's), so
system-wide webhooks receive it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from core import events
from core.replication import Execution

#: The outbox event kind (``core.events.REPLICATION_FINISHED``).
KIND: Final = events.REPLICATION_FINISHED
#: Failed tasks' errors an event names at most.
ERRORS_MAX: Final = 5


def replication_event(execution: Execution, errors: Sequence[str] = ()) -> str:
    """The JSON data announcing the closed ``execution``.

    Data: ``execution_id``, ``policy`` and ``policy_id``, ``trigger``, ``status``
    (``succeeded``, ``partial``, ``failed`` or ``stopped``), the task counts (``total``,
    ``succeeded``, ``failed``, ``skipped``), ``started_at``, ``finished_at``; of an
    execution that failed as a whole the ``reason``, of failed tasks their first
    ``errors`` (``<destination>:<reference>: <error>``, at most :data:`ERRORS_MAX`).
    """
    details: dict[str, object] = {
        "execution_id": execution.id,
        "policy": execution.policy,
        "policy_id": execution.policy_id,
        "trigger": str(execution.trigger),
        "status": str(execution.status),
        "total": execution.total,
        "succeeded": execution.succeeded,
        "failed": execution.failed,
        "skipped": execution.skipped,
        "started_at": execution.started_at.isoformat(),
        "finished_at": None if execution.finished_at is None else execution.finished_at.isoformat(),
    }
    if execution.reason:
        details["reason"] = execution.reason
    if errors:
        details["errors"] = list(errors[:ERRORS_MAX])
    return json.dumps(details, separators=(",", ":"))
