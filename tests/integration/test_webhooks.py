"""Webhooks end to end: the API, the outbox fan-out, Temporal and a real receiver.

The receiver (``tests.services.webhook_receiver``) verifies every signature with the
``standardwebhooks`` package and parses CloudEvents with the ``cloudevents`` SDK; it is
told to fail, throttle, answer 410, drop the connection or go away. Each test's worker
and outbox dispatcher run in process against the session's Temporal dev server.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from cli.composition import compose
from cli.outbox_task import installation_subscribers
from core import events
from core.event_batches import BATCH_WORKFLOW
from core.webhook_events import TARGET_WORKFLOW
from storage.db.repos.outbox import BATCH, OUTBOX, QUEUE
from storage.db.webhooks import ATTEMPT
from tests.api.oci import unique_project
from tests.conftest import BACKENDS
from tests.integration.webhook_rig import (
    Api,
    api,
    assert_in_order_per_repository,
    event_id,
    first_deliveries,
    logged,
    until,
    webhook_settings,
    worker,
)
from tests.services.temporal import TemporalServer
from tests.services.webhook_receiver import WebhookReceiver, start_receiver

pytestmark = pytest.mark.integration

LOOPBACK = ["127.0.0.1/32"]
PUSHED = {events.MANIFEST_PUSHED, events.TAG_CREATED}


@pytest.fixture
def receiver() -> Any:
    started = start_receiver()
    yield started
    started.stop()


def _push(rig: Api, repositories: list[str], per_repository: int) -> None:
    for n in range(per_repository):
        for repo in repositories:
            rig.oci.push_image(repo, f"v{n}", annotations={"n": str(n)})


def _all_arrived(receiver: WebhookReceiver, expected: dict[int, str]) -> bool:
    return {event_id(w) for w in first_deliveries(receiver)} >= set(expected)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_pushes_reach_a_signed_cloudevents_receiver_in_order_per_repository(
    backend: str,
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings(backend, tmp_path, temporal_server, request, allow=LOOPBACK)
    project = unique_project()
    repositories = [f"{project}/app{n}" for n in range(2)]
    with api(settings) as rig:
        rig.project(project)
        created = rig.create_webhook(
            project,
            name="ci",
            url=receiver.url,
            events=["artifact.pushed", "tag.pushed"],
            payload_format="cloudevents",
            auth_header="X-Ci-Token: tok-sekret-42",
        )
        receiver.secrets = [created["secret"]]
        async with worker(settings, rig):
            _push(rig, repositories, 3)
            expected = rig.events(PUSHED, repositories)
            await until(lambda: _all_arrived(receiver, expected), what="every push delivered")
            log = await logged(rig, project, created["id"], len(expected))
            listing = rig.call("GET", f"/api/v1/projects/{project}/webhooks").text

    assert len(expected) == 2 * 3 * 2  # a manifest push and a tag per image
    order = first_deliveries(receiver)
    assert_in_order_per_repository(order, expected)
    for record in receiver.delivered():
        assert record.cloudevent is not None
        assert record.cloudevent["id"] == record.webhook_id == record.headers["idempotency-key"]
        assert record.cloudevent["type"] in {
            "io.moorage.artifact.pushed",
            "io.moorage.tag.pushed",
        }
        assert record.cloudevent["source"] == f"/projects/{project}/webhooks/{created['id']}"
        assert record.cloudevent["data"]["repository"] == expected[event_id(record.webhook_id)]
        assert record.headers["x-ci-token"] == "tok-sekret-42"
    # the delivery log: one delivered delivery per event, its attempt with status and latency
    assert {d["event_id"] for d in log} == set(expected)
    assert {d["status"] for d in log} == {"delivered"}
    assert all(d["history"][-1]["status_code"] == 204 for d in log)
    assert all(d["history"][-1]["latency_ms"] >= 0 for d in log)
    # neither the secret nor the auth header is answered again
    assert created["secret"] not in listing
    assert "tok-sekret-42" not in listing
    assert '"has_auth_header":true' in listing


async def test_a_receiver_down_for_a_while_gets_every_event_in_order_once_back(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings("sqlite-fs", tmp_path, temporal_server, request, allow=LOOPBACK)
    project = unique_project()
    repositories = [f"{project}/a", f"{project}/b"]
    with api(settings) as rig:
        rig.project(project)
        created = rig.create_webhook(
            project, name="down", url=receiver.url, events=["artifact.pushed"]
        )
        receiver.secrets = [created["secret"]]
        receiver.stop()
        async with worker(settings, rig):
            _push(rig, repositories, 3)
            expected = rig.events({events.MANIFEST_PUSHED}, repositories)

            def retried() -> bool:
                log = rig.deliveries(project, created["id"])
                return any(d["attempts"] >= 2 and d["status"] == "pending" for d in log)

            await until(retried, what="failed attempts while the receiver is down")
            receiver.start()
            await until(lambda: _all_arrived(receiver, expected), what="every event delivered")
            log = await logged(rig, project, created["id"], len(expected))

    assert len(expected) == 6
    assert_in_order_per_repository(first_deliveries(receiver), expected)
    failed = [a for d in log for a in d["history"] if a["status_code"] is None]
    assert failed
    assert all(a["error"] for a in failed)
    assert {d["status"] for d in log} == {"delivered"}


async def test_429_waits_retry_after_410_disables_and_resume_delivers(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings("sqlite-fs", tmp_path, temporal_server, request, allow=LOOPBACK)
    project = unique_project()
    repo = f"{project}/app"
    with api(settings) as rig:
        rig.project(project)
        created = rig.create_webhook(
            project, name="h", url=receiver.url, events=["artifact.pushed"], payload_format="harbor"
        )
        hook = created["id"]
        receiver.secrets = [created["secret"]]
        async with worker(settings, rig):
            receiver.set("throttle", count=1, retry_after="2")
            rig.oci.push_image(repo, "one")
            first = rig.events({events.MANIFEST_PUSHED}, [repo])
            await until(lambda: _all_arrived(receiver, first), what="the throttled event")
            (throttled,) = await logged(rig, project, hook, 1)

            receiver.set("close", count=1)
            rig.oci.push_image(repo, "two")
            both = rig.events({events.MANIFEST_PUSHED}, [repo])
            await until(lambda: _all_arrived(receiver, both), what="the event after a reset")
            reset = (await logged(rig, project, hook, 2))[0]

            receiver.set("gone")
            rig.oci.push_image(repo, "three")

            def disabled() -> bool:
                found = rig.call("GET", f"/api/v1/projects/{project}/webhooks/{hook}").json()
                return not found["enabled"]

            await until(disabled, what="the target disabled by 410")
            policy = rig.call("GET", f"/api/v1/projects/{project}/webhooks/{hook}").json()
            receiver.set("ok")
            resumed = rig.call("POST", f"/api/v1/projects/{project}/webhooks/{hook}/resume")
            third = rig.events({events.MANIFEST_PUSHED}, [repo])
            await until(lambda: _all_arrived(receiver, third), what="delivery after resume")

    assert resumed.status_code == 200, resumed.text
    codes = [a["status_code"] for a in throttled["history"]]
    assert codes == [429, 204]
    waited = datetime.fromisoformat(throttled["history"][1]["attempted_at"]) - (
        datetime.fromisoformat(throttled["history"][0]["attempted_at"])
    )
    assert waited.total_seconds() >= 2  # Retry-After honoured, not the 0.2 s backoff
    assert reset["history"][0]["status_code"] is None
    assert reset["history"][0]["error"]
    assert reset["status"] == "delivered"
    assert policy["paused_reason"].startswith("disabled: the target answered 410")
    harbor = receiver.delivered()[0].json()
    assert harbor["type"] == "PUSH_ARTIFACT"
    assert harbor["event_data"]["repository"]["repo_full_name"] == repo


async def test_a_target_failing_too_long_is_paused_with_its_reason(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings(
        "sqlite-fs",
        tmp_path,
        temporal_server,
        request,
        allow=LOOPBACK,
        webhooks={"pause_after_seconds": 1, "retry_max_interval_seconds": 0.5},
    )
    project = unique_project()
    repo = f"{project}/app"
    with api(settings) as rig:
        rig.project(project)
        created = rig.create_webhook(
            project, name="p", url=receiver.url, events=["artifact.pushed"]
        )
        hook = created["id"]
        receiver.secrets = [created["secret"]]
        receiver.set("fail")
        async with worker(settings, rig):
            rig.oci.push_image(repo, "one")

            def paused() -> bool:
                found = rig.call("GET", f"/api/v1/projects/{project}/webhooks/{hook}").json()
                return bool(found["paused"])

            await until(paused, what="the failing target paused")
            policy = rig.call("GET", f"/api/v1/projects/{project}/webhooks/{hook}").json()
            attempts_when_paused = len(receiver.snapshot())
            receiver.set("ok")
            rig.call("POST", f"/api/v1/projects/{project}/webhooks/{hook}/resume")
            expected = rig.events({events.MANIFEST_PUSHED}, [repo])
            await until(lambda: _all_arrived(receiver, expected), what="delivery after resume")

    assert policy["enabled"] is True
    assert policy["paused_reason"].startswith("paused: failing since")
    assert "HTTP 500" in policy["paused_reason"]
    assert attempts_when_paused >= 2


async def test_redelivery_of_one_event_and_a_rotated_secret_signing_both(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings("sqlite-fs", tmp_path, temporal_server, request, allow=LOOPBACK)
    project = unique_project()
    repo = f"{project}/app"
    with api(settings) as rig:
        rig.project(project)
        created = rig.create_webhook(
            project,
            name="r",
            url=receiver.url,
            events=["artifact.pushed"],
            payload_format="cloudevents-binary",
        )
        hook = created["id"]
        base = f"/api/v1/projects/{project}/webhooks/{hook}"
        async with worker(settings, rig):
            receiver.secrets = [created["secret"]]
            rig.oci.push_image(repo, "one")
            expected = rig.events({events.MANIFEST_PUSHED}, [repo])
            await until(lambda: _all_arrived(receiver, expected), what="the first delivery")
            rotated = rig.call("POST", f"{base}/secret").json()
            receiver.secrets = [rotated["secret"], created["secret"]]
            (only,) = expected
            queued = rig.call("POST", f"{base}/redeliver", json={"event_id": only})
            await until(lambda: len(receiver.delivered()) >= 2, what="the redelivered event")
            log = await logged(rig, project, hook, 2)

    assert queued.status_code == 202, queued.text
    assert queued.json() == {"queued": 1}
    first, again = receiver.delivered()[:2]
    assert first.webhook_id == again.webhook_id == f"evt_{only}"  # same idempotency key
    assert first.verified_with == [0]  # the original secret (the receiver's only one then)
    assert sorted(again.verified_with) == [0, 1]  # the new and the old during the overlap
    assert len(again.headers["webhook-signature"].split(" ")) == 2
    assert again.cloudevent is not None
    assert again.headers["ce-id"] == again.webhook_id
    assert sorted(d["generation"] for d in log) == [0, 1]


async def test_a_burst_is_delivered_in_order_by_few_workflows(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    burst, batch = 10_000, 1000
    settings = webhook_settings(
        "sqlite-fs",
        tmp_path,
        temporal_server,
        request,
        allow=LOOPBACK,
        control={"event_batch_size": batch, "outbox_batch_size": 1000},
        webhooks={"send_round": 1000},
    )
    project = unique_project()
    repositories = [f"{project}/r{n}" for n in range(4)]
    with api(settings) as rig:
        rig.project(project)
        created = rig.create_webhook(
            project, name="burst", url=receiver.url, events=["artifact.pushed"]
        )
        receiver.secrets = [created["secret"]]
        with rig.registry.metadata.write() as session:
            project_id = session.projects.get(project).id  # type: ignore[union-attr]
            now = datetime.now().astimezone()
            rows = [
                {
                    "kind": events.MANIFEST_PUSHED,
                    "project_id": project_id,
                    "repository": repositories[n % 4],
                    "digest": f"sha256:{n:064x}",
                    "created_at": now,
                }
                for n in range(burst)
            ]
            session._c.execute(insert(OUTBOX), rows)
            session.commit()
        expected = rig.events({events.MANIFEST_PUSHED}, repositories)
        async with worker(settings, rig) as client:
            await until(lambda: _all_arrived(receiver, expected), what="the whole burst")
            queue = settings.temporal.task_queue
            runs = [
                run.workflow_type async for run in client.list_workflows(f'TaskQueue = "{queue}"')
            ]

    assert len(expected) == burst
    assert_in_order_per_repository(first_deliveries(receiver), expected)
    batches = math.ceil(burst / batch)
    # each subscriber of pushes (log, webhook, and the features' own) runs one batch per
    # full batch, and the target's run starts at most once per batch: never a run per event
    subscribers = len(installation_subscribers().wanting(events.MANIFEST_PUSHED))
    assert runs.count(BATCH_WORKFLOW) <= subscribers * batches
    assert 1 <= runs.count(TARGET_WORKFLOW) <= batches
    others = len(runs) - runs.count(BATCH_WORKFLOW) - runs.count(TARGET_WORKFLOW)
    # what the features' batches start for pushes of digests that hold nothing
    assert others <= subscribers * batches


async def test_pulls_become_events_only_while_a_webhook_wants_them(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings(
        "sqlite-fs",
        tmp_path,
        temporal_server,
        request,
        allow=LOOPBACK,
        webhooks={"pull_subscriber_cache_seconds": 0},
    )
    project = unique_project()
    repo = f"{project}/app"
    with api(settings) as rig:
        rig.project(project)
        pushed = rig.oci.push_image(repo, "v1")

        def pull() -> None:
            response = rig.oci.request("GET", f"/v2/{repo}/manifests/v1", repo)
            assert response.status_code == 200, response.text

        pull()
        pull()
        unwanted = rig.events({events.MANIFEST_PULLED}, [repo])
        created = rig.create_webhook(
            project,
            name="kraken",
            url=receiver.url,
            events=["artifact.pulled"],
            payload_format="distribution",
        )
        receiver.secrets = [created["secret"]]
        # The first pull refreshes the cached answer (in the background: nobody wanted
        # pulls before); pulls from then on are events.
        for _ in range(50):
            pull()
            if rig.events({events.MANIFEST_PULLED}, [repo]):
                break
            time.sleep(0.1)
        async with worker(settings, rig):
            wanted = rig.events({events.MANIFEST_PULLED}, [repo])
            await until(lambda: _all_arrived(receiver, wanted), what="the pull event")

    assert unwanted == {}
    assert len(wanted) >= 1
    (envelope,) = receiver.delivered()[-1].json()["events"]
    assert envelope["action"] == "pull"
    assert envelope["target"]["repository"] == repo
    assert envelope["target"]["digest"] == pushed.digest
    assert envelope["target"]["tag"] == "v1"
    assert envelope["actor"] == {"name": "admin"}


async def test_retention_and_gc_runs_finishing_reach_project_and_system_webhooks(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings("sqlite-fs", tmp_path, temporal_server, request, allow=LOOPBACK)
    project = unique_project()
    with api(settings) as rig:
        rig.project(project)
        refused = rig.call(
            "POST",
            f"/api/v1/projects/{project}/webhooks",
            json={"name": "gc", "url": receiver.url, "events": ["gc.finished"]},
        )
        mine = rig.create_webhook(
            project, name="ret", url=receiver.url, events=["retention.finished"]
        )
        system = rig.create_webhook(
            None, name=f"sys-{project}", url=receiver.url, events=["gc.finished"]
        )
        receiver.secrets = [mine["secret"], system["secret"]]
        async with worker(settings, rig):
            retention = rig.call(
                "POST", f"/api/v1/projects/{project}/retention/runs", json={"dry_run": True}
            )
            gc = rig.call("POST", "/api/v1/system/gc", json={"dry_run": True})
            run_ids = {retention.json()["id"], gc.json()["id"]}

            def both_arrived() -> bool:
                found = set()
                for record in receiver.delivered():
                    assert record.cloudevent is not None
                    found.add(record.cloudevent["data"].get("details", {}).get("run_id"))
                return run_ids <= found

            await until(both_arrived, what="both finished events")
        rig.call("DELETE", f"/api/v1/webhooks/{system['id']}")

    assert refused.status_code == 422, refused.text
    by_type = {r.cloudevent["type"]: r for r in receiver.delivered() if r.cloudevent}
    finished = by_type["io.moorage.retention.finished"]
    assert finished.verified_with == [0]  # the project's webhook
    assert finished.cloudevent is not None
    assert finished.cloudevent["data"]["details"]["project"] == project
    collected = by_type["io.moorage.gc.finished"]
    assert collected.verified_with == [1]  # the system-wide webhook
    assert collected.cloudevent is not None
    assert collected.cloudevent["source"] == f"/system/webhooks/{system['id']}"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_pushes_refused_by_the_quota_reach_the_webhook_once_an_hour_per_quota(
    backend: str,
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings(backend, tmp_path, temporal_server, request, allow=LOOPBACK)
    project = unique_project()
    repo = f"{project}/app"
    with api(settings) as rig:
        rig.project(project)
        hook = rig.create_webhook(
            project, name="quota", url=receiver.url, events=["quota.exceeded"]
        )
        receiver.secrets = [hook["secret"]]
        rig.oci.push_image(repo, "v1")
        quota = rig.call("PUT", f"/api/v1/projects/{project}/quota", json={"artifacts": 1})
        assert quota.status_code == 200, quota.text
        first_hour = datetime.now(UTC).strftime("%Y-%m-%dT%H")
        # Two refused manifest pushes (a CI job retrying), then a refused blob upload.
        for tag in ("v2", "v2"):
            refused = rig.oci.put_manifest(repo, tag, rig.oci.image(repo))
            assert refused.status_code == 403, refused.text
        quota = rig.call("PUT", f"/api/v1/projects/{project}/quota", json={"bytes": 1})
        assert quota.status_code == 200, quota.text
        data = b"over the storage quota"
        url = f"/v2/{repo}/blobs/uploads/?digest=sha256:{hashlib.sha256(data).hexdigest()}"
        refused = rig.oci.request("POST", url, repo, content=data)
        assert refused.status_code == 403, refused.text
        last_hour = datetime.now(UTC).strftime("%Y-%m-%dT%H")
        written = rig.events({events.QUOTA_EXCEEDED}, [repo])
        async with worker(settings, rig):
            await until(lambda: _all_arrived(receiver, written), what="the quota events")

    # The same hour: one event per quota, however often the push was retried.
    assert len(written) == (2 if first_hour == last_hour else 3)
    delivered = [r.cloudevent for r in receiver.delivered() if r.cloudevent is not None]
    assert {e["type"] for e in delivered} == {"io.moorage.quota.exceeded"}
    details = {e["data"]["details"]["quota"]: e["data"]["details"] for e in delivered}
    assert details["artifact"]["limit"] == 1
    assert details["artifact"]["used"] == 1
    assert details["storage"]["limit"] == 1
    assert all(e["data"]["repository"] == repo for e in delivered)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_finished_deliveries_leave_the_log_after_its_keep_time_pending_ones_stay(
    backend: str,
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    keep = 2
    settings = webhook_settings(
        backend,
        tmp_path,
        temporal_server,
        request,
        allow=LOOPBACK,
        webhooks={"log_keep_seconds": keep, "retry_initial_seconds": 30},
    )
    project = unique_project()
    repo = f"{project}/app"
    with api(settings) as rig:
        rig.project(project)
        created = rig.create_webhook(
            project, name="log", url=receiver.url, events=["artifact.pushed"]
        )
        hook = created["id"]
        receiver.secrets = [created["secret"]]
        async with worker(settings, rig):
            rig.oci.push_image(repo, "one")
            (delivered,) = await logged(rig, project, hook, 1)
            receiver.set("fail")
            rig.oci.push_image(repo, "two")

            def failed_once() -> bool:
                return any(
                    d["status"] == "pending" and d["attempts"]
                    for d in rig.deliveries(project, hook)
                )

            await until(failed_once, what="the second delivery's first failed attempt")
        time.sleep(keep + 0.5)
        root = compose(settings)
        try:
            pruned = await root.outbox_dispatcher(installation_subscribers()).prune_once()
        finally:
            root.close()
        left = rig.deliveries(project, hook)
        with rig.registry.metadata.read() as session:
            attempts_left = session._c.execute(
                select(func.count())
                .select_from(ATTEMPT)
                .where(ATTEMPT.c.delivery_id == delivered["id"])
            ).scalar_one()

    assert pruned >= 1
    assert [d["status"] for d in left] == ["pending"]
    assert left[0]["id"] != delivered["id"]
    assert attempts_left == 0


async def test_pushes_reach_only_the_subscribers_with_something_configured_for_them(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings("sqlite-fs", tmp_path, temporal_server, request, allow=LOOPBACK)
    hooked, quiet = unique_project(), unique_project()
    with api(settings) as rig:
        for project in (hooked, quiet):
            rig.project(project)
            policy = {"scan_on_push": project == hooked}
            scan = rig.call("PUT", f"/api/v1/projects/{project}/scan-policy", json=policy)
            assert scan.status_code == 200, scan.text
        created = rig.create_webhook(
            hooked, name="pushes", url=receiver.url, events=["artifact.pushed"]
        )
        receiver.secrets = [created["secret"]]
        repositories = [f"{hooked}/app", f"{quiet}/app"]
        _push(rig, repositories, 1)
        pushed = rig.events(PUSHED, repositories)
        wanted = rig.events({events.MANIFEST_PUSHED}, repositories[:1])

        def all_batched() -> bool:
            with rig.registry.metadata.read() as session:
                queued = session._c.execute(select(func.count()).select_from(QUEUE)).scalar()
                return not session.outbox.pending(10) and not queued

        async with worker(settings, rig):
            await until(lambda: _all_arrived(receiver, wanted), what="the pushed event")
            await until(all_batched, what="every event batched")
        with rig.registry.metadata.read() as session:
            rows = session._c.execute(select(BATCH.c.subscriber, BATCH.c.events)).all()

    received: dict[str, set[str]] = {}
    for subscriber, batch in rows:
        for event in json.loads(batch):
            if event["event_id"] in pushed:
                received.setdefault(subscriber, set()).add(event["repository"])
    # nobody configured replication, promotion rules or preheating: those subscribers get
    # nothing; scanning gets the project that scans on push, webhooks the hooked project;
    # the log and signature verification get every push
    assert received == {
        "log": set(repositories),
        "trust": set(repositories),
        "webhook": {repositories[0]},
        "scan": {repositories[0]},
    }
