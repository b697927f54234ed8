"""The events of scans, signature checks, replications and promotions reach webhooks.

Each feature writes its outbox event (``core.events``); the webhook subscriber turns it
into a delivery to a subscribed policy. The worker and the dispatcher run in process
(``tests.integration.webhook_rig``), except for replication, whose worker reaches the
installation's own ``/v2`` over HTTP (``tests.replication.rig``: API and worker
processes); the receiver verifies every signature.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.api.oci import digest_of, unique_project
from tests.integration.scan_rig import debian_layer
from tests.integration.trust_rig import push_signature
from tests.integration.webhook_rig import api, until, webhook_settings, worker
from tests.replication.rig import manifest_digest, push_image, start_site, wait_for
from tests.services.temporal import TemporalServer
from tests.services.webhook_receiver import WebhookReceiver, start_receiver
from tests.unit.core.trust_fixtures import new_key, public_pem

pytestmark = pytest.mark.integration

LOOPBACK = ["127.0.0.1/32"]
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture
def receiver() -> Any:
    started = start_receiver()
    yield started
    started.stop()


def _data(receiver: WebhookReceiver, kind: str) -> list[dict[str, Any]]:
    """CloudEvents data of the verified deliveries of ``kind``, in arrival order."""
    return [
        record.cloudevent["data"]
        for record in receiver.delivered()
        if record.cloudevent is not None and record.cloudevent["type"] == f"io.moorage.{kind}"
    ]


def _by_digest(receiver: WebhookReceiver, kind: str) -> dict[str, dict[str, Any]]:
    """CloudEvents data of the verified deliveries of ``kind``, by digest (the latest)."""
    return {data["digest"]: data for data in _data(receiver, kind)}


async def test_a_scan_completing_and_one_failing_reach_the_webhook(
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
        hook = rig.create_webhook(
            project, name="scans", url=receiver.url, events=["scan.completed", "scan.failed"]
        )
        receiver.secrets = [hook["secret"]]
        good = json.dumps(rig.oci.image(repo, layers=[debian_layer()])).encode()
        assert rig.oci.put_manifest(repo, "good", good).status_code == 201
        broken = rig.oci.image(repo, layers=[b"\x1f\x8b\x08\x00 not a gzip stream"])
        broken["layers"][0]["mediaType"] = GZIP_LAYER
        bad = json.dumps(broken).encode()
        assert rig.oci.put_manifest(repo, "bad", bad).status_code == 201
        async with worker(settings, rig):
            await until(
                lambda: (
                    digest_of(good) in _by_digest(receiver, "scan.completed")
                    and digest_of(bad) in _by_digest(receiver, "scan.failed")
                ),
                what="both scan events",
            )

    completed = _by_digest(receiver, "scan.completed")[digest_of(good)]
    assert completed["project"] == project
    assert completed["repository"] == repo
    details = completed["details"]
    assert details["status"] == "succeeded"
    assert set(details["counts"]) >= {"Critical", "High", "Medium", "Low"}
    assert details["total"] == sum(details["counts"].values())
    failed = _by_digest(receiver, "scan.failed")[digest_of(bad)]
    assert failed["repository"] == repo
    assert failed["details"]["status"] == "failed"
    assert "corrupt" in failed["details"]["reason"]
    assert digest_of(bad) not in _by_digest(receiver, "scan.completed")


async def test_a_signature_meeting_the_policy_and_one_refused_reach_the_webhook(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings("sqlite-fs", tmp_path, temporal_server, request, allow=LOOPBACK)
    project = unique_project()
    repo = f"{project}/app"
    trusted, stranger = new_key(), new_key()
    with api(settings) as rig:
        rig.project(project)
        hook = rig.create_webhook(
            project,
            name="trust",
            url=receiver.url,
            events=["signature.verified", "signature.refused"],
        )
        receiver.secrets = [hook["secret"]]
        policy = {
            "keys": [{"name": "ci", "public_key": public_pem(trusted)}],
            "signatures": {"required_signers": 1, "signers": ["ci"]},
        }
        saved = rig.call("PUT", f"/api/v1/projects/{project}/trust/policy", json=policy)
        assert saved.status_code == 200, saved.text
        signed = rig.oci.push_image(repo, "signed")
        forged = rig.oci.push_image(repo, "forged")
        unsigned = rig.oci.push_image(repo, "unsigned")
        push_signature(rig.oci, repo, signed.digest, trusted)
        push_signature(rig.oci, repo, forged.digest, stranger)
        async with worker(settings, rig):
            await until(
                lambda: (
                    signed.digest in _by_digest(receiver, "signature.verified")
                    and forged.digest in _by_digest(receiver, "signature.refused")
                ),
                what="both signature verdicts",
            )

    verified = _by_digest(receiver, "signature.verified")[signed.digest]
    assert verified["project"] == project
    assert verified["repository"] == repo
    assert verified["details"]["verdict"] == "verified"
    assert verified["details"]["signers"] == ["ci"]
    assert verified["details"]["verified"] == verified["details"]["entries"] == 1
    assert verified["details"]["policy_revision"] == 1
    refused = _by_digest(receiver, "signature.refused")[forged.digest]
    assert refused["repository"] == repo
    assert refused["details"]["verdict"] == "refused"
    assert refused["details"]["verified"] == 0
    assert "0 of 1 required distinct signers" in refused["details"]["reason"]
    assert forged.digest not in _by_digest(receiver, "signature.verified")
    assert signed.digest not in _by_digest(receiver, "signature.refused")
    # An image without any signature material is not announced.
    announced = {d["digest"] for d in _data(receiver, "signature.verified")}
    announced |= {d["digest"] for d in _data(receiver, "signature.refused")}
    assert unsigned.digest not in announced


async def test_a_promotion_promoted_and_one_refused_reach_the_target_projects_webhook(
    tmp_path: Path,
    temporal_server: TemporalServer,
    request: pytest.FixtureRequest,
    receiver: WebhookReceiver,
) -> None:
    settings = webhook_settings("sqlite-fs", tmp_path, temporal_server, request, allow=LOOPBACK)
    source, target = unique_project(), unique_project()
    with api(settings) as rig:
        rig.project(source)
        rig.project(target)
        hook = rig.create_webhook(
            target, name="promotions", url=receiver.url, events=["promotion.finished"]
        )
        receiver.secrets = [hook["secret"]]
        image = rig.oci.push_image(f"{source}/app", "rc1")
        builder = "https://ci.example.test/builders/main"
        async with worker(settings, rig):
            promoted = rig.call(
                "POST",
                "/api/v1/promotions",
                json={"source": f"{source}/app:rc1", "target": f"{target}/app:prod", "gates": {}},
            )
            assert promoted.status_code == 202, promoted.text
            refused = rig.call(
                "POST",
                "/api/v1/promotions",
                json={
                    "source": f"{source}/app@{image.digest}",
                    "target": f"{target}/app:gated",
                    "gates": {"builder": builder},
                },
            )
            assert refused.status_code == 202, refused.text
            await until(
                lambda: (
                    {d["tag"] for d in _data(receiver, "promotion.finished")} >= {"prod", "gated"}
                ),
                what="both promotion outcomes",
            )

    outcomes = {d["tag"]: d for d in _data(receiver, "promotion.finished")}
    assert len(_data(receiver, "promotion.finished")) == 2  # one event per promotion
    done = outcomes["prod"]
    assert done["project"] == target
    assert done["repository"] == f"{target}/app"
    assert done["digest"] == image.digest
    assert done["operator"] == "admin"
    assert done["details"]["status"] == "promoted"
    assert done["details"]["promotion"] == promoted.json()["id"]
    assert done["details"]["source"] == f"{source}/app@{image.digest}"
    assert done["details"]["target"] == f"{target}/app:prod"
    assert "reason" not in done["details"]
    gated = outcomes["gated"]
    assert gated["details"]["status"] == "refused"
    assert gated["details"]["promotion"] == refused.json()["id"]
    assert f"provenance: no verified provenance from {builder}" in gated["details"]["reason"]


def test_replication_executions_succeeded_and_failed_reach_a_system_webhook(
    tmp_path: Path, temporal_server: TemporalServer, receiver: WebhookReceiver
) -> None:
    site = start_site(tmp_path, temporal_server.address, MOORAGE_REPLICATION__RETRY_ATTEMPTS="2")
    try:
        project = unique_project()
        digest = push_image(site.url, f"{project}/app", "v1", [b"a layer"], site.auth)
        with site.client() as client:
            hook = client.post(
                "/api/v1/webhooks",
                json={"name": "repl", "url": receiver.url, "events": ["replication.finished"]},
            )
            assert hook.status_code == 201, hook.text
            receiver.secrets = [hook.json()["secret"]]
            refused = client.post(
                f"/api/v1/projects/{project}/webhooks",
                json={"name": "repl", "url": receiver.url, "events": ["replication.finished"]},
            )
            assert refused.status_code == 422, refused.text  # a system event
            runs: dict[str, str] = {}
            for name, url in (("self", site.url), ("away", "http://127.0.0.1:9")):
                endpoint = {
                    "name": f"{name}-{project}",
                    "url": url,
                    "type": "moorage",
                    "credential": "basic",
                    "username": site.auth[0],
                    "secret": site.auth[1],
                }
                created = client.post("/api/v1/registries", json=endpoint)
                assert created.status_code == 201, created.text
                policy = {
                    "name": f"{name}-{project}",
                    "direction": "push",
                    "endpoint": endpoint["name"],
                    "repositories": f"{project}/**",
                    "prefix": f"{name}-copy",
                }
                made = client.post("/api/v1/replication/policies", json=policy)
                assert made.status_code == 201, made.text
                started = client.post(
                    f"/api/v1/replication/policies/{made.json()['id']}/executions"
                )
                assert started.status_code == 202, started.text
                runs[name] = started.json()["id"]

        def both() -> dict[str, dict[str, Any]] | None:
            found = {
                d["details"]["execution_id"]: d for d in _data(receiver, "replication.finished")
            }
            return found if set(runs.values()) <= set(found) else None

        finished = wait_for(both, "both executions announced")
        copy = manifest_digest(site.url, f"self-copy/{project}/app", "v1", site.auth)
        assert copy == digest
    finally:
        site.stop()

    copied = finished[runs["self"]]["details"]
    assert copied["policy"] == f"self-{project}"
    assert copied["trigger"] == "manual"
    assert copied["status"] == "succeeded"
    assert (copied["total"], copied["succeeded"], copied["failed"]) == (1, 1, 0)
    assert "errors" not in copied
    away = finished[runs["away"]]["details"]
    assert away["status"] == "failed"
    assert (away["total"], away["succeeded"], away["failed"]) == (1, 0, 1)
    assert away["errors"][0].startswith(f"away-copy/{project}/app:v1: ")
    assert len(_data(receiver, "replication.finished")) == 2  # one event per execution
