"""Replication throughput: a Moorage pull policy against ``skopeo sync`` of the same images.

``python -m bench.replication [--images 50 --layers 6 --layer-kib 3400]`` starts a
Temporal dev server, Debian's ``docker-registry`` as the source and one Moorage site
(API and worker processes), pushes ``images`` images of ``layers`` random layers each
(one base layer shared by all) into the source, then copies the whole set into Moorage
twice each way, side by side:

- Moorage: a pull policy (``bench/**`` -> project ``repl``), run by hand, timed from the
  API call to the execution's end (looked at every 20 ms);
- ``skopeo sync`` of the same tags into project ``sync`` of the same Moorage.

The second run of each finds everything in place ("nothing new"). The defaults make about
300 blobs and 1 GiB. Both projects are made before the runs with scan on push off (the
default of a new project is on): the copies are timed, not the scans they would start,
which otherwise run on in the background into whichever phase comes next. With
``--scan-on-push`` both projects keep it on. Before each phase the bench waits until no
workflow runs (the previous phase's event fan-out and scans are done), at most
:data:`SETTLE_BOUND` seconds; the waits are reported as ``settle_seconds``. Results
are printed as JSON; nothing here asserts on time.
``--nothing-new N`` runs the pull policy N times after its first run (default 1; the
extra runs cost little and give a median of one site, ``moorage_nothing_new_seconds``);
``--output FILE`` appends the result as one JSON line (with ``--label``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from core.control_settings import ControlSettings
from core.replication_settings import ReplicationSettings
from tests.replication.rig import Site, push_image, run_policy, start_site
from tests.services.docker_registry import DockerRegistry, start_docker_registry
from tests.services.temporal import start_temporal
from tests.services.tools import find_tool

#: Bound of one skopeo run (seconds).
SKOPEO_TIMEOUT = 3600
#: Longest wait for the previous phase's workflows to close (seconds).
SETTLE_BOUND = 300.0
#: Seconds between two looks at the warm-up execution (the timed runs are not polled).
POLL = 0.2


def populate(source: DockerRegistry, images: int, layers: int, layer_bytes: int) -> list[str]:
    """Push the image set into the source; its repository names."""
    base = os.urandom(layer_bytes)
    names = []
    for number in range(images):
        name = f"bench/img{number:03d}"
        own = [os.urandom(layer_bytes) for _ in range(max(layers - 1, 0))]
        push_image(source.url, name, "1", [base, *own], note=name)
        names.append(name)
    return names


def make_projects(site: Site, names: list[str], scan_on_push: bool) -> None:
    """Create the destination projects with scan on push as asked."""
    with site.client() as client:
        for name in names:
            created = client.post("/api/v1/projects", json={"name": name})
            if created.status_code != 201:
                raise RuntimeError(f"project {name}: {created.status_code} {created.text}")
            policy = client.put(
                f"/api/v1/projects/{name}/scan-policy", json={"scan_on_push": scan_on_push}
            )
            policy.raise_for_status()


def settle(address: str, bound: float = SETTLE_BOUND) -> float:
    """Wait until no workflow runs on the Temporal server at ``address``; seconds waited."""

    async def wait() -> float:
        client = await Client.connect(address)
        started = time.perf_counter()
        while (await client.count_workflows("ExecutionStatus='Running'")).count:
            if time.perf_counter() - started > bound:
                raise RuntimeError(f"workflows still running after {bound:.0f} s")
            await asyncio.sleep(0.5)
        return time.perf_counter() - started

    return asyncio.run(wait())


def moorage_runs(
    site: Site,
    source: DockerRegistry,
    concurrency: int,
    nothing_new: int = 1,
    between: Callable[[], object] = lambda: None,
) -> list[float]:
    """Seconds of the runs of a pull policy over the set: the first, then ``nothing_new``.

    A run is timed from the request that starts it to the end of its execution's workflow,
    awaited on Temporal: no request polls the API meanwhile (a look every 20 ms cost the
    API and this process CPU on the machine being measured). ``between`` is called after
    the first run (not timed).
    """
    with site.client() as client, asyncio.Runner() as loop:
        temporal = loop.run(Client.connect(site.env["MOORAGE_TEMPORAL__ADDRESS"]))
        name = f"bench-{secrets.token_hex(3)}"
        body = {"name": name, "url": source.url, "type": "distribution"}
        created = client.post("/api/v1/registries", json=body)
        created.raise_for_status()
        made = client.post(
            "/api/v1/replication/policies",
            json={
                "name": name,
                "direction": "pull",
                "endpoint": name,
                "repositories": "bench/**",
                "prefix": "repl",
                "concurrency": concurrency,
            },
        )
        made.raise_for_status()
        warm = client.post(
            "/api/v1/replication/policies",
            json={**made.json(), "name": f"{name}-warm", "repositories": "nothing/here"},
        )
        warm.raise_for_status()
        run_policy(client, warm.json()["id"], POLL)  # the worker polls: time copies, not its start
        times = []
        for _ in range(1 + nothing_new):
            started = time.perf_counter()
            response = client.post(f"/api/v1/replication/policies/{made.json()['id']}/executions")
            response.raise_for_status()
            execution = response.json()["id"]
            loop.run(temporal.get_workflow_handle(execution).result())
            times.append(time.perf_counter() - started)
            done = client.get(f"/api/v1/replication/executions/{execution}").json()
            if done["status"] != "succeeded":
                raise RuntimeError(f"replication run failed: {done}")
            if len(times) == 1:
                between()
        return times


def skopeo_runs(
    site: Site,
    source: DockerRegistry,
    names: list[str],
    work: Path,
    between: Callable[[], object] = lambda: None,
) -> list[float]:
    """Seconds of two ``skopeo sync`` runs of the same set into project ``sync``.

    ``between`` is called between the two runs (not timed).
    """
    skopeo = find_tool("skopeo")
    spec = {source.host_port: {"tls-verify": False, "images": {n: ["1"] for n in names}}}
    spec_path = work / "sync.yaml"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")  # JSON is YAML
    home = work / "skopeo-home"
    home.mkdir(exist_ok=True)
    (home / "policy.json").write_text(
        '{"default": [{"type": "insecureAcceptAnything"}]}', encoding="utf-8"
    )
    env = {**os.environ, "HOME": str(home), "REGISTRY_AUTH_FILE": str(home / "auth.json")}
    argv = [
        skopeo, "--policy", str(home / "policy.json"), "sync", "--src", "yaml",
        "--dest", "docker", "--dest-tls-verify=false", "--all",
        "--dest-creds", ":".join(site.auth), str(spec_path), f"{site.api.host_port}/sync",
    ]  # fmt: skip
    times = []
    for _ in range(2):
        started = time.perf_counter()
        done = subprocess.run(
            argv, env=env, check=False, timeout=SKOPEO_TIMEOUT, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"skopeo sync failed: {done.stderr[-2000:]}")
        times.append(time.perf_counter() - started)
        if len(times) == 1:
            between()
    return times


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--layer-kib", type=int, default=3400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--scan-on-push", action="store_true", help="keep scan on push in both projects"
    )
    parser.add_argument("--nothing-new", type=int, default=1, help="Moorage runs after the first")
    parser.add_argument("--output", type=Path, help="append the result here as a JSON line")
    parser.add_argument("--label", default="", help="the result's `code` field in --output")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-replication-"))
    started: list[Any] = []
    try:
        temporal = start_temporal(work / "temporal")
        started.append(temporal)
        source = start_docker_registry(work / "source")
        started.append(source)
        # NOTE: the production chunk size and event batching, not the test rig's (14 PATCHes
        # a layer; a batch workflow per subscriber every 0.2 s while pushes arrive)
        control = ControlSettings()
        site = start_site(
            work / "moorage",
            temporal.address,
            MOORAGE_REPLICATION__CHUNK_SIZE=str(ReplicationSettings().chunk_size),
            MOORAGE_CONTROL__OUTBOX_POLL_SECONDS=str(control.outbox_poll_seconds),
            MOORAGE_CONTROL__EVENT_BATCH_SECONDS=str(control.event_batch_seconds),
        )
        started.append(site)
        names = populate(source, args.images, args.layers, args.layer_kib * 1024)
        make_projects(site, ["repl", "sync"], args.scan_on_push)
        waits: list[float] = []

        def quiet() -> None:
            waits.append(settle(temporal.address))

        quiet()
        runs = moorage_runs(site, source, args.concurrency, max(args.nothing_new, 1), quiet)
        moorage = runs[:2]
        quiet()
        skopeo = skopeo_runs(site, source, names, work, quiet)
        quiet()
        with httpx.Client(base_url=site.url, auth=site.auth, timeout=60) as client:
            catalog = client.get("/v2/_catalog", params={"n": 10000}).json()["repositories"]
        result = {
            "images": args.images,
            "scan_on_push": args.scan_on_push,
            "blobs": args.images * args.layers + args.images - (args.images - 1),
            "bytes": args.images * args.layers * args.layer_kib * 1024,
            "moorage_seconds": moorage,
            "skopeo_sync_seconds": skopeo,
            "first_run_speedup": skopeo[0] / moorage[0],
            "nothing_new_speedup": skopeo[1] / moorage[1],
            "moorage_nothing_new_seconds": runs[1:],
            "nothing_new_median_speedup": skopeo[1] / statistics.median(runs[1:]),
            "repl_repositories": sum(1 for r in catalog if r.startswith("repl/")),
            "sync_repositories": sum(1 for r in catalog if r.startswith("sync/")),
            "settle_seconds": [round(w, 2) for w in waits],
        }
        print(json.dumps(result, indent=2))
        if args.output is not None:
            with args.output.open("a", encoding="utf-8") as out:
                out.write(json.dumps({"code": args.label, **result}) + "\n")
        return result
    finally:
        for item in reversed(started):
            item.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
