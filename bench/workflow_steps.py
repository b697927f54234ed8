"""What a child workflow costs Temporal's dev server, with Moorage's SQLite settings or SQLite's.

``python -m bench.workflow_steps [--children 100] [--concurrency 8] [--repeats 3]`` starts,
for each repetition and each journal in :data:`JOURNALS` (alternating which goes first),
a Temporal dev server on a new database (``tests.services.temporal``) and a worker in this
process, then runs one parent workflow that starts ``children`` child workflows,
``concurrency`` at a time, each running one activity that does nothing: the shape of a
replication execution (``workflows.replication``) without its copies. It measures the
server's CPU (``/proc/<pid>/stat``, children included), this process's CPU (the worker
and the client) and the wall time of the parent, and prints one JSON line per journal
with the medians per child and ``ratio`` = the SQLite defaults' server CPU per child /
Moorage's. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    from bench.procmem import ProcFs
    from tests.services.temporal import journal_mode, start_temporal

#: Journal name -> whether the dev server gets ``cli.temporal_dev.SQLITE_PRAGMAS``.
JOURNALS: dict[str, bool] = {"moorage": True, "sqlite-default": False}
TASK_QUEUE = "bench-workflow-steps"
#: Bound of one parent run (seconds).
RUN_TIMEOUT = timedelta(minutes=10)


@activity.defn(name="bench-step")
def step(number: int) -> int:
    """The child's one activity: nothing to do."""
    return number


@workflow.defn(name="bench-step-child")
class StepChild:
    """One child: one activity, as a replication task's run has one copy."""

    @workflow.run
    async def run(self, number: int) -> int:
        done: int = await workflow.execute_activity(
            "bench-step", number, start_to_close_timeout=timedelta(seconds=60), result_type=int
        )
        return done


@workflow.defn(name="bench-step-parent")
class StepParent:
    """Starts ``children`` children, ``concurrency`` at a time (a bounded gather)."""

    @workflow.run
    async def run(self, children: int, concurrency: int) -> int:
        gate = asyncio.Semaphore(concurrency)
        parent = workflow.info().workflow_id

        async def one(number: int) -> int:
            async with gate:
                done: int = await workflow.execute_child_workflow(
                    "bench-step-child", number, id=f"{parent}-{number}", result_type=int
                )
                return done

        return sum(await asyncio.gather(*(one(n) for n in range(children))))


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds of process ``pid`` and its reaped children."""
    return sum(ProcFs().cpu_seconds([pid]))


async def measure(address: str, pid: int, children: int, concurrency: int) -> dict[str, float]:
    """One warm-up run, then one timed run: per child, server and own CPU ms and wall ms."""
    client = await Client.connect(address)
    with ThreadPoolExecutor(max_workers=16) as executor:
        async with Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[StepParent, StepChild],
            activities=[step],
            activity_executor=executor,
        ):

            async def parent(name: str, count: int) -> None:
                await client.execute_workflow(
                    "bench-step-parent",
                    args=[count, concurrency],
                    id=name,
                    task_queue=TASK_QUEUE,
                    execution_timeout=RUN_TIMEOUT,
                )

            await parent("warm-up", concurrency)
            server, own, wall = server_cpu_seconds(pid), time.process_time(), time.perf_counter()
            await parent("timed", children)
            wall = time.perf_counter() - wall
            own = time.process_time() - own
            server = server_cpu_seconds(pid) - server
    return {
        "server_cpu_ms": 1000 * server / children,
        "worker_cpu_ms": 1000 * own / children,
        "wall_ms": 1000 * wall / children,
    }


def run_once(journal: str, children: int, concurrency: int) -> dict[str, Any]:
    """A new dev server with ``journal``'s settings, measured, stopped.

    The result names the journal mode the server's database was in (``wal`` or
    ``delete``), read after the runs.
    """
    with tempfile.TemporaryDirectory(prefix="bench-workflow-steps-") as work:
        server = start_temporal(Path(work), sqlite_pragmas=JOURNALS[journal])
        try:
            found: dict[str, Any] = asyncio.run(
                measure(server.address, server.process.pid, children, concurrency)
            )
            found["journal_mode"] = journal_mode(Path(work) / "temporal.db")
            return found
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m bench.workflow_steps")
    parser.add_argument("--children", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, help="append the JSON lines to this file")
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in JOURNALS}
    for repeat in range(args.repeats):
        order = list(JOURNALS) if repeat % 2 == 0 else list(reversed(JOURNALS))
        for journal in order:
            runs[journal].append(run_once(journal, args.children, args.concurrency))
    keys = ("server_cpu_ms", "worker_cpu_ms", "wall_ms")
    medians = {
        journal: {key: statistics.median(r[key] for r in found) for key in keys}
        for journal, found in runs.items()
    }
    ours = medians["moorage"]["server_cpu_ms"]
    lines = [
        {
            "bench": "workflow_steps",
            "journal": journal,
            "label": args.label,
            "children": args.children,
            "concurrency": args.concurrency,
            "repeats": args.repeats,
            **{key: round(value, 2) for key, value in found.items()},
            "runs": runs[journal],
            "ratio": round(medians["sqlite-default"]["server_cpu_ms"] / ours, 3) if ours else None,
        }
        for journal, found in medians.items()
    ]
    for line in lines:
        print(json.dumps(line))
        if args.output is not None:
            with args.output.open("a", encoding="utf-8") as out:
                out.write(json.dumps(line) + "\n")
    return lines


if __name__ == "__main__":
    main()
