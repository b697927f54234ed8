"""Replication executions between Moorage and Debian's docker-registry.

docker-registry sits behind a counting front (``tests.services.registry_front``) that
demands Docker token auth, so the client's token flow runs on both directions; the front
also counts the upload bytes that reach the registry, holds uploads (a worker killed
mid-blob) and can be stopped (a destination away mid-run). ``crane`` checks results.
"""

from __future__ import annotations

import os
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.commands import make_client_home, run
from tests.replication.rig import (
    CHUNK,
    Site,
    blob_present,
    finished,
    manifest_digest,
    push_image,
    push_index,
    run_policy,
    sha,
    start_site,
    tasks,
    wait_for,
)
from tests.services.forkserver import run_captured
from tests.services.registry_front import RegistryFront
from tests.services.tools import find_tool

pytestmark = pytest.mark.integration

USER, PASSWORD = "robot", "pw-" + secrets.token_hex(6)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, temporal_server: Any) -> Iterator[Site]:
    found = start_site(tmp_path_factory.mktemp("repl-site"), temporal_server.address)
    yield found
    found.stop()


@pytest.fixture
def front(docker_registry: Any) -> Iterator[RegistryFront]:
    server = RegistryFront(docker_registry.url)
    server.config.token_auth = (USER, PASSWORD)
    yield server
    server.close()


def endpoint(client: httpx.Client, front: RegistryFront) -> str:
    name = f"ep-{secrets.token_hex(4)}"
    body = {
        "name": name,
        "url": front.url,
        "type": "distribution",
        "credential": "basic",
        "username": USER,
        "secret": PASSWORD,
    }
    created = client.post("/api/v1/registries", json=body)
    assert created.status_code == 201, created.text
    return name


def policy(client: httpx.Client, **body: Any) -> dict[str, Any]:
    created = client.post(
        "/api/v1/replication/policies", json={"name": f"p-{secrets.token_hex(4)}", **body}
    )
    assert created.status_code == 201, created.text
    found: dict[str, Any] = created.json()
    return found


def pull_into_new_project(
    client: httpx.Client, front: RegistryFront, repositories: str, **filters: Any
) -> tuple[str, dict[str, Any]]:
    """A new project and a pull policy of the front's ``repositories`` into it."""
    project = f"dst{secrets.token_hex(3)}"
    assert client.post("/api/v1/projects", json={"name": project}).status_code == 201
    pulled = policy(
        client,
        direction="pull",
        endpoint=endpoint(client, front),
        repositories=repositories,
        prefix=project,
        **filters,
    )
    return project, pulled


def layer(size: int) -> bytes:
    return os.urandom(size)


