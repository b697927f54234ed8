"""Stopping an execution (Harbor's "stop"): cancel its workflow, settle as ``stopped``.

Replication and preheat executions stop the same way. A stop asks Temporal to cancel the
execution's workflow (its id is the execution's) and marks the execution ``stopping``.
The workflow then stops its work in flight, marks the tasks that did not finish
``stopped`` and closes the execution as ``stopped`` (``workflows.replication``,
``workflows.preheat``). Tasks that completed before the stop reached them keep their
result, so the tasks say exactly what was done.

A stop is idempotent: stopping a ``stopping`` execution changes nothing; stopping one
that has finished is a conflict. An execution whose workflow Temporal no longer knows
(it never started, or it was terminated) is closed as ``stopped`` here, since nothing
else would close it. When Temporal cannot be reached nothing changes and the caller is
told so: the run keeps going, and marking it stopped would be untrue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Final, Generic, Protocol, TypeVar

from core.errors import ConflictError, NotFoundError, OCIErrorCode, RegistryError

#: The statuses every stoppable execution kind shares (their enums' values).
STOPPING: Final = "stopping"
STOPPED: Final = "stopped"


class Stoppable(Protocol):
    """An execution as a stop reads it."""

    @property
    def status(self) -> str: ...


E = TypeVar("E", bound=Stoppable)


class StopRows(Protocol[E]):
    """One kind of execution's rows, as a stop changes them (``core.execution_rows``)."""

    #: What the execution is called in messages ("replication execution").
    noun: str

    def execution(self, execution_id: str) -> E | None: ...

    def is_open(self, execution: E) -> bool:
        """Whether its workflow may still change it (``running`` or ``stopping``)."""
        ...

    def request_stop(self, execution_id: str, reason: str) -> bool:
        """Mark a ``running`` execution ``stopping`` with ``reason``; whether it was running."""
        ...

    def stop_execution(self, execution_id: str, reason: str | None, now: datetime) -> E | None:
        """Close an open execution as ``stopped``, its unfinished tasks too (one transaction)."""
        ...


class WorkflowCancel(Protocol):
    """Temporal's side of a stop (``api.run_control.TemporalRuns``)."""

    async def cancel(self, workflow_id: str, reason: str = "") -> bool:
        """Ask for the workflow's cancellation; ``False`` when it is not running.

        ``reason`` travels with the request (the workflow records it).

        Raises:
            Exception: Temporal is unreachable.
        """
        ...


class ExecutionStopper(Generic[E]):
    """Stops executions of one kind (the rows are read and written off the event loop)."""

    def __init__(
        self, rows: StopRows[E], workflows: WorkflowCancel, clock: Callable[[], datetime]
    ) -> None:
        self._rows = rows
        self._workflows = workflows
        self._now = clock

    async def stop(self, execution_id: str, by: str) -> E:
        """Stop a running execution; the execution as it stands (``stopping`` or ``stopped``).

        Raises:
            NotFoundError: No such execution.
            ConflictError: It has finished already.
            RegistryError: ``UNAVAILABLE``: Temporal could not be reached (nothing changed).
        """
        execution = await asyncio.to_thread(self._check, execution_id)
        if execution.status == STOPPING:
            return execution
        reason = f"stopped by {by}"
        try:
            reached = await self._workflows.cancel(execution_id, reason)
        except Exception as exc:
            raise RegistryError(
                OCIErrorCode.UNAVAILABLE,
                f"Temporal could not be reached to stop {execution_id!r}; "
                "the execution keeps running, try again",
            ) from exc
        return await asyncio.to_thread(self._record, execution_id, reached, reason)

    def _current(self, execution_id: str) -> E:
        found = self._rows.execution(execution_id)
        if found is None:
            raise NotFoundError(f"{self._rows.noun} {execution_id!r} not found")
        return found

    def _check(self, execution_id: str) -> E:
        execution = self._current(execution_id)
        if not self._rows.is_open(execution):
            raise ConflictError(
                f"{self._rows.noun} {execution_id!r} has already finished "
                f"({execution.status}); only a running execution can be stopped"
            )
        return execution

    def _record(self, execution_id: str, reached: bool, reason: str) -> E:
        """``stopping`` (its workflow settles it), or closed ``stopped`` when none runs."""
        if reached:
            self._rows.request_stop(execution_id, reason)
        else:
            self._rows.stop_execution(execution_id, reason, self._now())
        after = self._current(execution_id)
        if not self._rows.is_open(after) and after.status != STOPPED:
            raise ConflictError(
                f"{self._rows.noun} {execution_id!r} has already finished ({after.status})"
            )
        return after
