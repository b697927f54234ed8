"""What metrics, the access log and tracing cost on manifest GETs (issue 15).

``python -m bench.observability [--requests N] [--repeats R] [--configs off,defaults,tracing]``
starts one Moorage per configuration (SQLite + filesystem, ``moorage api`` with its default
workers, the same way ``python -m bench`` starts it) and sends each the same manifest GETs
by tag from 32 clients (``--clients``):

* ``off``: metrics and the access log off (tracing is off by default);
* ``defaults``: the shipped defaults, metrics and one access line per request;
* ``tracing``: the defaults plus tracing, every request sampled, exported over OTLP/HTTP
  to a receiver in this process that decodes and counts the spans;
* ``tracing10``: the same with one trace in ten sampled (the README's example);
* ``tracing1``: the same with one trace in a hundred sampled;
* ``tracing0``: tracing on, nothing sampled (what tracing costs a request it does not trace);
* ``metrics`` and ``access``: one of the two alone, to tell their costs apart.

The issue's figure is what metrics and tracing add: each configuration against ``access``
(the access log on as by default, metrics and tracing off), as ``CPU vs access``; the
access log's own cost is ``access`` against ``off``.

The figure compared is the server's CPU time per 10,000 requests: user plus system seconds
of the ``moorage api`` process tree (main process and server workers, reaped children
included) read from ``/proc/<pid>/stat`` before and after the requests. Unlike requests per
second it barely moves with other load on the machine. Requests per second are reported
too, with the 1-minute load average at the end of each run. Configurations run one after
the other, their order reversed every other repetition; medians are reported.

After the runs each server is stopped and checked: its access log holds one line per GET
sent (so lines written through a buffer are not lost at shutdown), ``/metrics`` counted
every GET, and the receiver got a span for every GET.

``--rate REQ_S`` paces the GETs so every configuration is sent the same load (CPU per
request falls as a server is sent more requests a second, so a configuration that slows
the server would otherwise also be measured at a worse operating point).
``--instances N`` starts N servers per configuration (``NAME#1`` ...): two servers of the
same code have differed by 16% in CPU per request over 20 paired repetitions (how the
clients' connections fall on a server's workers is one candidate), so with one server
per configuration such a difference is taken for the configuration's cost. Each summary
also gives a 95% bootstrap interval of the paired overhead (``paired_ci95_pct``).

``--compare DIR`` also runs each configuration from another source tree (a checkout of an
earlier commit), named ``<config>@before``, in the same runs: a before and after measured
under the same load.

Output: one JSON object per run and per configuration on stdout, then a table.
Run from the repository root: the servers are started by ``tests.services``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.cases import Side, small_image
from bench.client import Credentials, RegistryClient, Target
from bench.procmem import ProcFs, process_tree
from bench.runner import log
from tests.services.moorage import REPO_ROOT, MoorageServer, start_moorage
from tests.services.otlp import OtlpReceiver

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

REPO: Final = "bench/observed"
TAG: Final = "latest"
MANIFEST_ROUTE: Final = "/v2/{name}/manifests/{reference}"
PER: Final = 10_000
SCRAPES: Final = 10
_OBSERVABILITY: Final = "MOORAGE_OBSERVABILITY__"
#: The environment of each configuration (on top of the data directory and password).
CONFIGS: Final[dict[str, dict[str, str]]] = {
    "off": {
        f"{_OBSERVABILITY}METRICS__ENABLED": "false",
        f"{_OBSERVABILITY}LOGS__ACCESS": "false",
    },
    "metrics": {f"{_OBSERVABILITY}LOGS__ACCESS": "false"},
    "access": {f"{_OBSERVABILITY}METRICS__ENABLED": "false"},
    "defaults": {},
    "tracing": {
        f"{_OBSERVABILITY}TRACING__ENABLED": "true",
        f"{_OBSERVABILITY}TRACING__SAMPLE_RATIO": "1.0",
    },
    "tracing10": {
        f"{_OBSERVABILITY}TRACING__ENABLED": "true",
        f"{_OBSERVABILITY}TRACING__SAMPLE_RATIO": "0.1",
    },
    "tracing1": {
        f"{_OBSERVABILITY}TRACING__ENABLED": "true",
        f"{_OBSERVABILITY}TRACING__SAMPLE_RATIO": "0.01",
    },
    "tracing0": {
        f"{_OBSERVABILITY}TRACING__ENABLED": "true",
        f"{_OBSERVABILITY}TRACING__SAMPLE_RATIO": "0.0",
    },
}
DEFAULT_CONFIGS: Final = ("off", "access", "defaults", "tracing10", "tracing")
#: The suffix of a configuration run from the ``--compare`` source tree.
BEFORE: Final = "@before"
#: Between a configuration and the number of one of its servers (``--instances``).
INSTANCE: Final = "#"
_SAMPLE = re.compile(r"^moorage_http_request_total\{(?P<labels>.*)\} (?P<value>\S+)$")


class SpanReceiver:
    """An OTLP/HTTP traces endpoint on loopback that counts the spans it is sent."""

    def __init__(self) -> None:
        self.spans = 0
        self.exports = 0
        self._lock = threading.Lock()
        self._receiver = OtlpReceiver(self._add)

    @property
    def url(self) -> str:
        """The ``/v1/traces`` URL to export to."""
        return self._receiver.url

    def _add(self, headers: Mapping[str, str], request: ExportTraceServiceRequest) -> None:
        """Count one export."""
        del headers
        spans = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with self._lock:
            self.spans += spans
            self.exports += 1

    def close(self) -> None:
        """Stop serving."""
        self._receiver.close()


@dataclass
class Run:
    """One measured batch of GETs against one configuration."""

    config: str
    rep: int
    requests: int
    seconds: float
    cpu_s: float
    system_s: float
    load1: float

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds

    @property
    def cpu_per(self) -> float:
        """Server CPU seconds per :data:`PER` requests."""
        return self.cpu_s * PER / self.requests

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the run."""
        return {
            "kind": "run",
            "config": self.config,
            "rep": self.rep,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "req_s": round(self.rate, 1),
            "cpu_s": round(self.cpu_s, 3),
            "system_s": round(self.system_s, 3),
            "cpu_s_per_10k": round(self.cpu_per, 4),
            "load1": round(self.load1, 2),
        }


