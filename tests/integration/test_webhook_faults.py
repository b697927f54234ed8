"""A worker killed with ``kill -9`` in the middle of a webhook delivery loses no event.

The real worker runs as its own process (``moorage worker``, with the outbox dispatcher).
The receiver holds the first delivery's request open; the test kills the worker while
it waits for the answer, then starts another worker. Temporal runs the send again once
the dead attempt's heartbeat times out: the receiver sees the held event again (same
``webhook-id``, so it can dedupe) and every event at least once, in order per repository.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from core import events
from core.settings import Settings
from tests.api.oci import unique_project
from tests.integration.webhook_rig import (
    BOUND,
    api,
    assert_in_order_per_repository,
    event_id,
    first_deliveries,
    webhook_settings,
)
from tests.services.control_backends import worker_env
from tests.services.moorage import REPO_ROOT
from tests.services.process import ManagedProcess, spawn
from tests.services.temporal import TemporalServer
from tests.services.webhook_receiver import WebhookReceiver, start_receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Any:
    started = start_receiver()
    yield started
    started.stop()


def _env(settings: Settings) -> dict[str, str]:
    env = worker_env(
        settings,
        {
            "OUTBOX_POLL_SECONDS": "0.1",
            "EVENT_BATCH_SECONDS": "0.2",
            "GC_EVERY_SECONDS": "0",
            "POLICY_EVERY_SECONDS": "0",
        },
    )
    env["MOORAGE_OUTBOUND__ALLOW"] = json.dumps(settings.outbound.allow)
    env["MOORAGE_OUTBOUND__ALLOW_HTTP"] = "true"
    for name, value in settings.webhooks.model_dump().items():
        env[f"MOORAGE_WEBHOOKS__{name.upper()}"] = str(value)
    return env


def _worker(settings: Settings, root: Path, n: int) -> ManagedProcess:
    return spawn(
        f"moorage worker {n}",
        [sys.executable, "-m", "cli.main", "worker"],
        log_path=root / f"worker-{n}.log",
        env=_env(settings),
        cwd=REPO_ROOT,
    )


def test_kill_9_mid_delivery_redelivers_and_loses_no_event(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings(
        "sqlite-fs", tmp_path, temporal_server, request, allow=["127.0.0.1/32"]
    )
    project = unique_project()
    repositories = [f"{project}/a", f"{project}/b"]
    workers: list[ManagedProcess] = []
    with api(settings) as rig:
        rig.project(project)
        created = rig.create_webhook(
            project, name="k", url=receiver.url, events=["artifact.pushed"]
        )
        receiver.secrets = [created["secret"]]
        receiver.set("hang", count=1)
        try:
            workers.append(_worker(settings, tmp_path, 1))
            for n in range(3):
                for repo in repositories:
                    rig.oci.push_image(repo, f"v{n}")
            expected = rig.events({events.MANIFEST_PUSHED}, repositories)
            workers[0].wait_until(
                lambda: len(receiver.snapshot()) >= 1, timeout=BOUND, what="a delivery in flight"
            )
            held = receiver.snapshot()[0]
            workers[0].popen.kill()  # kill -9 of this worker's PID only
            workers[0].popen.wait(timeout=30)
            receiver.set("ok")
            receiver.release()
            workers.append(_worker(settings, tmp_path, 2))
            workers[1].wait_until(
                lambda: (
                    {event_id(w) for w in first_deliveries(receiver)} >= set(expected)
                    and sum(r.webhook_id == held.webhook_id for r in receiver.snapshot()) >= 2
                ),
                timeout=BOUND,
                what="every event delivered after the kill",
            )
        finally:
            for process in workers:
                process.stop()

    received = receiver.snapshot()
    assert held.webhook_id is not None
    assert sum(r.webhook_id == held.webhook_id for r in received) >= 2  # sent again
    assert {event_id(w) for w in first_deliveries(receiver)} == set(expected)
    assert all(r.verified_with == [0] for r in received)
    assert_in_order_per_repository(first_deliveries(receiver), expected)
