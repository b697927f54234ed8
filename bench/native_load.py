"""Request-rate load from native tools (Debian's ``wrk`` and ``ab``) for the manifest cases.

Why not the bench's own client: on this machine's two CPUs the load generator shares the
processors with the registry it loads. The Python client (``bench.rawhttp``) spends about
100 us of CPU per manifest request where ``wrk`` spends about 20 (measured side by side on
one server), so at 10,000 requests a second the Python client alone takes most of one
CPU, which a registry that fast would otherwise have. Slower registries barely notice it,
so it understated exactly the ratios it was meant to show. ``wrk`` is C on one thread
here (``-t 1``) with ``--connections`` kept-alive connections, one request in flight on
each, as the Python client did.

One Lua script drives every use (:data:`SCRIPT`): the method, a body read from a file, and
optionally a unique path per request (a manifest PUT to a new tag each time), all from
environment variables; its ``done`` hook prints one line of JSON with the request count,
the duration, the latency percentiles and wrk's error counts. wrk counts an answer of 400
or above as a ``status`` error; any error fails the measurement (:meth:`LoadResult.check`).

``wrk`` cannot load ``HEAD``: it waits for the body the ``Content-Length`` announces, which
a ``HEAD`` answer does not carry. :func:`run_ab` runs those with ``ab`` (Debian's
``apache2-utils``), also C on one thread; it speaks HTTP/1.0 with ``Connection:
keep-alive``, which every registry here keeps alive as it does HTTP/1.1.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The line the script's ``done`` hook prints, then a JSON object.
RESULT_PREFIX: Final = "WRK_RESULT "

SCRIPT: Final = r"""
local method = os.getenv("WRK_METHOD")
if method then wrk.method = method end
local body_file = os.getenv("WRK_BODY_FILE")
if body_file then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
end
local prefix = os.getenv("WRK_PATH_PREFIX")
local expect = tonumber(os.getenv("WRK_EXPECT_STATUS") or "")
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end
unexpected = 0
if expect then
  response = function(status, headers, body)
    if status ~= expect then unexpected = unexpected + 1 end
  end
end
local counter = 0
if prefix then
  request = function()
    counter = counter + 1
    return wrk.format(nil, prefix .. thread_id .. "-" .. counter)
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  local other = 0
  for _, thread in ipairs(threads) do other = other + thread:get("unexpected") end
  io.write(string.format(
    'WRK_RESULT {"requests":%.0f,"duration_us":%.0f,"p50_us":%.0f,"p99_us":%.0f,' ..
    '"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,"unexpected":%.0f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout, other))
end
"""

#: wrk's error kinds, as its summary names them, and the script's count of answers whose
#: status was not the one expected (``unexpected``).
ERROR_KINDS: Final = ("connect", "read", "write", "status", "timeout", "unexpected")


class LoadError(RuntimeError):
    """The load generator failed, or some requests did not succeed."""


@dataclass(frozen=True)
class LoadResult:
    """What one run of the load generator measured."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    #: Requests that failed, by kind (``status``: answered 400 or above).
    errors: Mapping[str, int]

    @property
    def rate(self) -> float:
        """Requests answered a second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def check(self, what: str) -> LoadResult:
        """This result, or :class:`LoadError` if no request completed or any failed."""
        failed = {kind: count for kind, count in self.errors.items() if count}
        if failed or self.requests == 0:
            raise LoadError(f"{what}: {self.requests} requests, errors {failed}")
        return self


def parse_wrk(output: str) -> LoadResult:
    """The result line the script printed in wrk's ``output``."""
    for line in output.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX) :])
            return LoadResult(
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1000,
                p99_ms=data["p99_us"] / 1000,
                errors={kind: int(data[kind]) for kind in ERROR_KINDS},
            )
    raise LoadError(f"wrk printed no result line: {output[-500:]!r}")


def tool(name: str) -> str:
    """The path of ``name``, or :class:`LoadError` naming the package that has it."""
    found = shutil.which(name)
    if found is None:
        package = {"wrk": "wrk", "ab": "apache2-utils"}[name]
        raise LoadError(f"{name} not found: install Debian's {package} (scripts/install-tools)")
    return found


def _header_args(flag: str, headers: Mapping[str, str]) -> list[str]:
    return [arg for name, value in headers.items() for arg in (flag, f"{name}: {value}")]