@dataclass
class Served:
    """One configuration's running server, its client and what was sent to it."""

    config: str
    server: MoorageServer
    side: Side
    sent: int = 0
    checks: dict[str, Any] = field(default_factory=dict)


async def _gets(side: Side, count: int, clients: int, rate: float | None = None) -> None:
    """Send ``count`` manifest GETs by tag from ``clients`` concurrent clients.

    With ``rate``, the GETs are paced: the n-th is not sent before ``n / rate`` seconds
    after the first (a client that falls behind sends at once, so a server slower than
    ``rate`` is loaded as without it).
    """
    left = count
    started = time.perf_counter()

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            if rate is not None:
                due = started + (count - left) / rate - time.perf_counter()
                if due > 0:
                    await asyncio.sleep(due)
            await side.client.manifest("GET", REPO, TAG)

    await asyncio.gather(*(client() for _ in range(clients)))


async def _gets_until(side: Side, deadline: float, clients: int) -> int:
    """Send manifest GETs from ``clients`` concurrent clients until ``deadline``; how many."""
    sent = 0

    async def client() -> None:
        nonlocal sent
        while time.perf_counter() < deadline:
            await side.client.manifest("GET", REPO, TAG)
            sent += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return sent


async def measure_together(
    served: Sequence[Served], rep: int, seconds: float, clients: int
) -> list[Run]:
    """Load every server at once for ``seconds``, each from its own ``clients`` clients.

    All servers run under the same conditions at the same moments, so what the machine
    does meanwhile (other work, a slower period) weighs on each of them alike; each
    server's CPU time is read right before and right after the common window.
    """
    procfs = ProcFs()
    stats = procfs.stats()
    trees = [process_tree(one.server.pid, stats) for one in served]
    for one in served:
        await one.side.client.refresh_token([REPO])
    before = [procfs.cpu_seconds(pids) for pids in trees]
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(_gets_until(one.side, started + seconds, clients) for one in served)
    )
    elapsed = time.perf_counter() - started
    after = [procfs.cpu_seconds(pids) for pids in trees]
    load = os.getloadavg()[0]
    runs = []
    for one, count, (user0, system0), (user1, system1) in zip(
        served, counts, before, after, strict=True
    ):
        one.sent += count
        cpu = user1 - user0 + system1 - system0
        runs.append(Run(one.config, rep, count, elapsed, cpu, system1 - system0, load))
    return runs


