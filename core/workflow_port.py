"""The port through which the registry starts Temporal workflows."""

from __future__ import annotations

from typing import Protocol


class WorkflowStarter(Protocol):
    """Starts workflows by type name; a start with an id already used is a no-op."""

    async def start(self, workflow: str, arg: object, workflow_id: str) -> bool:
        """Start ``workflow`` with ``arg`` under ``workflow_id``.

        Returns:
            True if this call started it, False if a run with that id already existed.

        Raises:
            Exception: Temporal is unreachable (the caller retries later).
        """
        ...