def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    headers: Mapping[str, str],
    method: str = "GET",
    body: bytes | None = None,
    unique_path_prefix: str | None = None,
    expect_status: int | None = None,
) -> LoadResult:
    """Load ``url`` for ``seconds`` from ``connections`` connections on one wrk thread.

    With ``unique_path_prefix`` (a path starting ``/``), each request goes to that prefix
    followed by ``<thread>-<n>``, ``n`` counting from 1: no two requests of a run share a
    path. ``body`` is sent with every request. With ``expect_status``, an answer of any
    other status counts as an error (``unexpected``). Raises :class:`LoadError` when wrk fails.
    """
    if method == "HEAD":
        raise LoadError("wrk cannot load HEAD (it waits for a body); use run_ab")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as scratch:
        script = Path(scratch) / "load.lua"
        script.write_text(SCRIPT)
        env = {**os.environ, "WRK_METHOD": method}
        if body is not None:
            body_file = Path(scratch) / "body"
            body_file.write_bytes(body)
            env["WRK_BODY_FILE"] = str(body_file)
        if unique_path_prefix is not None:
            env["WRK_PATH_PREFIX"] = unique_path_prefix
        if expect_status is not None:
            env["WRK_EXPECT_STATUS"] = str(expect_status)
        duration = max(1, round(seconds))
        args = [
            tool("wrk"),
            "--threads", "1",
            "--connections", str(connections),
            "--duration", f"{duration}s",
            "--timeout", "30s",
            "--script", str(script),
            *_header_args("--header", headers),
            url,
        ]  # fmt: skip
        done = subprocess.run(
            args, capture_output=True, text=True, env=env, timeout=duration + 60, check=False
        )
    if done.returncode != 0:
        raise LoadError(f"wrk exited {done.returncode}: {done.stderr[-500:]!r}")
    return parse_wrk(done.stdout)


def _ab_figure(output: str, label: str, *, required: bool = True) -> str:
    """The figure after ``label:`` on a line of ab's summary (``"0"`` if optional and absent)."""
    found = re.search(rf"^{re.escape(label)}:\s+([\d.]+)", output, re.MULTILINE)
    if found is not None:
        return found.group(1)
    if required:
        raise LoadError(f"ab printed no {label!r}: {output[-500:]!r}")
    return "0"


def parse_ab(output: str, percentiles_csv: str) -> LoadResult:
    """The summary ``ab`` printed (``output``) and its ``-e`` percentiles, as a result."""
    percent: dict[int, float] = {}
    for line in percentiles_csv.splitlines()[1:]:
        share, _, millis = line.partition(",")
        percent[int(float(share))] = float(millis)
    if 50 not in percent or 99 not in percent:
        raise LoadError(f"ab wrote no percentiles: {percentiles_csv[:300]!r}")
    return LoadResult(
        requests=int(_ab_figure(output, "Complete requests")),
        seconds=float(_ab_figure(output, "Time taken for tests")),
        p50_ms=percent[50],
        p99_ms=percent[99],
        errors={
            "failed": int(_ab_figure(output, "Failed requests")),
            "status": int(_ab_figure(output, "Non-2xx responses", required=False)),
        },
    )


def run_ab(
    url: str, *, seconds: float, connections: int, headers: Mapping[str, str], method: str
) -> LoadResult:
    """Load ``url`` with ``method`` (``HEAD`` or ``GET``) for ``seconds`` with ``ab -k``.

    ``connections`` requests are in flight at once, each on a kept-alive connection.
    Raises :class:`LoadError` when ab fails.
    """
    if method not in ("HEAD", "GET"):
        raise LoadError(f"ab loads HEAD or GET here, not {method}")
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as scratch:
        csv = Path(scratch) / "percentiles.csv"
        duration = max(1, round(seconds))
        args = [
            tool("ab"), "-q", "-k",
            "-c", str(connections),
            "-t", str(duration),
            "-n", "50000000",
            "-s", "30",
            "-e", str(csv),
            *(["-i"] if method == "HEAD" else []),
            *_header_args("-H", headers),
            url,
        ]  # fmt: skip
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=duration + 60, check=False
        )
        if done.returncode != 0:
            raise LoadError(f"ab exited {done.returncode}: {done.stderr[-500:]!r}")
        return parse_ab(done.stdout, csv.read_text())


def run_read(
    url: str, *, method: str, seconds: float, connections: int, headers: Mapping[str, str]
) -> LoadResult:
    """Load ``url`` with reads (``GET`` by wrk, ``HEAD`` by ab, which wrk cannot load)."""
    run = run_ab if method == "HEAD" else run_wrk
    return run(url, seconds=seconds, connections=connections, headers=headers, method=method)
