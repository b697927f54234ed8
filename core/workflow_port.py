"""The port through which the registry starts Temporal workflows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class WorkflowStarter(Protocol):
    """Starts workflows by type name; a start with an id already used is a no-op."""

    async def start(
        self,
        workflow: str,
        arg: object,
        workflow_id: str,
        *,
        search: Mapping[str, str] | None = None,
    ) -> bool:
        """Start ``workflow`` with ``arg`` under ``workflow_id``.

        Args:
            workflow: The workflow type name.
            arg: Its single argument.
            workflow_id: The run's id; a second start with it is a no-op.
            search: Search attribute name to (Keyword) value, set on the run at start
                (``activities.search_attributes``); ``None`` sets none.

        Returns:
            True if this call started it, False if a run with that id already existed.

        Raises:
            Exception: Temporal is unreachable (the caller retries later).
        """
        ...
