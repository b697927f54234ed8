"""Resident memory and CPU time of a server's processes, read from Linux ``/proc``.

A server is found by the TCP port it listens on: every process holding a listening
socket on that port is walked up to its topmost ancestor in the same session (the
harness starts each server in a session of its own, so that is the server's main
process: ``moorage api`` above its granian workers, or ``docker-registry`` itself), and
that ancestor's whole process tree counts as the server. Memory figures are summed over
the tree; a process that exits between two reads counts as zero.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

KIB = 1024
#: ``st`` of a listening socket in ``/proc/net/tcp``.
TCP_LISTEN = "0A"
#: Longest parent chain followed when looking for a server's main process.
MAX_ANCESTORS = 64
#: Writing this to ``/proc/<pid>/clear_refs`` resets the process's ``VmHWM`` to ``VmRSS``.
RESET_PEAK_RSS = "5"
#: Clock ticks per second of the CPU times in ``/proc/<pid>/stat``.
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_GONE = (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError)


@dataclass(frozen=True)
class ProcStat:
    """The identity fields of ``/proc/<pid>/stat``."""

    pid: int
    ppid: int
    session: int


@dataclass(frozen=True)
class CpuTicks:
    """CPU time of one process in clock ticks: its own and its reaped children's."""

    user: int
    system: int
    children_user: int
    children_system: int


@dataclass(frozen=True)
class Memory:
    """Resident memory of one process in bytes: current (``VmRSS``) and peak (``VmHWM``)."""

    rss: int
    hwm: int


def parse_stat(text: str) -> ProcStat:
    """Parse ``/proc/<pid>/stat``; the command name may hold spaces and parentheses.

    Raises:
        ValueError: If the text is not a stat line.
    """
    head, sep, tail = text.rpartition(")")
    fields = tail.split()
    if not sep or "(" not in head or len(fields) < 4:
        raise ValueError(f"not a /proc stat line: {text[:80]!r}")
    # After the name: state, ppid, pgrp, session.
    return ProcStat(pid=int(head.split("(", 1)[0]), ppid=int(fields[1]), session=int(fields[3]))


def parse_cpu(text: str) -> CpuTicks:
    """Read ``utime``, ``stime``, ``cutime`` and ``cstime`` from ``/proc/<pid>/stat``.

    Raises:
        ValueError: If the text is not a stat line with those fields.
    """
    _, sep, tail = text.rpartition(")")
    fields = tail.split()
    if not sep or len(fields) < 15:
        raise ValueError(f"not a /proc stat line: {text[:80]!r}")
    # After the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt,
    # then utime stime cutime cstime.
    return CpuTicks(*(int(value) for value in fields[11:15]))


def parse_status(text: str) -> Memory:
    """Read ``VmRSS`` and ``VmHWM`` (in kB) from ``/proc/<pid>/status``, as bytes.

    Kernel threads have neither line and give zeros.
    """
    values = {"VmRSS": 0, "VmHWM": 0}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            number, _, unit = rest.strip().partition(" ")
            if unit.strip() != "kB":
                raise ValueError(f"unexpected unit in {line!r}")
            values[key] = int(number) * KIB
    return Memory(rss=values["VmRSS"], hwm=values["VmHWM"])


def listening_inodes(table: str, port: int) -> set[int]:
    """The socket inodes listening on ``port`` in a ``/proc/net/tcp`` or ``tcp6`` table."""
    inodes = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != TCP_LISTEN:
            continue
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(int(fields[9]))
    return inodes


def socket_inode(link: str) -> int | None:
    """The inode of an fd link such as ``socket:[12345]``, or ``None`` for anything else."""
    if link.startswith("socket:[") and link.endswith("]"):
        return int(link[len("socket:[") : -1])
    return None


def server_root(pid: int, stats: Mapping[int, ProcStat]) -> int:
    """Walk from ``pid`` up its parents while they stay in its session; return the last one.

    Stops after :data:`MAX_ANCESTORS` steps or at a parent that is not in ``stats``.
    """
    start = stats.get(pid)
    if start is None:
        return pid
    current = start
    for _ in range(MAX_ANCESTORS):
        parent = stats.get(current.ppid)
        if parent is None or parent.session != start.session or parent.pid == current.pid:
            break
        current = parent
    return current.pid