async def measure(
    served: Served, rep: int, requests: int, clients: int, rate: float | None = None
) -> Run:
    """Send ``requests`` GETs (paced at ``rate``); the server's CPU time is read around them."""
    procfs = ProcFs()
    pids = process_tree(served.server.pid, procfs.stats())
    await served.side.client.refresh_token([REPO])
    user_before, system_before = procfs.cpu_seconds(pids)
    started = time.perf_counter()
    await _gets(served.side, requests, clients, rate)
    seconds = time.perf_counter() - started
    user, system = procfs.cpu_seconds(pids)
    served.sent += requests
    cpu = user - user_before + system - system_before
    return Run(
        served.config, rep, requests, seconds, cpu, system - system_before, os.getloadavg()[0]
    )


def tree_config(name: str) -> str:
    """A server's name without its instance number (``tracing@before#2``: ``tracing@before``)."""
    return name.partition(INSTANCE)[0]


def base_config(name: str) -> str:
    """The configuration of a server's name: without ``@before`` and an instance number."""
    return tree_config(name).removesuffix(BEFORE)


def _pair_key(run: Run) -> tuple[int, str]:
    """The repetition and server instance a run is paired on."""
    return run.rep, run.config.partition(INSTANCE)[2]


def summary(
    config: str, runs: Sequence[Run], off: Sequence[Run], access: Sequence[Run] = ()
) -> dict[str, Any]:
    """The medians of ``config``'s runs and their overhead over the ``off`` runs.

    With ``access`` runs, also the overhead over them (what metrics and tracing add to a
    server writing access lines): the ratio of the medians, and the median of each
    repetition's ratio (``cpu_vs_access_paired_pct``: with ``--together`` the two were
    measured in the same window, which is the figure that resists a busy machine); with
    ``--instances`` a run is paired with the access server of the same number.
    """
    rate = statistics.median(run.rate for run in runs)
    cpu = statistics.median(run.cpu_per for run in runs)
    result: dict[str, Any] = {
        "kind": "config",
        "config": config,
        "runs": len(runs),
        "req_s": round(rate, 1),
        "cpu_s_per_10k": round(cpu, 4),
        "load1_max": round(max(run.load1 for run in runs), 2),
    }
    if off:
        off_cpu = statistics.median(run.cpu_per for run in off)
        off_rate = statistics.median(run.rate for run in off)
        result["cpu_overhead_pct"] = round((cpu / off_cpu - 1) * 100, 1)
        result["rate_change_pct"] = round((rate / off_rate - 1) * 100, 1)
    if access:
        access_cpu = statistics.median(run.cpu_per for run in access)
        result["cpu_vs_access_pct"] = round((cpu / access_cpu - 1) * 100, 1)
        by_rep = {_pair_key(run): run.cpu_per for run in access}
        paired = [run.cpu_per / by_rep[_pair_key(run)] for run in runs if _pair_key(run) in by_rep]
        if paired:
            result["cpu_vs_access_paired_pct"] = round((statistics.median(paired) - 1) * 100, 1)
            low, high = median_interval(paired)
            result["paired_ci95_pct"] = [round((low - 1) * 100, 1), round((high - 1) * 100, 1)]
    return result