def test_pull_then_push_by_digest_with_token_auth(
    site: Site, front: RegistryFront, docker_registry: Any, tmp_path: Path
) -> None:
    """An index with two platforms and chunked blobs goes docker-registry -> Moorage -> back.

    Digests are kept end to end; the second run sends nothing.
    """
    source = f"src{secrets.token_hex(3)}/app"
    amd = push_image(docker_registry.url, source, "amd", [layer(3 * CHUNK + 17), layer(999)])
    arm = push_image(docker_registry.url, source, "arm", [layer(CHUNK // 2)])
    index = push_index(docker_registry.url, source, "v1", [amd, arm])

    with site.client() as client:
        name = endpoint(client, front)
        pulled = policy(
            client,
            direction="pull",
            endpoint=name,
            repositories=f"{source.split('/', maxsplit=1)[0]}/**",
            tags="v*",
            prefix="mirror",
        )
        done = run_policy(client, pulled["id"])
        assert done["status"] == "succeeded", done
        results = tasks(client, done["id"])
        assert [(t["source"], t["destination"], t["reference"], t["status"]) for t in results] == [
            (source, f"mirror/{source}", "v1", "copied")
        ]
        assert results[0]["digest"] == index
        assert front.count("GET", "/token") >= 1, "the token flow ran"

        home = make_client_home(tmp_path / "home")
        env = home.env()
        crane = find_tool("crane")
        run([crane, "auth", "login", site.api.host_port, "-u", site.auth[0], "--password-stdin"],
            env=env, stdin=site.auth[1])  # fmt: skip
        copied = run(
            [crane, "--insecure", "digest", f"{site.api.host_port}/mirror/{source}:v1"], env=env
        )
        assert copied.stdout.strip() == index
        for child in (amd, arm):
            assert manifest_digest(site.url, f"mirror/{source}", child, site.auth) == child

        again = run_policy(client, pulled["id"])
        assert [t["status"] for t in tasks(client, again["id"])] == ["skipped"]

        # push it back under another name: the blobs come from Moorage, the token flow
        # runs for pushes, and the destination holds the same digests
        uploads_before = front.upload_bytes
        pushed = policy(
            client,
            direction="push",
            endpoint=name,
            repositories=f"mirror/{source}",
            flatten=1,
            prefix="back",
        )
        done = run_policy(client, pushed["id"])
        assert done["status"] == "succeeded", done
        target = f"back/{source}"
        assert manifest_digest(docker_registry.url, target, "v1") == index
        sent = front.upload_bytes - uploads_before
        assert sent >= 3 * CHUNK + 17 + 999 + CHUNK // 2
        repeat = run_policy(client, pushed["id"])
        assert [t["status"] for t in tasks(client, repeat["id"])] == ["skipped"]
        assert front.upload_bytes - uploads_before == sent, "nothing is sent twice"


def test_destination_away_is_retried_until_it_is_back(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    with site.client() as client:
        project = f"away{secrets.token_hex(3)}"
        digest = push_image(site.url, f"{project}/app", "1.0", [layer(CHUNK * 2)], site.auth)
        name = endpoint(client, front)
        pushed = policy(client, direction="push", endpoint=name, repositories=f"{project}/**")
        front.stop()
        started = client.post(f"/api/v1/replication/policies/{pushed['id']}/executions")
        assert started.status_code == 202, started.text
        execution_id = started.json()["id"]
        wait_for(lambda: tasks(client, execution_id), "the execution's plan")
        assert finished(client, execution_id) is None, "no run completes without its destination"
        front.start()
        done = wait_for(lambda: finished(client, execution_id), "the execution")
        assert done["status"] == "succeeded", done
        assert manifest_digest(docker_registry.url, f"{project}/app", "1.0") == digest


def test_worker_killed_mid_blob_resumes_without_resending(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    """kill -9 while a chunked blob is half sent: completed blobs and chunks are not re-sent."""
    with site.client() as client:
        project = f"kill{secrets.token_hex(3)}"
        layers = [layer(CHUNK + 5), layer(6 * CHUNK + 3)]
        digest = push_image(site.url, f"{project}/app", "1.0", layers, site.auth)
        total = sum(len(b) for b in layers)
        name = endpoint(client, front)
        pushed = policy(
            client, direction="push", endpoint=name, repositories=f"{project}/**", concurrency=1
        )
        before = front.upload_bytes
        front.config.hold_uploads_after = before + CHUNK * 3
        started = client.post(f"/api/v1/replication/policies/{pushed['id']}/executions")
        assert started.status_code == 202, started.text
        execution_id = started.json()["id"]
        wait_for(front.holding.is_set, "an upload held mid-blob")
        held = front.upload_bytes - before
        assert 0 < held < total
        wait_for(
            lambda: heartbeat_bytes(site, execution_id) >= held,
            "the copy's heartbeat to report what the destination acknowledged",
        )
        replace_killed_worker(site, front)
        done = wait_for(lambda: finished(client, execution_id), "the execution")
        assert done["status"] == "succeeded", done
        assert manifest_digest(docker_registry.url, f"{project}/app", "1.0") == digest
        for blob in layers:
            assert blob_present(docker_registry.url, f"{project}/app", sha(blob))
        config_bytes = front.upload_bytes - before - total
        assert 0 < config_bytes < 200, f"re-sent {config_bytes} bytes beyond the config"


def test_worker_killed_mid_blob_of_a_pull_continues_its_local_upload(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    """kill -9 while a pull writes a chunked blob here: the next worker goes on from there.

    The pull's worker writes into this installation itself; the upload session it left is
    continued from the offset it holds. Completed blobs are not fetched again; the blob in
    flight is read from the source again only from that offset (an HTTP range, which
    ``docker-registry`` serves), and its written chunks are not written again.
    """
    source = f"pk{secrets.token_hex(3)}/app"
    small, big = layer(999), layer(6 * CHUNK + 3)
    digest = push_image(docker_registry.url, source, "1.0", [small, big])
    with site.client() as client:
        project, pulled = pull_into_new_project(client, front, source, concurrency=1)
        # NOTE: per body: the config and the small layer pass; the big one stops past its
        # first MiB, which the client hands on whole (four chunks are written)
        front.config.hold_blob_bodies_after = 5 * CHUNK + CHUNK // 2
        started = client.post(f"/api/v1/replication/policies/{pulled['id']}/executions")
        assert started.status_code == 202, started.text
        execution_id = started.json()["id"]
        wait_for(front.holding.is_set, "the big blob's body held mid-way")
        wait_for(
            lambda: heartbeat_bytes(site, execution_id) >= len(small) + 4 * CHUNK,
            "the copy's heartbeat to report the four chunks written",
        )
        replace_killed_worker(site, front)
        done = wait_for(lambda: finished(client, execution_id), "the execution")
        assert done["status"] == "succeeded", done
        [task] = tasks(client, execution_id)
    target = f"{project}/{source}"
    assert manifest_digest(site.url, target, "1.0", site.auth) == digest
    for blob in (small, big):
        assert blob_present(site.url, target, sha(blob), site.auth)
    assert front.count("GET", f"/v2/{source}/blobs/{sha(small)}") == 1
    assert front.count("GET", f"/v2/{source}/blobs/{sha(big)}") == 2
    config_bytes = task["bytes_sent"] - len(small) - len(big)
    assert 0 < config_bytes < 200, f"wrote {config_bytes} bytes beyond the config again"
    first, again = [read for read in front.blob_reads if read.digest == sha(big)]
    assert (first.range, first.status) == ("", 200)
    assert again.range.startswith("bytes="), again
    assert again.range.endswith("-"), again
    held = int(again.range.removeprefix("bytes=").removesuffix("-"))
    assert held >= 4 * CHUNK  # what the heartbeat reported written, at least
    assert again.status == 206
    assert again.relayed == len(big) - held, "only the bytes the session lacked were read"


def test_worker_killed_while_planning_is_replaced_and_the_run_completes(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    """kill -9 while the plan lists the source: the next worker plans and copies.

    The plan is made in the execution's workflow task, so a dead worker is noticed by that
    task's timeout (seconds), not by the plan's start-to-close bound (minutes)."""
    source = f"plan{secrets.token_hex(3)}"
    digest = push_image(docker_registry.url, f"{source}/app", "1.0", [layer(900)])
    with site.client() as client:
        project, pulled = pull_into_new_project(client, front, f"{source}/**")
        front.config.hold_tag_lists = True
        started = client.post(f"/api/v1/replication/policies/{pulled['id']}/executions")
        assert started.status_code == 202, started.text
        execution_id = started.json()["id"]
        wait_for(front.holding.is_set, "the plan's tag list held")
        replace_killed_worker(site, front)
        done = wait_for(lambda: finished(client, execution_id), "the execution")
        assert done["status"] == "succeeded", done
        assert [t["status"] for t in tasks(client, execution_id)] == ["copied"]
        assert manifest_digest(site.url, f"{project}/{source}/app", "1.0", site.auth) == digest


def replace_killed_worker(site: Site, front: RegistryFront) -> None:
    """kill -9 the site's worker, let the front's held requests go, start a new worker."""
    os.kill(site.worker.pid, signal.SIGKILL)
    site.worker.popen.wait(timeout=30)
    front.release()
    site.restart_worker()


def heartbeat_bytes(site: Site, execution_id: str) -> int:
    """``bytes_sent`` of the last heartbeat of the execution's first task's copy."""
    import asyncio

    from temporalio.client import Client

    async def describe() -> int:
        client = await Client.connect(site.env["MOORAGE_TEMPORAL__ADDRESS"])
        with site.client() as http:
            ids = [f"{execution_id}-task-{task['id']}" for task in tasks(http, execution_id)]
        for workflow_id in ids:
            handle = client.get_workflow_handle(workflow_id)
            description = await handle.describe()
            for pending in description.raw_description.pending_activities:
                payloads = pending.heartbeat_details.payloads
                if payloads:
                    details = await client.data_converter.decode(list(payloads))
                    return int(dict(details[0]).get("bytes_sent", 0))
        return 0

    return asyncio.run(describe())


def test_scheduled_policy_runs_from_its_temporal_schedule(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    """The policy's schedule follows it; a run it starts is a ``scheduled`` execution."""
    import asyncio

    from temporalio.client import Client
    from temporalio.service import RPCError

    with site.client() as client:
        project = f"sched{secrets.token_hex(3)}"
        digest = push_image(site.url, f"{project}/app", "1.0", [layer(1000)], site.auth)
        name = endpoint(client, front)
        body = {
            "direction": "push",
            "endpoint": name,
            "repositories": f"{project}/**",
            "trigger": "scheduled",
            "cron": "0 3 1 1 *",
        }
        made = policy(client, **body)

        async def trigger() -> list[int]:
            temporal = await Client.connect(site.env["MOORAGE_TEMPORAL__ADDRESS"])
            handle = temporal.get_schedule_handle(f"moorage-replication-{made['id']}")
            described = await handle.describe()
            await handle.trigger()
            # NOTE: the server keeps a cron expression as calendar specs
            return [r.start for c in described.schedule.spec.calendars for r in c.hour]

        assert asyncio.run(trigger()) == [3]

        def scheduled_run() -> dict[str, Any] | None:
            listed = client.get(
                "/api/v1/replication/executions", params={"policy_id": made["id"]}
            ).json()["items"]
            runs = [e for e in listed if e["trigger"] == "scheduled" and e["status"] != "running"]
            return runs[0] if runs else None

        done = wait_for(scheduled_run, "the scheduled execution")
        assert done["status"] == "succeeded", done
        assert manifest_digest(docker_registry.url, f"{project}/app", "1.0") == digest

        changed = client.put(
            f"/api/v1/replication/policies/{made['id']}",
            json={**body, "name": made["name"], "trigger": "manual", "cron": None},
        )
        assert changed.status_code == 200, changed.text

        async def gone() -> bool:
            temporal = await Client.connect(site.env["MOORAGE_TEMPORAL__ADDRESS"])
            try:
                await temporal.get_schedule_handle(f"moorage-replication-{made['id']}").describe()
            except RPCError:
                return True
            return False

        assert asyncio.run(gone()), "a manual policy has no schedule"


def _cli(site: Site, *args: str) -> Any:
    import json
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env |= {
        "MOORAGE_URL": site.url,
        "MOORAGE_USERNAME": site.auth[0],
        "MOORAGE_PASSWORD": site.auth[1],
    }
    done = run_captured(
        [sys.executable, "-m", "cli.main", "replication", *args], env=env, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_cli_creates_runs_and_reports(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    project = f"cli{secrets.token_hex(3)}"
    digest = push_image(site.url, f"{project}/tool", "2", [layer(2000)], site.auth)
    with site.client() as client:
        name = endpoint(client, front)
    created = _cli(
        site, "create", f"cli-{project}", "push", name,
        "--repositories", f"{project}/**", "--prefix", "copies",
    )  # fmt: skip
    assert created["prefix"] == "copies"
    assert created["id"] in [p["id"] for p in _cli(site, "policies")["items"]]
    done = _cli(site, "run", str(created["id"]), "--wait")
    assert done["status"] == "succeeded", done
    results = _cli(site, "tasks", done["id"])["items"]
    assert [(r["destination"], r["status"], r["digest"]) for r in results] == [
        (f"copies/{project}/tool", "copied", digest)
    ]
    history = _cli(site, "executions", "--policy", str(created["id"]))["items"]
    assert [e["id"] for e in history] == [done["id"]]
    found = wait_for(
        lambda: runs_matching(
            site,
            f'MoorageReplicationPolicy = "cli-{project}" AND '
            f'MoorageRepository = "{project}/tool" AND MoorageProject = "{project}"',
        ),
        "the execution's runs in Temporal's visibility",
    )
    assert found == [f"{done['id']}-task-{results[0]['id']}"]
    assert manifest_digest(docker_registry.url, f"copies/{project}/tool", "2") == digest


def test_referrers_follow_their_subject_and_immutable_tags_hold(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    """A signature found through the referrers tag schema lands with its subject; a moved
    source tag that is immutable at the Moorage destination is refused there, as any push."""
    import json

    source = f"ref{secrets.token_hex(3)}/app"
    subject = push_image(docker_registry.url, source, "v1", [layer(1500)])
    empty = b"{}"
    signature_layer = b"signature bytes"
    push_image(docker_registry.url, source, "scratch", [signature_layer, empty])
    signature = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.example.signature",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": sha(empty),
                "size": len(empty),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.example.signature.v1",
                    "digest": sha(signature_layer),
                    "size": len(signature_layer),
                }
            ],
            "subject": {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": subject,
                "size": len(
                    httpx.get(
                        f"{docker_registry.url}/v2/{source}/manifests/v1",
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                    ).content
                ),
            },
        }
    ).encode()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": sha(signature),
                    "size": len(signature),
                    "artifactType": "application/vnd.example.signature",
                }
            ],
        }
    ).encode()
    with httpx.Client(base_url=docker_registry.url, timeout=60) as registry:
        oci = "application/vnd.oci.image.manifest.v1+json"
        put = registry.put(
            f"/v2/{source}/manifests/{sha(signature)}",
            content=signature,
            headers={"Content-Type": oci},
        )
        assert put.status_code == 201, put.text
        put = registry.put(
            f"/v2/{source}/manifests/{subject.replace(':', '-')}",
            content=index,
            headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
        )
        assert put.status_code == 201, put.text

    with site.client() as client:
        project = f"dst{secrets.token_hex(3)}"
        assert client.post("/api/v1/projects", json={"name": project}).status_code == 201
        name = endpoint(client, front)
        pulled = policy(
            client,
            direction="pull",
            endpoint=name,
            repositories=source,
            tags="v*",
            prefix=project,
        )
        done = run_policy(client, pulled["id"])
        assert done["status"] == "succeeded", done
        target = f"{project}/{source}"
        referrers = client.get(f"/v2/{target}/referrers/{subject}")
        assert referrers.status_code == 200, referrers.text
        assert [m["digest"] for m in referrers.json()["manifests"]] == [sha(signature)]

        rules = {"rules": [{"repository": {"pattern": "**"}, "tag": {"pattern": "v*"}}]}
        made = client.put(f"/api/v1/projects/{project}/immutability", json=rules)
        assert made.status_code == 200, made.text
        moved = push_image(docker_registry.url, source, "v1", [layer(700)], note="moved")
        refused = run_policy(client, pulled["id"])
        assert refused["status"] == "failed", refused
        [task] = tasks(client, refused["id"])
        assert task["status"] == "failed"
        assert "immutable" in (task["error"] or "").lower(), task
        assert manifest_digest(site.url, target, "v1", site.auth) == subject != moved


def test_a_corrupted_blob_is_never_finalized(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    """The source sends other bytes than its digest: the task fails, nothing is tagged."""
    source = f"bad{secrets.token_hex(3)}/app"
    bad = layer(CHUNK * 2 + 1)
    push_image(docker_registry.url, source, "v1", [bad])
    front.config.corrupt = {sha(bad)}
    with site.client() as client:
        name = endpoint(client, front)
        pulled = policy(
            client, direction="pull", endpoint=name, repositories=source, prefix="quarantine"
        )
        done = run_policy(client, pulled["id"])
        assert done["status"] == "failed", done
        [task] = tasks(client, done["id"])
        assert task["status"] == "failed"
        assert "other content" in (task["error"] or ""), task
    target = f"quarantine/{source}"
    assert manifest_digest(site.url, target, "v1", site.auth) is None
    assert not blob_present(site.url, target, sha(bad), site.auth)


def runs_matching(site: Site, query: str) -> list[str]:
    """Ids of the workflow runs Temporal's visibility finds for ``query``."""
    import asyncio

    from temporalio.client import Client

    async def listed() -> list[str]:
        client = await Client.connect(site.env["MOORAGE_TEMPORAL__ADDRESS"])
        return [w.id async for w in client.list_workflows(query)]

    return asyncio.run(listed())


def test_a_blob_sent_once_is_mounted_into_the_next_repository(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    project = f"mnt{secrets.token_hex(3)}"
    shared = layer(CHUNK * 2 + 11)
    first = push_image(site.url, f"{project}/one", "1", [shared], site.auth, note="one")
    second = push_image(site.url, f"{project}/two", "1", [shared], site.auth, note="two")
    configs = [
        len(
            httpx.get(
                f"{site.url}/v2/{project}/{repo}/blobs/"
                + httpx.get(
                    f"{site.url}/v2/{project}/{repo}/manifests/1",
                    auth=site.auth,
                    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
                ).json()["config"]["digest"],
                auth=site.auth,
                follow_redirects=True,
            ).content
        )
        for repo in ("one", "two")
    ]
    with site.client() as client:
        name = endpoint(client, front)
        pushed = policy(
            client, direction="push", endpoint=name, repositories=f"{project}/**", concurrency=1
        )
        before = front.upload_bytes
        done = run_policy(client, pushed["id"])
        assert done["status"] == "succeeded", done
        results = {t["source"]: t for t in tasks(client, done["id"])}
    assert front.upload_bytes - before == len(shared) + sum(configs), "the shared layer went once"
    assert results[f"{project}/two"]["blobs_skipped"] == 1
    assert manifest_digest(docker_registry.url, f"{project}/one", "1") == first
    assert manifest_digest(docker_registry.url, f"{project}/two", "1") == second
    assert blob_present(docker_registry.url, f"{project}/two", sha(shared))


def test_a_signature_added_later_is_found_from_the_tag_list(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    """A run with nothing new asks the source only for its listing and one ``HEAD`` per
    tag (the referrers API answered 404 to the first run's copy just before, so the tag
    schema's index is looked up in the listing); a cosign signature tagged at the source
    afterwards is found in the listing and follows its subject on the next run."""
    source = f"late{secrets.token_hex(3)}/app"
    subject = push_image(docker_registry.url, source, "v1", [layer(900)])
    with site.client() as client:
        project, pulled = pull_into_new_project(client, front, source, tags="v*")
        first = run_policy(client, pulled["id"])
        assert [t["status"] for t in tasks(client, first["id"])] == ["copied"]

        signature_tag = subject.replace(":", "-") + ".sig"
        asked = {
            what: front.count(*what)
            for what in [
                ("HEAD", f"/v2/{source}/manifests/v1"),
                ("GET", f"/v2/{source}/referrers/{subject}"),
                ("GET", f"/v2/{source}/manifests/{subject.replace(':', '-')}"),
                ("HEAD", f"/v2/{source}/manifests/{signature_tag}"),
            ]
        }
        again = run_policy(client, pulled["id"])
        assert [t["status"] for t in tasks(client, again["id"])] == ["skipped"]
        now = {what: front.count(*what) - before for what, before in asked.items()}
        assert now == {
            ("HEAD", f"/v2/{source}/manifests/v1"): 1,
            ("GET", f"/v2/{source}/referrers/{subject}"): 0,
            ("GET", f"/v2/{source}/manifests/{subject.replace(':', '-')}"): 0,
            ("HEAD", f"/v2/{source}/manifests/{signature_tag}"): 0,
        }

        signature = push_image(
            docker_registry.url, source, signature_tag, [b"cosign signature"], note="sig"
        )
        third = run_policy(client, pulled["id"])
        assert third["status"] == "succeeded", third
        target = f"{project}/{source}"
        assert manifest_digest(site.url, target, signature_tag, site.auth) == signature
        assert manifest_digest(site.url, target, "v1", site.auth) == subject


def test_a_copy_finds_cosign_tags_in_its_plans_listing(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    """A copy that follows its plan looks up the subject's cosign tags and the referrers
    tag schema in the tag list the plan just read: the signature lands with its subject,
    and the source is asked for none of those tags one by one."""
    source = f"cos{secrets.token_hex(3)}/app"
    subject = push_image(docker_registry.url, source, "v1", [layer(800)])
    prefix = subject.replace(":", "-")
    signature = push_image(
        docker_registry.url, source, f"{prefix}.sig", [b"cosign signature"], note="sig"
    )
    looked_up = [
        ("HEAD", f"/v2/{source}/manifests/{prefix}{suffix}") for suffix in (".sig", ".att", ".sbom")
    ] + [("GET", f"/v2/{source}/manifests/{prefix}")]
    before = {what: front.count(*what) for what in looked_up}
    fetched = front.count("GET", f"/v2/{source}/manifests/{prefix}.sig")
    with site.client() as client:
        project, pulled = pull_into_new_project(client, front, source, tags="v*")
        done = run_policy(client, pulled["id"])
        assert done["status"] == "succeeded", done
        assert [t["status"] for t in tasks(client, done["id"])] == ["copied"]
    target = f"{project}/{source}"
    assert manifest_digest(site.url, target, "v1", site.auth) == subject
    assert manifest_digest(site.url, target, f"{prefix}.sig", site.auth) == signature
    assert {what: front.count(*what) - n for what, n in before.items()} == dict.fromkeys(
        looked_up, 0
    )
    assert front.count("GET", f"/v2/{source}/manifests/{prefix}.sig") == fetched + 1


def test_a_run_with_nothing_new_copies_nothing_and_a_moved_tag_is_put_back(
    site: Site, front: RegistryFront, docker_registry: Any
) -> None:
    """A pull finds what it copied before in place (this site's own store says so): the
    second run copies nothing and the API shows every task skipped; a destination tag
    moved to another image since is copied again (override), the others stay skipped."""
    source = f"same{secrets.token_hex(3)}"
    digests = {
        name: push_image(docker_registry.url, f"{source}/{name}", "1.0", [layer(700)])
        for name in ("one", "two", "three")
    }
    with site.client() as client:
        project, pulled = pull_into_new_project(client, front, f"{source}/**")
        first = run_policy(client, pulled["id"])
        assert first["status"] == "succeeded", first
        assert sorted(t["status"] for t in tasks(client, first["id"])) == ["copied"] * 3

        again = run_policy(client, pulled["id"])
        assert again["status"] == "succeeded", again
        assert (again["total"], again["skipped"], again["succeeded"], again["failed"]) == (
            3, 3, 0, 0
        )  # fmt: skip
        found = tasks(client, again["id"])
        assert [t["status"] for t in found] == ["skipped"] * 3
        assert {t["source"]: t["digest"] for t in found} == {
            f"{source}/{name}": digest for name, digest in digests.items()
        }
        assert {(t["bytes_sent"], t["blobs_copied"], t["error"]) for t in found} == {
            (0, 0, "already replicated")
        }

        target = f"{project}/{source}/two"
        other = push_image(site.url, target, "1.0", [layer(500)], site.auth, note="moved")
        assert manifest_digest(site.url, target, "1.0", site.auth) == other
        third = run_policy(client, pulled["id"])
        assert third["status"] == "succeeded", third
        statuses = {t["source"]: t["status"] for t in tasks(client, third["id"])}
        assert statuses == {
            f"{source}/one": "skipped",
            f"{source}/two": "copied",
            f"{source}/three": "skipped",
        }
        assert manifest_digest(site.url, target, "1.0", site.auth) == digests["two"]
