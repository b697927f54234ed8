"""One fault phase under load, and the checks every phase ends with.

A phase starts the load (one pusher per repository, two pullers), waits for a few
committed images, injects its fault (which returns once the fault is repaired), lets
the load commit a few more images and stops it. Its availability is measured from the
fault's start to the end of the load. The checks: no client saw a wrong byte, a hang or
an answer other than success or 503 with an OCI error; every image committed so far
pulls byte-identical; and every pushed manifest's ``manifest.pushed`` event was
dispatched exactly once to each subscriber that wants it, and to no subscriber whose
feature is not configured (the outbox and batch records).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cli.outbox_task import installation_subscribers
from core.events import MANIFEST_PUSHED
from tests.ha.load import Availability, Image, Ledger, Load, RetryingClient, availability

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.ha.topology import Topology

#: Images committed before the fault and after the repair.
IMAGES_AROUND_FAULT = 3
#: Bound on waiting for images to commit, or for events to be dispatched (seconds).
WAIT_BOUND = 90.0
#: Longest a phase's load runs (seconds) and most operations per client.
LOAD_SECONDS = 120.0
LOAD_OPERATIONS = 400
#: Subscribers of pushes whose feature nothing in this installation configures (no
#: webhook, replication or preheat policy): their interests (``core.subscribers.Interest``)
#: leave every push out, so they must receive none.
UNCONFIGURED = frozenset({"webhook", "replication", "preheat"})
#: Clients pulling every committed image after a phase.
PULLERS = 4


@dataclass(frozen=True)
class PhaseResult:
    """What one phase measured and committed."""

    fault: str
    during: Availability
    images: list[Image]
    violations: list[str]


def _wait_images(ledger: Ledger, count: int) -> None:
    deadline = time.monotonic() + WAIT_BOUND
    while len(ledger.committed()) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(ledger.committed())} of {count} images committed")
        time.sleep(0.05)


def run_phase(topology: Topology, fault: str, inject: Callable[[], None]) -> PhaseResult:
    """Run ``inject`` under the load; return the phase's availability and images."""
    project = "ha" + fault.replace("-", "")
    load = Load(
        topology.url,
        topology.admin_password,
        [f"{project}/r{i}" for i in range(2)],
        max_operations=LOAD_OPERATIONS,
        max_seconds=LOAD_SECONDS,
    )
    load.start()
    try:
        _wait_images(load.ledger, IMAGES_AROUND_FAULT)
        started = time.monotonic()
        inject()
        repaired = len(load.ledger.committed())
        _wait_images(load.ledger, repaired + IMAGES_AROUND_FAULT)
    finally:
        load.stop()
    during = availability(load.ledger.window(started, time.monotonic()), started)
    return PhaseResult(fault, during, load.ledger.committed(), list(load.ledger.violations))


def pull_all(topology: Topology, images: list[Image]) -> list[str]:
    """Pull every image through the load balancer (a few clients at once); the differences."""
    ledger = Ledger()

    def pull(share: list[Image]) -> None:
        client = RetryingClient(topology.url, topology.admin_password, ledger)
        try:
            for image in share:
                client.pull(image)
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=PULLERS) as pool:
        for done in [pool.submit(pull, images[i::PULLERS]) for i in range(PULLERS)]:
            done.result()
    return ledger.violations


def _event_records(
    topology: Topology,
) -> tuple[list[tuple[int, str, str, bool]], list[tuple[str, str, bool, str | None]]]:
    with topology.postgres.connect() as conn:
        events = conn.execute(
            "SELECT id, repository, digest, dispatched_at IS NOT NULL FROM outbox_event"
            " WHERE kind = %s",
            (MANIFEST_PUSHED,),
        ).fetchall()
        batches = conn.execute(
            "SELECT subscriber, events, closed_at IS NOT NULL, outcome FROM event_batch"
        ).fetchall()
    return (
        [(int(str(i)), str(r), str(d), bool(done)) for i, r, d, done in events],
        [
            (str(s), str(e), bool(closed), None if o is None else str(o))
            for s, e, closed, o in batches
        ],
    )


def dispatch_problems(topology: Topology, images: list[Image]) -> list[str]:
    """Wait (bounded) for the images' events to be delivered; what is not exactly once."""
    kinds = sorted(s.kind for s in installation_subscribers() if MANIFEST_PUSHED in s.events)
    deadline = time.monotonic() + WAIT_BOUND
    while True:
        problems = _dispatch_problems(topology, images, kinds)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.5)


def _dispatch_problems(topology: Topology, images: list[Image], kinds: list[str]) -> list[str]:
    events, batches = _event_records(topology)
    by_manifest = Counter((repository, digest) for _, repository, digest, _ in events)
    ids = {(repository, digest): i for i, repository, digest, _ in events}
    dispatched = {i for i, _, _, done in events if done}
    delivered: Counter[tuple[str, int]] = Counter()
    completed: set[tuple[str, int]] = set()
    for subscriber, listed, closed, outcome in batches:
        for event in json.loads(listed):
            delivered[(subscriber, int(event["event_id"]))] += 1
            if closed and outcome == "COMPLETED":
                completed.add((subscriber, int(event["event_id"])))
    problems = []
    for image in images:
        key = (image.repository, image.digest)
        if by_manifest[key] != 1:
            problems.append(f"{key}: {by_manifest[key]} manifest.pushed events")
            continue
        event_id = ids[key]
        if event_id not in dispatched:
            problems.append(f"{key}: event {event_id} not dispatched")
        for kind in kinds:
            times = delivered[(kind, event_id)]
            if kind in UNCONFIGURED:
                if times:
                    problems.append(f"{key}: event {event_id} in {times} {kind} batches")
                continue
            if times != 1 or (kind, event_id) not in completed:
                problems.append(
                    f"{key}: event {event_id} in {times} {kind} batches, completed:"
                    f" {(kind, event_id) in completed}"
                )
    return problems