def median_interval(
    values: Sequence[float], *, resamples: int = 4000, seed: int = 15
) -> tuple[float, float]:
    """A 95% bootstrap interval of the median of ``values`` (percentiles of resampled medians).

    The interval takes the paired ratios as independent draws of what one repetition
    measures and says how far their median may be from what many more repetitions would
    give (a fixed seed, so a run's report can be recomputed from its raw lines). A server
    keeps an offset of its own over a run, so the repetitions of one server are alike: from
    few servers per configuration the interval comes out narrower than it should be.
    """
    draw = random.Random(seed)
    medians = sorted(
        statistics.median(draw.choices(values, k=len(values))) for _ in range(resamples)
    )
    return medians[int(resamples * 0.025)], medians[int(resamples * 0.975) - 1]


def table(summaries: Sequence[Mapping[str, Any]]) -> str:
    """A readable table of the per-configuration summaries."""
    head = (
        f"{'config':<16} {'req/s':>9} {'CPU-s/10k':>10} {'CPU vs off':>11} {'req/s vs off':>13}"
        f" {'CPU vs access':>14} {'paired':>8} {'95% interval':>16}"
    )
    lines = [head, "-" * len(head)]
    for row in summaries:
        overhead = row.get("cpu_overhead_pct")
        change = row.get("rate_change_pct")
        added = row.get("cpu_vs_access_pct")
        paired = row.get("cpu_vs_access_paired_pct")
        interval = row.get("paired_ci95_pct")
        lines.append(
            f"{row['config']:<16} {row['req_s']:>9.0f} {row['cpu_s_per_10k']:>10.3f} "
            f"{'' if overhead is None else f'{overhead:+.1f}%':>11} "
            f"{'' if change is None else f'{change:+.1f}%':>13} "
            f"{'' if added is None else f'{added:+.1f}%':>14} "
            f"{'' if paired is None else f'{paired:+.1f}%':>8} "
            f"{'' if interval is None else f'{interval[0]:+.1f}..{interval[1]:+.1f}%':>16}"
        )
    return "\n".join(lines)


def access_lines(log_text: str) -> int:
    """The access lines of manifest GETs answered 200 in a JSON log."""
    count = 0
    for line in log_text.splitlines():
        if '"moorage.access"' not in line:
            continue
        document = json.loads(line)
        if (
            document.get("route") == MANIFEST_ROUTE
            and document.get("method") == "GET"
            and document.get("status") == 200
        ):
            count += 1
    return count


def counted_gets(exposition: str) -> float:
    """``moorage_http_request_total`` of manifest GETs answered 200, from a scrape."""
    for line in exposition.splitlines():
        found = _SAMPLE.match(line)
        if found is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found["labels"]))
        if labels == {"operation": MANIFEST_ROUTE, "method": "GET", "code": "200"}:
            return float(found["value"])
    return 0.0


async def _scrape(served: Served) -> None:
    """Record the GETs ``/metrics`` counted, once it counts them all or after some tries.

    Each worker publishes its counts within a second; :data:`SCRAPES` tries, 0.5 s apart.
    """
    for _ in range(SCRAPES):
        async with served.side.client.session.get(f"{served.server.url}/metrics") as response:
            text = await response.text()
        if response.status != 200:
            return
        served.checks["metrics_counted"] = counted_gets(text)
        if served.checks["metrics_counted"] >= served.sent:
            return
        await asyncio.sleep(0.5)


async def serve(
    stack: contextlib.AsyncExitStack, name: str, server: MoorageServer, clients: int
) -> Served:
    """A client of ``clients`` connections for ``server``, its image pushed through it.

    The client is closed with ``stack``.
    """
    target = Target(name, server.url, Credentials(server.admin_username, server.admin_password))
    client = await stack.enter_async_context(RegistryClient(target, clients))
    side = Side(target, client)
    await small_image(side, REPO, TAG)
    return Served(name, server, side)


