"""Webhook targets that would reach private addresses: refused, and never contacted.

The loopback receiver stands for an internal service. Without an allow-list every
spelling of a non-public address is refused when the policy is created; a name that
resolves to loopback is refused at delivery (test ping and worker alike); a redirect
is answered, never followed. The receiver counts every request it gets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import events
from tests.api.oci import unique_project
from tests.integration.webhook_rig import api, until, webhook_settings, worker
from tests.services.temporal import TemporalServer
from tests.services.webhook_receiver import WebhookReceiver, start_receiver

pytestmark = pytest.mark.integration

#: Targets refused at creation (``{port}``: the receiver's).
PRIVATE = [
    "http://127.0.0.1:{port}/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:{port}/hook",
    "http://0.0.0.0:{port}/hook",
    "http://2130706433:{port}/hook",
    "http://017700000001:{port}/hook",
    "http://0x7f.0.0.1:{port}/hook",
    "http://127.1:{port}/hook",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://[::ffff:7f00:1]:{port}/hook",
    "http://10.0.0.8/hook",
]


@pytest.fixture
def receiver() -> Any:
    started = start_receiver()
    yield started
    started.stop()


async def test_private_targets_are_refused_and_the_receiver_counts_no_request(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings("sqlite-fs", tmp_path, temporal_server, request, allow=[])
    project = unique_project()
    base = f"/api/v1/projects/{project}/webhooks"
    with api(settings) as rig:
        rig.project(project)
        refusals = {}
        for template in PRIVATE:
            url = template.format(port=receiver.port)
            body = {"name": "x", "url": url, "events": ["artifact.pushed"]}
            refusals[url] = rig.call("POST", base, json=body)
        # a name is not resolved at creation; it resolves to loopback at delivery
        named = rig.create_webhook(
            project,
            name="named",
            url=f"http://localhost:{receiver.port}/hook",
            events=["artifact.pushed"],
        )
        ping = rig.call("POST", f"{base}/{named['id']}/ping").json()
        async with worker(settings, rig):
            rig.oci.push_image(f"{project}/app", "v1")

            def refused_by_worker() -> bool:
                log = rig.deliveries(project, named["id"])
                return any(
                    (a["error"] or "").startswith("refused") for d in log for a in d["history"]
                )

            await until(refused_by_worker, what="the worker refusing the target")
        listed = rig.call("GET", base).json()["items"]

    for url, response in refusals.items():
        assert response.status_code == 422, (url, response.text)
        assert response.json()["errors"][0]["field"] == "url", url
    assert [p["name"] for p in listed] == ["named"]
    assert ping["delivered"] is False
    assert ping["error"].startswith("refused")
    assert receiver.snapshot() == []


async def test_a_redirect_to_a_private_address_is_not_followed(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    # the redirecting target itself is allow-listed; where it points is never contacted
    settings = webhook_settings(
        "sqlite-fs", tmp_path, temporal_server, request, allow=["127.0.0.1/32"]
    )
    project = unique_project()
    receiver.set("redirect", location=f"http://127.0.0.1:{receiver.port}/followed")
    with api(settings) as rig:
        rig.project(project)
        created = rig.create_webhook(
            project, name="r", url=receiver.url, events=["artifact.pushed"]
        )
        receiver.secrets = [created["secret"]]
        ping = rig.call("POST", f"/api/v1/projects/{project}/webhooks/{created['id']}/ping")
        async with worker(settings, rig):
            rig.oci.push_image(f"{project}/app", "v1")
            expected = rig.events({events.MANIFEST_PUSHED}, [f"{project}/app"])

            def redirected_twice() -> bool:
                log = rig.deliveries(project, created["id"])
                return any(d["attempts"] >= 2 for d in log)

            await until(redirected_twice, what="two redirected attempts")
            log = rig.deliveries(project, created["id"])

    assert ping.json()["status_code"] == 302
    assert ping.json()["delivered"] is False
    (delivery,) = log
    assert delivery["event_id"] in expected
    assert delivery["status"] == "pending"
    assert {a["status_code"] for a in delivery["history"]} == {302}
    paths = [r.path for r in receiver.snapshot()]
    assert "/followed" not in paths
    assert set(paths) == {"/hook"}
