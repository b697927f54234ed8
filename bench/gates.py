"""What the pull policies cost on manifest GETs: vulnerability and trust gates (issues 11, 12).

``python -m bench.gates [--requests N] [--repeats R] [--clients 32] [--no-caches]``
starts one Temporal dev server and one Moorage (``moorage api`` with its default workers
and ``moorage worker``, SQLite + filesystem, as ``tests.replication.rig`` starts a site),
then makes four projects holding the same kind of image, a Debian layer the worker scans
on push:

* ``open``: no pull policy (the baseline);
* ``vuln``: the vulnerability pull policy (``prevent_severity`` Critical); the image is
  scanned and has no finding, so its pulls are allowed after the gate read its report
  and the allowlists;
* ``trust``: an enforced trust policy asking for one signer; the image carries a cosign
  signature (tag scheme) made with the policy's key, verified by the worker;
* ``both``: both policies.

Each project's image is pulled by that project's pull-only robot (the pusher is exempt
from the trust policy, so the admin's pulls would not be gated), by tag, from
``--clients`` concurrent clients. The projects run one after the other, their order
reversed every other repetition. Reported per project: requests per second and the API's
CPU seconds per 10,000 GETs (main process and server workers, from ``/proc``), and the
change of both against ``open`` (medians). Every GET must answer 200, so every gated
request was allowed by a gate that looked. ``--no-caches`` sets the trust verdict cache to
0 s (each GET reads the stored results), the worst case of that gate; the vulnerability
gate keeps no verdicts.

Run from the repository root; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import httpx

from bench.cases import Side
from bench.client import Credentials, RegistryClient, Target
from bench.observability import Run
from bench.procmem import ProcFs, process_tree
from bench.runner import log
from tests.api.oci import OCI_CONFIG, OCI_MANIFEST, OCIClient, digest_of
from tests.integration.scan_rig import debian_layer
from tests.integration.trust_rig import push_signature, results
from tests.replication.rig import Site, start_site
from tests.services.temporal import start_temporal
from tests.unit.core.trust_fixtures import new_key, public_pem

if TYPE_CHECKING:
    from collections.abc import Sequence

PROJECTS: Final = ("open", "vuln", "trust", "both")
TAG: Final = "v1"
LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
#: Bound of each wait for the worker (scan, verification).
WAIT_S: Final = 300.0


@dataclass
class Gated:
    """One project: its repository, its pull-only robot and the image's digest."""

    kind: str
    repo: str
    robot: Credentials
    digest: str


def _push(oci: OCIClient, repo: str, raw: bytes) -> str:
    """Push a one-layer image (gzip, with its diff id) as ``TAG``; its digest."""
    blob = gzip.compress(raw, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [digest_of(raw)]},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": oci.push_blob(repo, config),
            "size": len(config),
        },
        "layers": [
            {"mediaType": LAYER_GZIP, "digest": oci.push_blob(repo, blob), "size": len(blob)}
        ],
    }
    payload = json.dumps(manifest).encode()
    answer = oci.put_manifest(repo, TAG, payload)
    if answer.status_code != 201:
        raise SystemExit(f"push of {repo}: HTTP {answer.status_code}: {answer.text}")
    return digest_of(payload)