async def _run(
    servers: Sequence[tuple[str, MoorageServer]], args: argparse.Namespace
) -> tuple[list[Run], list[Served]]:
    runs: list[Run] = []
    async with contextlib.AsyncExitStack() as stack:
        served = [await serve(stack, config, server, args.clients) for config, server in servers]
        for one in served:
            await client_warmup(one, args)
        for rep in range(args.repeats):
            if args.together:
                batch = await measure_together(served, rep, args.together, args.clients)
            else:
                order = served if rep % 2 == 0 else served[::-1]
                batch = [
                    await measure(one, rep, args.requests, args.clients, args.rate) for one in order
                ]
            for run in batch:
                runs.append(run)
                print(json.dumps(run.to_dict()), flush=True)
                log(f"{run.config} rep {rep}: {run.rate:.0f} req/s, {run.cpu_per:.3f} CPU-s/10k")
        for one in served:
            await _scrape(one)
    return runs, served


async def client_warmup(served: Served, args: argparse.Namespace) -> None:
    """GETs not measured: connections, caches and the workers' first requests."""
    await served.side.client.refresh_token([REPO])
    await _gets(served.side, args.warmup, args.clients)
    served.sent += args.warmup


def _checks(served: Served, receiver: SpanReceiver | None) -> dict[str, Any]:
    """What the stopped server wrote and counted, against the GETs it was sent."""
    checks: dict[str, Any] = {"kind": "check", "config": served.config, "gets_sent": served.sent}
    env = CONFIGS[base_config(served.config)]
    if env.get(f"{_OBSERVABILITY}LOGS__ACCESS") != "false":
        text = served.server.log_path.read_text(encoding="utf-8", errors="replace")
        checks["access_lines"] = access_lines(text)
    checks.update(served.checks)
    if receiver is not None:
        sampled_all = base_config(served.config) == "tracing"
        checks["spans_received" if sampled_all else "sampled_spans"] = receiver.spans
        checks["spans_per_get"] = round(receiver.spans / served.sent, 4) if served.sent else 0.0
        checks["exports"] = receiver.exports
    return checks


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.observability",
        description="Server CPU per 10,000 manifest GETs with observability off and on.",
    )
    parser.add_argument("--requests", type=int, default=20_000, help="GETs per run")
    parser.add_argument("--warmup", type=int, default=2_000, help="GETs before the runs")
    parser.add_argument("--repeats", type=int, default=4, help="runs per configuration")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGS),
        help=f"comma-separated, of {', '.join(CONFIGS)} (default: {','.join(DEFAULT_CONFIGS)})",
    )
    parser.add_argument(
        "--together",
        type=float,
        metavar="SECONDS",
        help="load all configurations at once for SECONDS per run (each with its own clients)"
        " instead of one after the other with --requests GETs",
    )
    parser.add_argument(
        "--rate",
        type=float,
        metavar="REQ_S",
        help="pace the GETs of a run at REQ_S a second (one after the other only): every"
        " configuration is sent the same rate, so CPU per request compares at equal load",
    )
    parser.add_argument(
        "--instances",
        type=int,
        default=1,
        help="servers per configuration (NAME#1, NAME#2, ...), paired by number: the offset"
        " one server keeps over a run is averaged over several",
    )
    parser.add_argument("--workers", type=int, help="server workers (default: moorage's)")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default: a temp dir)")
    parser.add_argument(
        "--compare", type=Path, metavar="DIR", help="also run each configuration from DIR"
    )
    args = parser.parse_args(argv)
    args.config_names = [name.strip() for name in str(args.configs).split(",") if name.strip()]
    if args.instances < 1:
        parser.error("--instances is at least 1")
    if args.rate is not None and (args.together or args.rate <= 0):
        parser.error("--rate is a positive number of GETs a second, without --together")
    unknown = sorted(set(args.config_names) - set(CONFIGS))
    if unknown:
        parser.error(f"unknown configurations {unknown}; known: {', '.join(CONFIGS)}")
    return args


