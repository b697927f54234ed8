"""What a sampled request's span costs, paired within one server (issue 15).

``python -m bench.sampled_pairs [--compare DIR] [--instances N] [--repeats R] [--rate REQ_S]``
starts servers with tracing on and nothing sampled by ratio (``bench.observability``'s
``tracing0``: metrics and the access log on, as by default), exporting to an OTLP
receiver in this process. In each repetition every server is sent two blocks of manifest
GETs by tag from 32 clients, paced at ``--rate``: one whose requests carry a sampled W3C
``traceparent`` (each is traced: its span is made, logged and exported) and one whose
requests carry the same ``traceparent`` unsampled (each parses it and is not traced), in
alternating order. The figure is the sampled block's server CPU per 10,000 GETs against
the unsampled block's of the same server and repetition.

Unlike ``bench.observability``, which compares servers with each other, the two sides of
each pair are the same process a few seconds apart, so the offset two servers of the same
code keep over a run (up to 16% measured) does not enter the figure; what it measures is
only the sampled span's own cost, not what an enabled tracer or metrics cost every
request. ``--compare DIR`` runs the same from another source tree (``@before``).

Output: one JSON line per block pair, then per source tree the median and mean of the
pairs' overhead with a 95% bootstrap interval of the median. Each receiver must have got
one span per sampled GET sent (warm-up GETs are unsampled), or the exit status is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from bench.observability import (
    BEFORE,
    client_warmup,
    instance_names,
    measure,
    median_interval,
    serve,
    start_servers,
    tree_config,
)
from bench.runner import log

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tests.services.moorage import MoorageServer

#: The configuration every server runs (``bench.observability.CONFIGS``).
CONFIG: Final = "tracing0"
_TRACE: Final = "0af7651916cd43dd8448eb211c80319c"
_PARENT: Final = "b7ad6b7169203331"
SAMPLED: Final = f"00-{_TRACE}-{_PARENT}-01"
UNSAMPLED: Final = f"00-{_TRACE}-{_PARENT}-00"


@dataclass
class Pair:
    """One repetition on one server: CPU-s per 10k GETs with and without a sampled span."""

    server: str
    rep: int
    sampled: float
    unsampled: float

    @property
    def overhead(self) -> float:
        """The sampled block's CPU per GET over the unsampled block's, minus one."""
        return self.sampled / self.unsampled - 1

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the pair."""
        return {
            "kind": "pair",
            "server": self.server,
            "rep": self.rep,
            "sampled_cpu_s_per_10k": round(self.sampled, 4),
            "unsampled_cpu_s_per_10k": round(self.unsampled, 4),
            "overhead_pct": round(self.overhead * 100, 2),
        }


def summary(name: str, pairs: Sequence[Pair]) -> dict[str, Any]:
    """The median and mean overhead of ``pairs`` and the median's 95% interval."""
    ratios = [1 + pair.overhead for pair in pairs]
    low, high = median_interval(ratios)
    return {
        "kind": "tree",
        "tree": name,
        "pairs": len(pairs),
        "median_pct": round((statistics.median(ratios) - 1) * 100, 2),
        "mean_pct": round((statistics.mean(ratios) - 1) * 100, 2),
        "ci95_pct": [round((low - 1) * 100, 2), round((high - 1) * 100, 2)],
    }


async def _pairs(
    servers: Sequence[tuple[str, MoorageServer]], args: argparse.Namespace
) -> tuple[list[Pair], dict[str, int]]:
    """Every repetition's pair of blocks on every server; the sampled GETs each was sent."""
    pairs: list[Pair] = []
    sampled_sent = {name: 0 for name, _ in servers}
    async with contextlib.AsyncExitStack() as stack:
        served = []
        for name, server in servers:
            one = await serve(stack, name, server, args.clients)
            one.side.client.extra_headers["traceparent"] = UNSAMPLED
            await client_warmup(one, args)
            served.append(one)
        for rep in range(args.repeats):
            kinds = (SAMPLED, UNSAMPLED) if rep % 2 == 0 else (UNSAMPLED, SAMPLED)
            for one in served if rep % 2 == 0 else served[::-1]:
                cpu: dict[str, float] = {}
                for kind in kinds:
                    one.side.client.extra_headers["traceparent"] = kind
                    run = await measure(one, rep, args.requests, args.clients, args.rate)
                    cpu[kind] = run.cpu_per
                    if kind == SAMPLED:
                        sampled_sent[one.config] += run.requests
                pair = Pair(one.config, rep, cpu[SAMPLED], cpu[UNSAMPLED])
                pairs.append(pair)
                print(json.dumps(pair.to_dict()), flush=True)
                log(f"{one.config} rep {rep}: sampled {pair.overhead * 100:+.1f}%")
    return pairs, sampled_sent


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.sampled_pairs",
        description="Server CPU of sampled against unsampled manifest GETs, on the same server.",
    )
    parser.add_argument("--requests", type=int, default=20_000, help="GETs per block")
    parser.add_argument("--warmup", type=int, default=2_000, help="GETs before the blocks")
    parser.add_argument("--repeats", type=int, default=8, help="pairs of blocks per server")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--rate", type=float, default=4000.0, help="GETs a second, paced")
    parser.add_argument("--instances", type=int, default=2, help="servers per source tree")
    parser.add_argument("--workers", type=int, help="server workers (default: moorage's)")
    parser.add_argument(
        "--compare", type=Path, metavar="DIR", help="also run servers from the tree in DIR"
    )
    args = parser.parse_args(argv)
    if args.instances < 1 or args.repeats < 1 or args.rate <= 0:
        parser.error("--instances and --repeats are at least 1, --rate is positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every receiver got a span per sampled GET."""
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="moorage-sampledpairs-"))
    trees = [CONFIG] if args.compare is None else [CONFIG, f"{CONFIG}{BEFORE}"]
    ok = True
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        names = instance_names(trees, args.instances)
        servers, receivers = start_servers(stack, names, args, workdir)
        pairs, sampled_sent = asyncio.run(_pairs(servers, args))
        for _, server in servers:
            server.stop()
        time.sleep(1.0)  # NOTE: the last export of a stopped server may still be in flight
        for name, receiver in receivers.items():
            check = {"kind": "check", "server": name, "sampled_gets": sampled_sent[name]}
            check["spans_received"] = receiver.spans
            print(json.dumps(check), flush=True)
            if receiver.spans != sampled_sent[name]:
                log(f"{name}: {receiver.spans} spans for {sampled_sent[name]} sampled GETs")
                ok = False
        for tree in trees:
            row = summary(tree, [pair for pair in pairs if tree_config(pair.server) == tree])
            print(json.dumps(row), flush=True)
            print(
                f"{tree:<20} sampled vs unsampled: median {row['median_pct']:+.2f}% "
                f"({row['ci95_pct'][0]:+.2f}..{row['ci95_pct'][1]:+.2f}), "
                f"mean {row['mean_pct']:+.2f}%, {row['pairs']} pairs",
                flush=True,
            )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