def _until(check: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise SystemExit(f"timed out waiting for {what}")


def _admin(oci: OCIClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    answer = oci.client.request(method, path, auth=(oci.username, oci.password), **kwargs)
    if not answer.is_success:
        raise SystemExit(f"{method} {path}: HTTP {answer.status_code}: {answer.text}")
    return answer


def _scanned(oci: OCIClient, project: str, digest: str) -> bool:
    answer = oci.client.get(
        f"/api/v1/projects/{project}/scans/{digest}", auth=(oci.username, oci.password)
    )
    if answer.status_code != 200:
        return False
    status = answer.json()["status"]
    if status == "failed":
        raise SystemExit(f"the scan of {project}@{digest} failed: {answer.text}")
    return bool(status == "succeeded")


def prepare(site: Site, kind: str) -> Gated:
    """Make the ``kind`` project, its image, its policies and its robot (see the module)."""
    oci = OCIClient(httpx.Client(base_url=site.url, timeout=60), site.auth[1], site.auth[0])
    with contextlib.closing(oci.client):
        project = f"gate-{kind}-{secrets.token_hex(3)}"
        _admin(oci, "POST", "/api/v1/projects", json={"name": project, "public": False})
        repo = f"{project}/app"
        digest = _push(oci, repo, debian_layer("amd64", f"\n# {project}\n"))
        _until(lambda: _scanned(oci, project, digest), f"the scan of {repo}")
        if kind in ("trust", "both"):
            key = new_key()
            push_signature(oci, repo, digest, key)
            policy = {
                "keys": [{"name": "ci", "public_key": public_pem(key)}],
                "signatures": {"required_signers": 1, "signers": ["ci"]},
            }
            _admin(oci, "PUT", f"/api/v1/projects/{project}/trust/policy", json=policy)
            _until(
                lambda: any(r["verified"] for r in results(oci, repo, digest)),
                f"the signature of {repo} verified",
            )
        if kind in ("vuln", "both"):
            policy = {"prevent_severity": "Critical"}
            _admin(oci, "PUT", f"/api/v1/projects/{project}/scan-policy", json=policy)
        made = _admin(
            oci,
            "POST",
            f"/api/v1/projects/{project}/robots",
            json={"name": "puller", "permissions": [{"repository": "*", "actions": ["pull"]}]},
        ).json()
        return Gated(kind, repo, Credentials(str(made["name"]), str(made["secret"])), digest)


async def _gets(side: Side, repo: str, count: int, clients: int) -> None:
    left = count

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await side.client.manifest("GET", repo, TAG)

    await asyncio.gather(*(client() for _ in range(clients)))


async def _measure(pid: int, side: Side, gated: Gated, rep: int, args: argparse.Namespace) -> Run:
    procfs = ProcFs()
    pids = process_tree(pid, procfs.stats())
    await side.client.refresh_token([gated.repo])
    user_before, system_before = procfs.cpu_seconds(pids)
    started = time.perf_counter()
    await _gets(side, gated.repo, args.requests, args.clients)
    seconds = time.perf_counter() - started
    user, system = procfs.cpu_seconds(pids)
    cpu = user - user_before + system - system_before
    load1 = os.getloadavg()[0]
    return Run(gated.kind, rep, args.requests, seconds, cpu, system - system_before, load1)


async def _run(site: Site, projects: Sequence[Gated], args: argparse.Namespace) -> list[Run]:
    runs: list[Run] = []
    async with contextlib.AsyncExitStack() as stack:
        sides = []
        for gated in projects:
            target = Target(gated.kind, site.url, gated.robot)
            client = await stack.enter_async_context(RegistryClient(target, args.clients))
            side = Side(target, client)
            await client.refresh_token([gated.repo])
            await _gets(side, gated.repo, args.warmup, args.clients)
            sides.append((side, gated))
        for rep in range(args.repeats):
            order = sides if rep % 2 == 0 else sides[::-1]
            for side, gated in order:
                run = await _measure(site.api.pid, side, gated, rep, args)
                runs.append(run)
                print(json.dumps(run.to_dict()), flush=True)
                log(f"{run.config} rep {rep}: {run.rate:.0f} req/s, {run.cpu_per:.3f} CPU-s/10k")
    return runs


def summaries(runs: Sequence[Run], caches: bool) -> list[dict[str, Any]]:
    """Each project's medians and their change against ``open``."""
    rows = []
    base = [r for r in runs if r.config == "open"]
    base_rate = statistics.median(r.rate for r in base)
    base_cpu = statistics.median(r.cpu_per for r in base)
    for kind in PROJECTS:
        mine = [r for r in runs if r.config == kind]
        rate = statistics.median(r.rate for r in mine)
        cpu = statistics.median(r.cpu_per for r in mine)
        rows.append(
            {
                "kind": "project",
                "project": kind,
                "trust_verdict_cache": caches,
                "runs": len(mine),
                "req_s": round(rate, 1),
                "cpu_s_per_10k": round(cpu, 4),
                "rate_change_pct": round((rate / base_rate - 1) * 100, 1),
                "cpu_change_pct": round((cpu / base_cpu - 1) * 100, 1),
                "load1_max": round(max(r.load1 for r in mine), 2),
            }
        )
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        f"{'project':<8} {'req/s':>8} {'CPU-s/10k':>10} {'req/s vs open':>14} {'CPU vs open':>12}"
    )
    lines = [head, "-" * len(head)]
    lines += [
        f"{row['project']:<8} {row['req_s']:>8.0f} {row['cpu_s_per_10k']:>10.3f} "
        f"{row['rate_change_pct']:>+13.1f}% {row['cpu_change_pct']:>+11.1f}%"
        for row in rows
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gates",
        description="Manifest GETs of projects without and with pull policies.",
    )
    parser.add_argument("--requests", type=int, default=20_000, help="GETs per run")
    parser.add_argument("--warmup", type=int, default=2_000, help="GETs before the runs")
    parser.add_argument("--repeats", type=int, default=3, help="runs per project")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--no-caches", action="store_true", help="trust verdict cache off (0 s)")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (0 when every GET was answered 200)."""
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="moorage-gatebench-"))
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        temporal = start_temporal(workdir / "temporal")
        stack.callback(temporal.stop)
        extra = {"MOORAGE_TRUST__VERDICT_CACHE_SECONDS": "0"} if args.no_caches else {}
        site = start_site(workdir / "site", temporal.address, **extra)
        stack.callback(site.stop)
        log(f"moorage api pid {site.api.pid} at {site.url}")
        projects = [prepare(site, kind) for kind in PROJECTS]
        runs = asyncio.run(_run(site, projects, args))
        rows = summaries(runs, not args.no_caches)
        for row in rows:
            print(json.dumps(row), flush=True)
        print()
        print(table(rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