def _start_server(
    name: str, args: argparse.Namespace, workdir: Path, receiver: SpanReceiver | None
) -> MoorageServer:
    """Start the server of configuration ``name`` (``<config>@before``: from ``--compare``)."""
    config = base_config(name)
    root = args.compare if tree_config(name).endswith(BEFORE) else REPO_ROOT
    env = {
        "MOORAGE_DATA_DIR": str(workdir / name / "data"),
        "MOORAGE_AUTH__ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_STORAGE": "filesystem",
        **CONFIGS[config],
    }
    if receiver is not None:
        env[f"{_OBSERVABILITY}TRACING__ENDPOINT"] = receiver.url
    extra = [] if args.workers is None else ["--workers", str(args.workers)]
    server = start_moorage(workdir / name, env, extra, root=root)
    log(f"{name}: moorage pid {server.pid} at {server.url} from {root}")
    return server


def _report(runs: Sequence[Run], names: Sequence[str]) -> list[dict[str, Any]]:
    """Each configuration's summary (all its servers), against ``off`` from the same tree."""

    def of(name: str) -> list[Run]:
        return [run for run in runs if tree_config(run.config) == name]

    rows = []
    for name in names:
        suffix = BEFORE if name.endswith(BEFORE) else ""
        baseline = of("off" + suffix)
        access = [] if base_config(name) in ("off", "access") else of("access" + suffix)
        rows.append(summary(name, of(name), baseline, access))
    return rows


def instance_names(names: Sequence[str], instances: int) -> list[str]:
    """The servers' names: ``names`` themselves, or each as ``NAME#1`` .. ``NAME#instances``.

    Instances are interleaved (``a#1, b#1, a#2, b#2``), so each round of one repetition
    loads every configuration before the next instance of any.
    """
    if instances <= 1:
        return list(names)
    return [f"{name}{INSTANCE}{number}" for number in range(1, instances + 1) for name in names]


def _held(checks: Mapping[str, Any], sent: int) -> bool:
    """Every GET logged and counted; spans also come from the setup: at least one per GET."""
    for key in ("access_lines", "metrics_counted", "spans_received"):
        value = checks.get(key, sent)
        if value < sent or (key != "spans_received" and value != sent):
            log(f"{checks['config']}: {key} {value} against {sent} GETs sent")
            return False
    return True


def start_servers(
    stack: contextlib.ExitStack, names: Sequence[str], args: argparse.Namespace, workdir: Path
) -> tuple[list[tuple[str, MoorageServer]], dict[str, SpanReceiver]]:
    """Start a server per name, and an OTLP receiver for each that traces.

    Both are stopped with ``stack``. Returns the servers by name and the receivers.
    """
    receivers: dict[str, SpanReceiver] = {}
    servers = []
    for name in names:
        if base_config(name).startswith("tracing"):
            receivers[name] = SpanReceiver()
            stack.callback(receivers[name].close)
        server = _start_server(name, args, workdir, receivers.get(name))
        stack.callback(server.stop)
        servers.append((name, server))
    return servers, receivers


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every check held."""
    args = parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="moorage-obsbench-"))
    names = list(args.config_names)
    if args.compare is not None:
        names += [f"{name}{BEFORE}" for name in args.config_names]
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        servers, receivers = start_servers(
            stack, instance_names(names, args.instances), args, workdir
        )
        runs, served = asyncio.run(_run(servers, args))
        for one in served:
            one.server.stop()
        if receivers:
            time.sleep(1.0)  # NOTE: the last export of a stopped server may still be in flight
        summaries = _report(runs, names)
        for row in summaries:
            print(json.dumps(row), flush=True)
        ok = True
        for one in served:
            checks = _checks(one, receivers.get(one.config))
            print(json.dumps(checks), flush=True)
            ok = _held(checks, one.sent) and ok
        print()
        print(table(summaries), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
