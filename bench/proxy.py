"""Pull-through cache: cold and warm pulls through Moorage and through docker-registry.

``python -m bench.proxy [--images 10] [--layers 4] [--layer-mib 16] [--repeats 5]`` starts
Debian's ``docker-registry`` as the upstream and fills it with ``images`` images of
``layers`` random layers each, then starts two caches of it side by side:

- ``docker-registry`` in its own proxy mode (``proxy.remoteurl``);
- Moorage with a proxy project bound to an endpoint of the upstream.

Each repetition starts both caches empty and pulls the whole set through each of them
twice with one ``skopeo sync`` into a directory (after an ``os.sync()``, so no pull pays
for the dirty pages of the ones before): the first pull is cold (every manifest
and blob comes from the upstream while the cache writes it), the second warm (within
Moorage's freshness time; distribution checks its cached tags in its own way). The
cases alternate which cache goes first. Medians are printed as JSON lines with ``ratio``
= docker-registry's seconds / Moorage's (above 1: Moorage is faster). Each line also
carries ``cpu_seconds``: per cache, the medians of the CPU (user + system) its own
processes, the upstream's and ``skopeo``'s used during the pulls, read from ``/proc``
and the reaped client's usage, which says whose work a pull's time is. Nothing here
asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.procmem import ProcFs
from tests.replication.rig import push_image
from tests.services.docker_registry import DockerRegistry, start_docker_registry
from tests.services.moorage import MoorageServer, start_moorage
from tests.services.tools import find_tool

#: Bound of one ``skopeo sync`` (seconds).
SKOPEO_TIMEOUT = 1800
PROXY_PROJECT = "hub"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Pull:
    """One ``skopeo sync``: its seconds and the CPU seconds each side used meanwhile."""

    seconds: float
    cache_cpu: float
    upstream_cpu: float
    client_cpu: float


@dataclass(frozen=True)
class Cache:
    """A running cache and how ``skopeo sync`` names and logs in to it."""

    name: str
    host_port: str
    prefix: str
    credentials: tuple[str, str] | None
    stop: Any


def populate(upstream: DockerRegistry, images: int, layers: int, layer_bytes: int) -> list[str]:
    """Push the image set into the upstream; its repository names (tag ``1`` each)."""
    names = []
    for number in range(images):
        name = f"bench/img{number:03d}"
        push_image(
            upstream.url, name, "1", [os.urandom(layer_bytes) for _ in range(layers)], note=name
        )
        names.append(name)
    return names


def _distribution_cache(work: Path, upstream: DockerRegistry) -> Cache:
    registry = start_docker_registry(work, proxy_url=upstream.url)
    return Cache("docker-registry", registry.host_port, "", None, registry.stop)


def _moorage_cache(work: Path, upstream: DockerRegistry) -> Cache:
    env = {
        "MOORAGE_DATA_DIR": str(work / "data"),
        "MOORAGE_OUTBOUND__ALLOW": '["127.0.0.0/8"]',
        "MOORAGE_OUTBOUND__ALLOW_HTTP": "true",
        "MOORAGE_PROXY__REFRESH_SECONDS": "0.5",
    }
    server: MoorageServer = start_moorage(work, env)
    auth = (server.admin_username, server.admin_password)
    with httpx.Client(base_url=server.url, auth=auth, timeout=60) as admin:
        endpoint = {"name": "upstream", "url": upstream.url, "type": "distribution"}
        admin.post("/api/v1/registries", json=endpoint).raise_for_status()
        admin.post("/api/v1/projects", json={"name": PROXY_PROJECT}).raise_for_status()
        admin.put(
            f"/api/v1/projects/{PROXY_PROJECT}/proxy",
            json={"endpoint": "upstream", "freshness_seconds": 3600},
        ).raise_for_status()
    # NOTE: the API's other worker processes see a new binding within refresh_seconds
    time.sleep(1.5)
    host_port = server.url.removeprefix("http://")
    return Cache("moorage", host_port, f"{PROXY_PROJECT}/", auth, server.stop)


def _port(host_port: str) -> int:
    return int(host_port.rsplit(":", 1)[1])


def _cpu(procfs: ProcFs, pids: list[int]) -> float:
    return sum(procfs.cpu_seconds(pids))


def measured_pull(
    cache: Cache, upstream: DockerRegistry, names: list[str], work: Path, procfs: ProcFs
) -> Pull:
    """One :func:`pull_all` with the CPU of the cache, the upstream and ``skopeo``."""
    cache_pids = procfs.server_pids(_port(cache.host_port))
    upstream_pids = procfs.server_pids(upstream.port)
    before = (_cpu(procfs, cache_pids), _cpu(procfs, upstream_pids))
    client = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = pull_all(cache, names, work)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Pull(
        seconds,
        _cpu(procfs, cache_pids) - before[0],
        _cpu(procfs, upstream_pids) - before[1],
        reaped.ru_utime + reaped.ru_stime - client.ru_utime - client.ru_stime,
    )


def pull_all(cache: Cache, names: list[str], work: Path) -> float:
    """Seconds of one ``skopeo sync`` of every image through ``cache`` into a new directory."""
    skopeo = find_tool("skopeo")
    home = work / f"skopeo-{secrets.token_hex(3)}"
    home.mkdir()
    (home / "policy.json").write_text(
        '{"default": [{"type": "insecureAcceptAnything"}]}', encoding="utf-8"
    )
    source: dict[str, Any] = {
        "tls-verify": False,
        "images": {f"{cache.prefix}{name}": ["1"] for name in names},
    }
    if cache.credentials is not None:
        source["credentials"] = dict(zip(("username", "password"), cache.credentials, strict=True))
    spec = home / "sync.yaml"
    spec.write_text(json.dumps({cache.host_port: source}), encoding="utf-8")  # JSON is YAML
    target = home / "pulled"
    target.mkdir()
    env = {**os.environ, "HOME": str(home), "REGISTRY_AUTH_FILE": str(home / "auth.json")}
    argv = [
        skopeo, "--policy", str(home / "policy.json"), "sync", "--src", "yaml",
        "--dest", "dir", "--all", str(spec), str(target),
    ]  # fmt: skip
    # NOTE: each pull starts with no dirty pages pending: the caches and skopeo write
    # gigabytes per round, and whichever pull crosses the kernel's writeback threshold
    # would otherwise be throttled for the writes of the pulls before it
    os.sync()
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, check=False, timeout=SKOPEO_TIMEOUT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"skopeo sync through {cache.name} failed: {done.stderr[-2000:]}")
    shutil.rmtree(home, ignore_errors=True)
    return seconds


def one_round(
    work: Path, upstream: DockerRegistry, names: list[str], flip: bool
) -> dict[str, list[Pull]]:
    """Cold then warm pulls through fresh caches; ``flip`` measures Moorage first."""
    makers = [_distribution_cache, _moorage_cache]
    if flip:
        makers.reverse()
    procfs = ProcFs()
    pulls: dict[str, list[Pull]] = {}
    for make in makers:
        cache = make(work / f"{make.__name__}-{secrets.token_hex(3)}", upstream)
        try:
            pulls[cache.name] = [
                measured_pull(cache, upstream, names, work, procfs) for _ in range(2)
            ]
        finally:
            cache.stop()
    return pulls


def _cpu_medians(pulls: list[Pull]) -> dict[str, float]:
    return {
        side: round(statistics.median(getattr(pull, f"{side}_cpu") for pull in pulls), 3)
        for side in ("cache", "upstream", "client")
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mib", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    upstream = start_docker_registry(work / "upstream")
    try:
        names = populate(upstream, args.images, args.layers, args.layer_mib * MIB)
        rounds = [one_round(work, upstream, names, flip=i % 2 == 1) for i in range(args.repeats)]
        lines = []
        for index, case in enumerate(("cold", "warm")):
            moorage = statistics.median(r["moorage"][index].seconds for r in rounds)
            peer = statistics.median(r["docker-registry"][index].seconds for r in rounds)
            line = {
                "case": f"proxy-{case}",
                "images": args.images,
                "bytes": args.images * args.layers * args.layer_mib * MIB,
                "moorage_seconds": round(moorage, 3),
                "docker_registry_seconds": round(peer, 3),
                "ratio": round(peer / moorage, 3),
                "runs": [{k: round(v[index].seconds, 3) for k, v in r.items()} for r in rounds],
                "cpu_seconds": {
                    name: _cpu_medians([r[name][index] for r in rounds])
                    for name in ("moorage", "docker-registry")
                },
            }
            print(json.dumps(line), flush=True)
            lines.append(line)
        return lines
    finally:
        upstream.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
