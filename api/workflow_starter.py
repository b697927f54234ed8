"""Starts workflows with the Temporal client, connecting lazily (``core.workflow_port``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.search_attributes import typed_search_attributes
from adapters.temporal_client import connect_temporal
from core.settings import TemporalSettings

#: Bound on one connect or start call.
CALL_TIMEOUT = 5.0


class TemporalStarter:
    """A :class:`core.workflow_port.WorkflowStarter` over ``temporalio``.

    The client is made on first use and dropped after any failure, so a Temporal outage
    only fails the calls made during it.
    """

    def __init__(self, settings: TemporalSettings) -> None:
        self._settings = settings
        self._client: Client | None = None

    async def _connect(self) -> Client:
        if self._client is None:
            self._client = await connect_temporal(self._settings)
        return self._client

    async def start(
        self,
        workflow: str,
        arg: object,
        workflow_id: str,
        *,
        search: Mapping[str, str] | None = None,
    ) -> bool:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                client = await self._connect()
                await client.start_workflow(
                    workflow,
                    arg,
                    id=workflow_id,
                    task_queue=self._settings.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=typed_search_attributes(search or {}),
                )
        except WorkflowAlreadyStartedError:
            return False
        except Exception:
            self._client = None
            raise
        return True
