"""Benchmark Moorage against its peers in one run: ``python -m bench [--quick]``.

The peers are Debian's ``docker-registry`` (distribution 2.8) and CNCF distribution v3.1.2
(``scripts/install-tools`` builds it). All registries run on 127.0.0.1 at the
same time and are driven by the same clients: this process's asyncio client for blobs and
images, ``wrk`` and ``ab`` for the manifest request rates (``bench.native_load`` says why; ``--load
python`` sends those from the asyncio client too). Each case runs on one registry after
the other, alternating the order between repetitions. Results go to stdout as one JSON
object per line (``ratio`` against the faster peer, ``ratio_<peer>`` against each), then
as a table. Moorage keeps its metadata in SQLite unless ``--database postgres`` starts a
PostgreSQL server for it (the peers keep none).
Run from the repository root: the registries are started by ``tests.services``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import json
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cases import FULL, QUICK, Case, Context, Scale, Side, measure_sha256_rate
from bench.client import Credentials, RegistryClient, Target
from bench.payloads import MIB, PayloadFactory
from bench.report import CaseResult, table
from bench.runner import Deadlines, log, run_all
from bench.suite import all_cases
from tests.services.distribution import start_distribution
from tests.services.docker_registry import S3Storage, start_docker_registry
from tests.services.moorage import start_moorage
from tests.services.postgres import start_postgres
from tests.services.seaweedfs import start_seaweedfs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tests.services.s3 import S3Server

#: Time for the cases; deleting the scratch data (up to about 30 GB) comes on top.
FULL_BUDGET_S = 13.5 * 60.0
QUICK_BUDGET_S = 100.0
POOL_SIZE = 64
#: The peers ``--peers`` may name, in run order.
PEERS = ("docker-registry", "distribution")
#: The bucket every registry shares on the S3 backend, each under its own prefix.
S3_BUCKET = "bench"


def select_cases(cases: Sequence[Case], pattern: str | None) -> list[Case]:
    """Keep the cases matching ``pattern``.

    Args:
        cases: All cases.
        pattern: Comma-separated shell globs; a part without ``*?[`` matches as a substring.
            ``None`` keeps everything.

    Returns:
        The matching cases in run order.
    """
    if not pattern:
        return list(cases)
    parts = [part.strip() for part in pattern.split(",") if part.strip()]

    def matches(name: str) -> bool:
        for part in parts:
            if any(c in part for c in "*?["):
                if fnmatch.fnmatchcase(name, part):
                    return True
            elif part in name:
                return True
        return False

    return [case for case in cases if matches(case.name)]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmark Moorage against its peers."
    )
    parser.add_argument("--quick", action="store_true", help="sizes / 16, short durations")
    parser.add_argument("--cases", help="comma-separated globs or substrings of case names")
    parser.add_argument(
        "--backend",
        choices=["filesystem", "s3"],
        default="filesystem",
        help="where both registries keep blobs; s3 starts SeaweedFS's S3 gateway for both",
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="Moorage's metadata database; postgres starts a PostgreSQL server for it",
    )
    parser.add_argument(
        "--s3-redirect",
        action="store_true",
        help="with --backend s3: both registries answer blob GETs with presigned redirects",
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="comma-separated peers to run beside Moorage (default: docker-registry,distribution)",
    )
    parser.add_argument(
        "--load",
        choices=["native", "python"],
        default="native",
        help="who sends the request-rate cases' requests: wrk and ab (native, the default) "
        "or this process's Python client",
    )
    parser.add_argument("--repeats", type=int, help="repetitions per case (median reported)")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument("--list", action="store_true", help="list case names and exit")
    parser.add_argument(
        "--plot", type=Path, metavar="FILE.png", help="also draw the ratios (needs matplotlib)"
    )
    # Development aids: measure docker-registry on both sides, or use running registries.
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--moorage-url", help=argparse.SUPPRESS)
    parser.add_argument("--moorage-user", default="admin", help=argparse.SUPPRESS)
    parser.add_argument("--moorage-password", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _start_s3(workdir: Path, stack: contextlib.ExitStack) -> S3Server:
    server = start_seaweedfs(workdir / "seaweedfs", S3_BUCKET)
    stack.callback(server.stop)
    log(f"seaweedfs pid {server.pid}, S3 at {server.endpoint_url}")
    return server


def _moorage_database_env(
    args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack
) -> dict[str, str]:
    """Moorage's database settings: SQLite in its data directory, or a PostgreSQL started here."""
    if args.database != "postgres":
        return {}
    postgres = start_postgres(workdir / "postgres")
    stack.callback(postgres.stop)
    log(f"postgresql pid {postgres.pid} for moorage")
    return {"MOORAGE_DATABASE_URL": postgres.create_database("bench_moorage")}


def _moorage_storage_env(args: argparse.Namespace, s3: S3Server | None) -> dict[str, str]:
    if s3 is None:
        return {"MOORAGE_STORAGE": "filesystem"}
    return {
        "MOORAGE_STORAGE": "s3",
        "MOORAGE_S3__ENDPOINT_URL": s3.endpoint_url,
        "MOORAGE_S3__BUCKET": S3_BUCKET,
        "MOORAGE_S3__KEY_PREFIX": "moorage/",
        "MOORAGE_S3__ACCESS_KEY_ID": s3.access_key_id,
        "MOORAGE_S3__SECRET_ACCESS_KEY": s3.secret_access_key,
        "MOORAGE_S3__REDIRECT_PULLS": "true" if args.s3_redirect else "false",
    }


def _start_targets(
    args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack
) -> list[Target]:
    """Start (or point at) Moorage and docker-registry; stopping is left to ``stack``."""
    s3 = _start_s3(workdir, stack) if args.backend == "s3" else None
    if args.baseline_url:
        baseline = Target("baseline", args.baseline_url)
    else:
        facts = None
        if s3 is not None:
            facts = S3Storage(s3.endpoint_url, S3_BUCKET, s3.access_key_id, s3.secret_access_key)
        registry = start_docker_registry(workdir / "baseline", facts, redirect=args.s3_redirect)
        stack.callback(registry.stop)
        log(f"docker-registry pid {registry.pid} at {registry.url}")
        baseline = Target("baseline", registry.url)
    if args.moorage_url:
        creds = None
        if args.moorage_password:
            creds = Credentials(args.moorage_user, args.moorage_password)
        moorage = Target("moorage", args.moorage_url, creds)
    elif args.baseline_only:
        registry = start_docker_registry(workdir / "baseline-as-moorage")
        stack.callback(registry.stop)
        log(f"docker-registry (standing in for moorage) pid {registry.pid} at {registry.url}")
        moorage = Target("moorage", registry.url)
    else:
        moorage_dir = workdir / "moorage"
        env = {
            "MOORAGE_DATA_DIR": str(moorage_dir / "data"),
            "MOORAGE_AUTH__ADMIN_PASSWORD": secrets.token_urlsafe(18),
            "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
            **_moorage_storage_env(args, s3),
            **_moorage_database_env(args, workdir, stack),
        }
        server = start_moorage(moorage_dir, env)
        stack.callback(server.stop)
        log(f"moorage pid {server.pid} at {server.url}")
        moorage = Target(
            "moorage", server.url, Credentials(server.admin_username, server.admin_password)
        )
    targets = [moorage, baseline]
    if "distribution" in _peers(args):
        facts = None
        if s3 is not None:
            facts = S3Storage(
                s3.endpoint_url,
                S3_BUCKET,
                s3.access_key_id,
                s3.secret_access_key,
                root_directory="/distribution-v3",
            )
        peer = start_distribution(workdir / "distribution", facts, redirect=args.s3_redirect)
        stack.callback(peer.stop)
        log(f"distribution v3 pid {peer.pid} at {peer.url}")
        targets.append(Target("distribution", peer.url))
    return targets


def _peers(args: argparse.Namespace) -> list[str]:
    peers = [part.strip() for part in str(args.peers).split(",") if part.strip()]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown or "docker-registry" not in peers:
        raise SystemExit(f"--peers: docker-registry plus any of {', '.join(PEERS)}; got {peers}")
    return peers


async def _run(
    cases: Sequence[Case], ctx: Context, targets: Sequence[Target], budget_s: float
) -> list[CaseResult]:
    deadlines = Deadlines.within(budget_s)

    def emit(result: CaseResult) -> None:
        print(result.to_json(), flush=True)

    async with contextlib.AsyncExitStack() as stack:
        sides = [
            Side(target, await stack.enter_async_context(RegistryClient(target, POOL_SIZE)))
            for target in targets
        ]
        return await run_all(cases, ctx, sides, deadlines, emit)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 when every case produced both figures, 1 otherwise.
    """
    args = parse_args(argv)
    _peers(args)
    if args.list:
        print("\n".join(case.name for case in all_cases()))
        return 0
    cases = select_cases(all_cases(), args.cases)
    if not cases:
        print(f"no case matches {args.cases!r}; see --list", file=sys.stderr)
        return 2
    scale: Scale = QUICK if args.quick else FULL
    if args.repeats:
        scale = replace(scale, repeats=max(1, min(args.repeats, 10)))
    budget = QUICK_BUDGET_S if args.quick else FULL_BUDGET_S
    own_workdir = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="moorage-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        payloads = PayloadFactory(scale.size(64 * MIB))
        sha256_rate = measure_sha256_rate(payloads, scale.size(256 * MIB))
        log(f"hashlib.sha256: {sha256_rate:.0f} MB/s; workdir {workdir}")
        ctx = Context(
            scale=scale,
            payloads=payloads,
            workdir=workdir,
            sha256_rate=sha256_rate,
            load=args.load,
        )
        with contextlib.ExitStack() as stack:
            targets = _start_targets(args, workdir, stack)
            results = asyncio.run(_run(cases, ctx, targets, budget))
        print()
        print(table(results), flush=True)
        if args.plot is not None:
            from bench.plot import plot  # noqa: PLC0415 - matplotlib only when asked for

            plot([json.loads(result.to_json()) for result in results], args.plot)
            log(f"plot written to {args.plot}")
        log(f"cases done in {time.monotonic() - started:.0f} s")
    finally:
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
            log(f"scratch data deleted; total {time.monotonic() - started:.0f} s")
    ok = all(
        r.error is None
        and r.moorage is not None
        and r.baseline is not None
        and all(value is not None for value in r.others.values())
        for r in results
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
