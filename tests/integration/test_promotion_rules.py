"""Promotion rules end to end: a push through ``/v2`` fires a rule, the real worker's event
fan-out starts the promotion on Temporal's dev server, the target is read back via ``/v2``.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from api.app import create_app
from cli.composition import compose
from core import events
from core.event_batches import BATCH_WORKFLOW, EventBatch, EventValue
from core.promotion_rules import DELIVER_EVENTS_PROMOTION, rule_promotion_id
from storage.db.repos.outbox import OUTBOX
from tests.api.oci import OCIClient, digest_of, unique_project
from tests.clients.commands import make_client_home, run
from tests.integration.test_promotions import (
    BOUND,
    Rig,
    _client,
    _manifest,
    _project,
    _robot,
    _run,
)
from tests.integration.trust_rig import (
    api,
    http_client,
    push_signature,
    results,
    start_api,
    trust_settings,
)
from tests.services.control_backends import control_settings, worker_env
from tests.services.moorage import REPO_ROOT
from tests.services.process import spawn
from tests.services.temporal import TemporalServer
from tests.services.tools import find_tool
from tests.unit.core.trust_fixtures import new_key, public_pem

pytestmark = pytest.mark.integration
DONE = {"promoted", "refused", "failed"}
CI_KEY = new_key()


@pytest.fixture
def rules_rig(
    request: pytest.FixtureRequest, tmp_path: Path, temporal_server: TemporalServer
) -> Iterator[Rig]:
    settings = control_settings(
        "sqlite-fs",
        tmp_path,
        temporal_server,
        request,
        {"gc_every_seconds": 0, "event_batch_seconds": 0.2},
        label="rules",
    )
    assert settings.auth.admin_password is not None
    with TestClient(create_app(settings)) as http:
        rig = Rig(
            settings, tmp_path, OCIClient(http, settings.auth.admin_password.get_secret_value())
        )
        try:
            yield rig
        finally:
            for worker in rig.workers:
                worker.stop()


def _as(rig: Rig, robot: tuple[str, str]) -> OCIClient:
    return OCIClient(rig.oci.client, robot[1], robot[0])


def _rule(rig: Rig, source: str, **body: Any) -> dict[str, Any]:
    created = rig.admin("POST", f"/api/v1/projects/{source}/promotion-rules", json=body)
    assert created.status_code == 201, created.text
    rule: dict[str, Any] = created.json()
    return rule


def _promotion(rule: dict[str, Any], digest: str, target: str, tag: str) -> str:
    return rule_promotion_id(f"{rule['project']}/{rule['name']}#{rule['id']}", digest, target, tag)


def _ended(call: Callable[[str], httpx.Response], promotion: str) -> dict[str, Any]:
    """The promotion once it ended (``404`` while the rule has not started it yet)."""
    deadline = time.monotonic() + BOUND
    while True:
        shown = call(f"/api/v1/promotions/{promotion}")
        assert shown.status_code in {200, 404}, shown.text
        body: dict[str, Any] = shown.json()
        if shown.status_code == 200 and body["status"] in DONE:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def _wait(rig: Rig, promotion: str) -> dict[str, Any]:
    return _ended(lambda path: rig.admin("GET", path), promotion)


def _audit(rig: Rig, action: str, project: str) -> list[dict[str, Any]]:
    audit = rig.admin("GET", "/api/v1/audit", params={"action": action, "project": project})
    assert audit.status_code == 200, audit.text
    found: list[dict[str, Any]] = audit.json()["items"]
    return found


def _fired(rig: Rig, project: str) -> list[dict[str, Any]]:
    return _audit(rig, "promotion_rule.fired", project)


def _outcome_audit(rig: Rig, project: str) -> list[dict[str, Any]]:
    """The ``promotion.promoted`` audit events of ``project``, once there is one (bounded).

    The promotion reads ``promoted`` as soon as its workflow decided it; the activity that
    records the outcome's audit event runs right after, so the event can trail the status.
    """
    deadline = time.monotonic() + BOUND
    while not (found := _audit(rig, "promotion.promoted", project)):
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return found


def _tags(rig: Rig, repo: str) -> list[str]:
    listed = rig.oci.request("GET", f"/v2/{repo}/tags/list", repo)
    if listed.status_code == 404:
        return []
    assert listed.status_code == 200, listed.text
    return sorted(listed.json()["tags"])


def _tag_event(rig: Rig, repo: str, tag: str) -> EventValue:
    root = compose(rig.settings)
    query = select(OUTBOX).where(
        OUTBOX.c.kind == events.TAG_CREATED, OUTBOX.c.repository == repo, OUTBOX.c.tag == tag
    )
    try:
        with root.engines.read.connect() as connection:
            (row,) = connection.execute(query).all()
    finally:
        root.close()
    return EventValue(
        row.id, row.kind, row.project_id, row.repository, row.digest, row.tag, row.data, ""
    )


def test_a_robot_s_matching_push_is_promoted_and_nothing_else_is(rules_rig: Rig) -> None:
    rig = rules_rig
    rig.spawn_worker()
    source_project, target_project = _project(rig), _project(rig)
    source, target = f"{source_project}/app", f"{target_project}/app"
    ci = _robot(rig, source_project, ["pull", "push"])
    other = _robot(rig, source_project, ["pull", "push"])
    rule = _rule(
        rig,
        source_project,
        name="to-prod",
        tags="v*",
        pusher=ci[0],
        pusher_kind="robot",
        target_project=target_project,
    )
    assert rule["created_by"] == "admin"

    # Pushes the rule does not select: another robot, the admin, a tag not matching.
    _as(rig, other).push_image(source, "v9")
    rig.oci.push_image(source, "v8")
    _as(rig, ci).push_image(source, "latest")
    # The one it selects, pushed last: its promotion ends after the others were handled
    # (a subscriber's batches run one after the other, in outbox order).
    image = _as(rig, ci).push_image(source, "v1")

    promotion = _promotion(rule, image.digest, target, "v1")
    done = _wait(rig, promotion)
    assert done["status"] == "promoted", done
    assert done["source"] == f"{source}@{image.digest}"
    copied = _manifest(rig.oci, target, "v1")
    assert copied.status_code == 200
    assert digest_of(copied.content) == image.digest  # the identical digest
    assert _tags(rig, target) == ["v1"]
    fired = _fired(rig, source_project)
    assert [(e["actor"], e["request_id"], e["result"]) for e in fired] == [
        (ci[0], promotion, f"rule:{source_project}/to-prod")
    ]
    outcome = _outcome_audit(rig, target_project)
    assert [(e["actor"], e["request_id"]) for e in outcome] == [
        (f"rule:{source_project}/to-prod", promotion)
    ]

    # The same tag event delivered again (an at-least-once redelivery, twice) starts
    # nothing: the promotion's id is fixed by the rule, the digest and the target.
    event = _tag_event(rig, source, "v1")
    assert event.digest == image.digest

    async def redeliver() -> list[int]:
        client = await _client(rig.settings)
        handled = []
        for attempt in range(2):
            batch = EventBatch("promotion", DELIVER_EVENTS_PROMOTION, -1 - attempt, [event])
            handled.append(
                await client.execute_workflow(
                    BATCH_WORKFLOW,
                    batch,
                    id=f"redeliver-{uuid.uuid4().hex}",
                    task_queue=rig.settings.temporal.task_queue,
                    result_type=int,
                    execution_timeout=timedelta(seconds=BOUND),
                )
            )
        query = f'WorkflowId = "{promotion}"'
        runs = [e.run_id async for e in client.list_workflows(query)]
        handled.append(len(runs))
        return handled

    assert _run(redeliver) == [1, 1, 1]
    assert len(_fired(rig, source_project)) == 1
    assert _tags(rig, target) == ["v1"]


def _signing_projects(rig: Rig) -> tuple[str, str, tuple[str, str]]:
    """A worker, a source project whose trust policy takes ``CI_KEY``'s signatures (not
    enforced), a target project, and a pushing robot of the source."""
    rig.spawn_worker()
    source_project, target_project = _project(rig), _project(rig)
    policy = {
        "enforce": False,
        "keys": [{"name": "ci", "public_key": public_pem(CI_KEY)}],
        "signatures": {"required_signers": 1},
    }
    saved = rig.admin("PUT", f"/api/v1/projects/{source_project}/trust/policy", json=policy)
    assert saved.status_code == 200, saved.text
    return source_project, target_project, _robot(rig, source_project, ["pull", "push"])


def test_a_failing_gate_refuses_with_its_reason_and_a_signed_image_passes(rules_rig: Rig) -> None:
    rig = rules_rig
    source_project, target_project, ci = _signing_projects(rig)
    source, target = f"{source_project}/app", f"{target_project}/released"
    rule = _rule(
        rig,
        source_project,
        name="signed-only",
        tags="release-*",
        pusher="robot$*",
        target_project=target_project,
        target_repository="released",
        gates={"signed": True},
    )

    unsigned = _as(rig, ci).push_image(source, "release-1")
    refused = _wait(rig, _promotion(rule, unsigned.digest, target, "release-1"))
    assert refused["status"] == "refused", refused
    [gate] = refused["gates"]
    assert (gate["gate"], gate["passed"]) == ("signed", False)
    assert refused["reason"] == f"signed: {gate['reason']}"
    assert gate["reason"]  # says which requirement failed
    assert _manifest(rig.oci, target, "release-1").status_code == 404

    # Sign first, tag after: push by digest, sign, wait for the verification, then tag.
    client = _as(rig, ci)
    manifest = client.image(source)
    payload = json.dumps(manifest).encode()
    digest = digest_of(payload)
    assert client.put_manifest(source, digest, payload).status_code == 201
    push_signature(rig.oci, source, digest, CI_KEY)
    deadline = time.monotonic() + BOUND
    while not any(r.get("verified") for r in results(rig.oci, source, digest)):
        assert time.monotonic() < deadline, results(rig.oci, source, digest)
        time.sleep(0.2)
    assert client.put_manifest(source, "release-2", payload).status_code == 201
    promoted = _wait(rig, _promotion(rule, digest, target, "release-2"))
    assert promoted["status"] == "promoted", promoted
    assert digest_of(_manifest(rig.oci, target, "release-2").content) == digest


def test_a_rule_that_waits_promotes_once_the_pipeline_has_signed_after_the_push(
    rules_rig: Rig,
) -> None:
    """Push, then sign (what a CI pipeline does): the rule's promotion waits for its
    ``signed`` gate (``wait_seconds``) and promotes the image once the signature verified."""
    rig = rules_rig
    source_project, target_project, ci = _signing_projects(rig)
    source, target = f"{source_project}/app", f"{target_project}/app"
    rule = _rule(
        rig,
        source_project,
        name="signed-after-push",
        tags="v*",
        target_project=target_project,
        gates={"signed": True, "wait_seconds": 300},
    )
    assert rule["gates"]["wait_seconds"] == 300

    pushed = _as(rig, ci).push_image(source, "v1")
    promotion = _promotion(rule, pushed.digest, target, "v1")
    deadline = time.monotonic() + BOUND
    while True:
        state = rig.admin("GET", f"/api/v1/promotions/{promotion}")
        if state.status_code == 200 and state.json()["status"] == "waiting_gates":
            break
        assert time.monotonic() < deadline, state.text
        time.sleep(0.2)
    assert [g["gate"] for g in state.json()["gates"]] == ["signed"]
    assert _manifest(rig.oci, target, "v1").status_code == 404

    push_signature(rig.oci, source, pushed.digest, CI_KEY)
    promoted = _wait(rig, promotion)
    assert promoted["status"] == "promoted", promoted
    assert promoted["gates"][0]["passed"] is True
    assert digest_of(_manifest(rig.oci, target, "v1").content) == pushed.digest


def test_rules_are_managed_by_project_admins_and_bad_fields_are_named(rules_rig: Rig) -> None:
    rig = rules_rig
    source_project, target_project = _project(rig), _project(rig)
    base = f"/api/v1/projects/{source_project}/promotion-rules"
    for body, field in [
        ({"name": "Bad", "target_project": target_project}, "name"),
        ({"name": "r", "target_project": target_project, "pusher_kind": "scanner"}, "pusher_kind"),
        (
            {"name": "r", "target_project": target_project, "gates": {"max_severity": "x"}},
            "gates.max_severity",
        ),
        ({"name": "r", "target_project": "missing-project"}, "target_project"),
        (
            {"name": "r", "target_project": target_project, "gates": {"wait_seconds": -1}},
            "gates.wait_seconds",
        ),
    ]:
        refused = rig.admin("POST", base, json=body)
        assert refused.status_code in {404, 422}, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == [field], refused.text
    made = [
        _rule(rig, source_project, name=f"r{i}", target_project=target_project) for i in range(3)
    ]
    first = rig.admin("GET", base, params={"limit": 2})
    assert first.status_code == 200, first.text
    assert [r["name"] for r in first.json()["items"]] == ["r0", "r1"]
    nxt = first.json().get("next")
    assert nxt, first.json()
    rest = rig.admin("GET", base, params={"limit": 2, "last": nxt})
    assert [r["name"] for r in rest.json()["items"]] == ["r2"]
    changed = rig.admin(
        "PUT",
        f"{base}/{made[0]['id']}",
        json={"name": "r0", "target_project": target_project, "enabled": False},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["enabled"] is False
    assert (
        rig.admin("POST", base, json={"name": "r1", "target_project": target_project}).status_code
        == 409
    )

    # A robot of the source project (no project role) writes none.
    dev = _robot(rig, source_project, ["pull", "push"])
    assert (
        rig.oci.client.post(base, json={"name": "x", "target_project": target_project}, auth=dev)
    ).status_code in {403, 404}
    assert rig.admin("DELETE", f"{base}/{made[2]['id']}").status_code == 204
    assert rig.admin("GET", f"{base}/{made[2]['id']}").status_code == 404
    # Each change is audited (written by the audit writer shortly after the response).
    deadline = time.monotonic() + BOUND
    while True:
        audit = rig.admin(
            "GET",
            "/api/v1/audit",
            params={"project": source_project, "action": "create_promotion_rule"},
        )
        assert audit.status_code == 200, audit.text
        created = [e for e in audit.json()["items"] if e["status"] == 201]
        if len(created) == 3:
            break
        assert time.monotonic() < deadline, audit.json()
        time.sleep(0.2)
    assert {e["actor"] for e in created} == {"admin"}


def test_a_robot_pushing_with_crane_fires_the_rule(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    settings = trust_settings(tmp_path, temporal_server, request)
    registry = start_api(settings, tmp_path)
    worker = spawn(
        "moorage worker",
        [sys.executable, "-m", "cli.main", "worker"],
        log_path=tmp_path / "worker.log",
        env=worker_env(settings, {}),
        cwd=REPO_ROOT,
    )
    try:
        oci = http_client(registry)
        source_project, target_project = unique_project(), unique_project()
        for name in (source_project, target_project):
            assert api(oci, "POST", "/api/v1/projects", json={"name": name}).status_code == 201
        made = api(
            oci,
            "POST",
            f"/api/v1/projects/{source_project}/robots",
            json={"name": "ci", "permissions": [{"repository": "*", "actions": ["pull", "push"]}]},
        )
        assert made.status_code == 201, made.text
        robot, secret = made.json()["name"], made.json()["secret"]
        created = api(
            oci,
            "POST",
            f"/api/v1/projects/{source_project}/promotion-rules",
            json={"name": "ci", "tags": "v*", "pusher": robot, "target_project": target_project},
        )
        assert created.status_code == 201, created.text
        seed = oci.push_image(f"{source_project}/seed", "base")

        crane, home = find_tool("crane"), make_client_home(tmp_path / "home")
        env, host = home.env(), registry.host_port
        run([crane, "auth", "login", host, "-u", robot, "--password-stdin"], env=env, stdin=secret)
        run(
            [crane, "--insecure", "copy", f"{host}/{source_project}/seed:base",
             f"{host}/{source_project}/app:v1"],
            env=env,
        )  # fmt: skip

        target = f"{target_project}/app"
        promotion = _promotion(created.json(), seed.digest, target, "v1")
        done = _ended(lambda path: api(oci, "GET", path), promotion)
        assert done["status"] == "promoted", done
        pushed = run([crane, "--insecure", "digest", f"{host}/{source_project}/app:v1"], env=env)
        assert pushed.stdout.strip() == seed.digest
        copied = oci.request("GET", f"/v2/{target}/manifests/v1", target)
        assert copied.status_code == 200, copied.text
        assert digest_of(copied.content) == seed.digest  # identical digest in the target
    finally:
        worker.stop()
        registry.process.stop()
