"""The real worker with one activity (or the outbox's marking step) made to stall.

``python -m tests.services.faulty_worker --activity NAME --when after --marker PATH``
builds the worker exactly as ``moorage worker`` does (settings from the environment,
``cli.wiring.build_activities``, ``cli.worker.run_worker``), except that the chosen
activity is wrapped: on its first matching call the wrapper runs the real activity
(``after``; ``during``: and goes on heartbeating) or not yet (``before``), writes ``PATH``
as JSON (the activity's identity within its workflow) and then blocks for at most
``--hold`` seconds. A test kills the
process in that window, so the side effect is done (or not started) and Temporal has
not been told the attempt finished: the retry is a re-delivery of the same task.

``--activity outbox-mark`` stalls the outbox dispatcher instead, after it started an
event batch's run and before it marked the batch started.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import os
import threading
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio import activity

from activities.heartbeats import heartbeat_interval, heartbeating, heartbeating_thread
from cli import outbox
from cli.composition import Composition, compose
from cli.outbox_task import installation_subscribers
from cli.signals import stop_on_signals
from cli.wiring import build_activities
from cli.worker import run_worker
from core.settings import Settings
from core.subscribers import builtin_subscribers

if TYPE_CHECKING:
    from collections.abc import Callable

#: Pseudo activity name: stall the outbox dispatcher before it marks a batch started.
OUTBOX_MARK = "outbox-mark"
#: ``--when`` values: stall after the real call (side effect done) or before it, or after
#: it while still heartbeating (an attempt that is alive and working when it is killed).
AFTER, BEFORE, DURING = "after", "before", "during"


@dataclass
class Fault:
    """Where to stall, and for how long at most."""

    activity: str
    when: str
    marker: Path
    hold_seconds: float
    workflow_id: str | None
    skip: int
    #: Dispatch to every subscriber of an installation, not only the built-in ones.
    all_subscribers: bool = False
    #: Only calls of workflows whose id contains this (e.g. a scan run's digest).
    workflow_contains: str | None = None
    _fired: bool = False
    _seen: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, workflow_id: str | None) -> bool:
        """Whether this call is the one to stall (the first match after ``skip``)."""
        if self.workflow_id is not None and workflow_id != self.workflow_id:
            return False
        if self.workflow_contains is not None and self.workflow_contains not in (workflow_id or ""):
            return False
        with self._lock:
            if self._fired:
                return False
            self._seen += 1
            if self._seen <= self.skip:
                return False
            self._fired = True
            return True

    def stall(self, facts: dict[str, Any]) -> None:
        """Write the marker (atomically), then block until killed or the bound runs out."""
        partial = self.marker.with_suffix(".partial")
        partial.write_text(json.dumps(facts), encoding="utf-8")
        partial.replace(self.marker)
        deadline = time.monotonic() + self.hold_seconds
        while time.monotonic() < deadline:
            time.sleep(0.1)


def activity_name(fn: Callable[..., Any]) -> str:
    """The name ``fn`` is registered under with Temporal."""
    definition = activity._Definition.from_callable(fn)
    assert definition is not None, fn
    assert definition.name is not None, fn
    return definition.name


def _facts() -> dict[str, Any]:
    info = activity.info()
    return {
        "activity": info.activity_type,
        "activity_id": info.activity_id,
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "attempt": info.attempt,
        "pid": os.getpid(),
    }


def _stalling_async(fn: Callable[..., Any], fault: Fault) -> Callable[..., Any]:
    """An ``async`` activity ``fn`` registered under its own name, stalling on the faulted
    call. The stall runs in a thread, so the worker's event loop (and with it every other
    activity and, in ``during``, the heartbeats) goes on."""
    hints = typing.get_type_hints(fn)
    (param_name,) = (name for name in hints if name != "return")

    async def wrapped(params: Any) -> Any:
        if not fault.claim(activity.info().workflow_id):
            return await fn(params)
        facts = _facts()
        if fault.when == BEFORE:
            await asyncio.to_thread(fault.stall, facts)
            return await fn(params)
        result = await fn(params)
        every = heartbeat_interval()
        if fault.when == DURING and every is not None:
            async with heartbeating(every):
                await asyncio.to_thread(fault.stall, facts)
        else:
            await asyncio.to_thread(fault.stall, facts)
        return result

    wrapped.__name__ = fn.__name__
    wrapped.__annotations__ = {"params": hints[param_name], "return": hints.get("return")}
    return activity.defn(name=activity_name(fn))(wrapped)


def _stalling(fn: Callable[..., Any], fault: Fault) -> Callable[..., Any]:
    """``fn`` registered under its own name, stalling on the faulted call."""
    if inspect.iscoroutinefunction(fn):
        return _stalling_async(fn, fault)
    hints = typing.get_type_hints(fn)
    (param_name,) = (name for name in hints if name != "return")
    assert param_name == "params", f"{fn} takes {param_name!r}; the wrapper passes params"

    def wrapped(params: Any) -> Any:
        if not fault.claim(activity.info().workflow_id):
            return fn(params)
        facts = _facts()
        if fault.when == BEFORE:
            fault.stall(facts)
            return fn(params)
        result = fn(params)
        every = heartbeat_interval()
        if fault.when == DURING and every is not None:
            with heartbeating_thread(every):
                fault.stall(facts)
        else:
            fault.stall(facts)
        return result

    wrapped.__name__ = fn.__name__
    wrapped.__annotations__ = {param_name: hints[param_name], "return": hints.get("return")}
    return activity.defn(name=activity_name(fn))(wrapped)


def _stall_outbox_marking(fault: Fault) -> None:
    original = outbox.OutboxDispatcher._started

    def started(self: outbox.OutboxDispatcher, batch_id: int) -> None:
        if fault.claim(None):
            fault.stall({"activity": OUTBOX_MARK, "batch_id": batch_id, "pid": os.getpid()})
        original(self, batch_id)

    outbox.OutboxDispatcher._started = started  # type: ignore[method-assign]


def faulty_activities(root: Composition, fault: Fault) -> list[Callable[..., Any]]:
    """``build_activities(root)`` with the faulted activity wrapped."""
    activities = build_activities(root)
    names = [activity_name(fn) for fn in activities]
    if fault.activity == OUTBOX_MARK:
        _stall_outbox_marking(fault)
        return activities
    if fault.activity not in names:
        raise SystemExit(f"no activity named {fault.activity!r}; the worker has {names}")
    return [
        _stalling(fn, fault) if name == fault.activity else fn
        for fn, name in zip(activities, names, strict=True)
    ]


def _parse() -> Fault:
    parser = argparse.ArgumentParser(prog="faulty_worker")
    parser.add_argument("--activity", required=True)
    parser.add_argument("--when", choices=[AFTER, BEFORE, DURING], default=AFTER)
    parser.add_argument("--marker", type=Path, required=True)
    parser.add_argument("--hold", type=float, default=300.0)
    parser.add_argument("--workflow-id", default=None)
    parser.add_argument(
        "--workflow-contains", default=None, help="only workflows whose id contains this"
    )
    parser.add_argument("--skip", type=int, default=0, help="matching calls to let through")
    parser.add_argument(
        "--all-subscribers",
        action="store_true",
        help="fan events out to every subscriber (scans, webhooks, ...) as moorage worker does",
    )
    args = parser.parse_args()
    return Fault(
        args.activity,
        args.when,
        args.marker,
        args.hold,
        args.workflow_id,
        args.skip,
        all_subscribers=args.all_subscribers,
        workflow_contains=args.workflow_contains,
    )


async def _main(settings: Settings, fault: Fault) -> None:
    stop = asyncio.Event()
    root = compose(settings)
    with stop_on_signals(asyncio.get_running_loop(), stop.set):
        await run_worker(
            settings,
            faulty_activities(root, fault),
            stop,
            outbox=root.outbox_dispatcher(
                installation_subscribers() if fault.all_subscribers else builtin_subscribers()
            ),
        )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    fault = _parse()
    asyncio.run(_main(Settings(), fault))


if __name__ == "__main__":
    main()