def process_tree(root: int, stats: Mapping[int, ProcStat]) -> set[int]:
    """``root`` and every process below it (each process visited at most once)."""
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    found = {root}
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def server_processes(listeners: Iterable[int], stats: Mapping[int, ProcStat]) -> set[int]:
    """The process trees of the main processes above ``listeners``."""
    found: set[int] = set()
    for pid in listeners:
        found |= process_tree(server_root(pid, stats), stats)
    return found


class ProcFs:
    """The ``/proc`` reads behind :func:`server_processes` and the memory figures."""

    def __init__(self, root: Path = Path("/proc")) -> None:
        """Read from ``root`` (another directory only in tests)."""
        self.root = root

    def _pids(self) -> list[int]:
        return [int(entry.name) for entry in os.scandir(self.root) if entry.name.isdigit()]

    def stats(self) -> dict[int, ProcStat]:
        """Parent and session of every process that can be read."""
        stats = {}
        for pid in self._pids():
            try:
                stats[pid] = parse_stat((self.root / str(pid) / "stat").read_text())
            except (*_GONE, ValueError):
                continue
        return stats

    def listeners(self, port: int) -> set[int]:
        """The processes holding a socket that listens on TCP ``port`` (IPv4 or IPv6)."""
        inodes: set[int] = set()
        for table in ("tcp", "tcp6"):
            try:
                inodes |= listening_inodes((self.root / "net" / table).read_text(), port)
            except _GONE:
                continue
        holders = set()
        for pid in self._pids() if inodes else []:
            fd_dir = self.root / str(pid) / "fd"
            try:
                links = [str(Path(entry.path).readlink()) for entry in os.scandir(fd_dir)]
            except _GONE:
                continue
            if any(socket_inode(link) in inodes for link in links):
                holders.add(pid)
        return holders

    def server_pids(self, port: int) -> list[int]:
        """The server listening on ``port``, as the sorted PIDs of its process tree."""
        return sorted(server_processes(self.listeners(port), self.stats()))

    def cpu_seconds(self, pids: Iterable[int]) -> tuple[float, float]:
        """User and system CPU seconds of ``pids``, reaped children included (0 once gone)."""
        user = system = 0
        for pid in pids:
            try:
                ticks = parse_cpu((self.root / str(pid) / "stat").read_text())
            except (*_GONE, ValueError):
                continue
            user += ticks.user + ticks.children_user
            system += ticks.system + ticks.children_system
        return user / CLOCK_TICKS, system / CLOCK_TICKS

    def memory(self, pid: int) -> Memory:
        """``VmRSS`` and ``VmHWM`` of ``pid`` in bytes (zeros once it has exited)."""
        try:
            return parse_status((self.root / str(pid) / "status").read_text())
        except _GONE:
            return Memory(0, 0)

    def total(self, pids: Iterable[int]) -> Memory:
        """``VmRSS`` and ``VmHWM`` summed over ``pids``."""
        memories = [self.memory(pid) for pid in pids]
        return Memory(sum(m.rss for m in memories), sum(m.hwm for m in memories))

    def reset_peak(self, pid: int) -> bool:
        """Reset ``VmHWM`` of ``pid`` to its current RSS; ``False`` if not allowed."""
        try:
            (self.root / str(pid) / "clear_refs").write_text(RESET_PEAK_RSS)
        except (*_GONE, OSError):
            return False
        return True


class PeakSampler:
    """Calls ``read`` every ``interval_s`` on a thread and keeps the largest value.

    The thread stops when :meth:`stop` is called or after ``max_samples`` reads.
    """

    def __init__(self, read: Callable[[], int], interval_s: float, max_samples: int) -> None:
        """Prepare the sampler; :meth:`start` begins sampling."""
        self._read = read
        self._interval_s = interval_s
        self._max_samples = max_samples
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak = 0
        self.samples = 0
        self.max_gap_s = 0.0

    def _run(self) -> None:
        last = time.monotonic()
        for _ in range(self._max_samples):
            value = self._read()
            now = time.monotonic()
            self.peak = max(self.peak, value)
            self.samples += 1
            self.max_gap_s = max(self.max_gap_s, now - last)
            last = now
            if self._stop.wait(self._interval_s):
                return

    def start(self) -> None:
        """Take the first sample now and go on in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the thread to finish its current read."""
        self._stop.set()
        self._thread.join()

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the thread to end by itself (after ``max_samples`` reads)."""
        self._thread.join(timeout_s)

    @property
    def stopping(self) -> threading.Event:
        """The event that ends sampling after the current read (set by :meth:`stop`)."""
        return self._stop
