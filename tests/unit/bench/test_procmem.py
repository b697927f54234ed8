"""Finding a server's processes and reading their memory from /proc (a fake /proc in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.procmem import (
    CLOCK_TICKS,
    MAX_ANCESTORS,
    CpuTicks,
    Memory,
    PeakSampler,
    ProcFs,
    ProcStat,
    listening_inodes,
    parse_cpu,
    parse_stat,
    parse_status,
    process_tree,
    server_root,
    socket_inode,
)

TCP_HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
    "   uid  timeout inode\n"
)


def tcp_line(slot: int, local: str, state: str, inode: int) -> str:
    return (
        f"   {slot}: {local} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000"
        f"     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
    )


def test_stat_line_with_spaces_and_parentheses_in_the_name() -> None:
    text = "4242 (python -m (cli) x) S 4200 4242 4242 0 -1 4194560 1 0 0 0\n"
    assert parse_stat(text) == ProcStat(pid=4242, ppid=4200, session=4242)


def test_cpu_times_come_after_the_fault_counters() -> None:
    text = "77 (granian (w) 1) S 1 77 77 0 -1 4194560 900 0 3 0 1234 56 7 8 20 0 4 0 99\n"
    assert parse_cpu(text) == CpuTicks(user=1234, system=56, children_user=7, children_system=8)
    with pytest.raises(ValueError, match="stat line"):
        parse_cpu("77 (short) S 1 77 77 0\n")


def test_cpu_seconds_sum_a_tree_and_skip_the_gone(tmp_path: Path) -> None:
    for pid, times in ((10, "100 50 5 5"), (11, "200 0 0 0")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(
            f"{pid} (python) S 1 10 10 0 -1 0 0 0 0 0 {times} 20 0 1 0 1\n"
        )
    user, system = ProcFs(tmp_path).cpu_seconds([10, 11, 12])
    assert (user, system) == (305 / CLOCK_TICKS, 55 / CLOCK_TICKS)


def test_garbage_is_not_a_stat_line() -> None:
    with pytest.raises(ValueError, match="stat line"):
        parse_stat("no parentheses here")


def test_status_gives_rss_and_peak_in_bytes() -> None:
    text = "Name:\tpython\nVmPeak:\t  999 kB\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t3\n"
    assert parse_status(text) == Memory(rss=1024 * 1024, hwm=2048 * 1024)


def test_kernel_thread_status_has_no_memory() -> None:
    assert parse_status("Name:\tkthreadd\nState:\tS (sleeping)\n") == Memory(0, 0)


def test_status_with_an_unknown_unit_is_rejected() -> None:
    with pytest.raises(ValueError, match="unexpected unit"):
        parse_status("VmRSS:\t 12 MB\n")


def test_only_listening_sockets_on_the_port_are_found() -> None:
    table = (
        TCP_HEADER
        + tcp_line(0, "0100007F:1F90", "0A", 111)  # 127.0.0.1:8080 listening
        + tcp_line(1, "0100007F:1F90", "0A", 112)  # a second listener (SO_REUSEPORT)
        + tcp_line(2, "0100007F:1F90", "01", 999)  # an accepted connection on 8080
        + tcp_line(3, "0100007F:1F91", "0A", 333)  # 8081
    )
    assert listening_inodes(table, 8080) == {111, 112}
    assert listening_inodes(table, 9999) == set()


def test_ipv6_table_is_read_the_same_way() -> None:
    table = TCP_HEADER + tcp_line(0, "0000000000000000FFFF00000100007F:1388", "0A", 77)
    assert listening_inodes(table, 5000) == {77}


@pytest.mark.parametrize(
    ("link", "inode"),
    [("socket:[12345]", 12345), ("pipe:[12345]", None), ("/dev/null", None), ("socket:", None)],
)
def test_socket_links(link: str, inode: int | None) -> None:
    assert socket_inode(link) == inode


# init(1) -> bench(50, own session) -> moorage api(100, session 100) -> workers 101, 102;
# 101 has a child 103; docker-registry(200, session 200) under bench; 300 unrelated.
STATS = {
    1: ProcStat(1, 0, 1),
    50: ProcStat(50, 1, 50),
    100: ProcStat(100, 50, 100),
    101: ProcStat(101, 100, 100),
    102: ProcStat(102, 100, 100),
    103: ProcStat(103, 101, 100),
    200: ProcStat(200, 50, 200),
    300: ProcStat(300, 1, 300),
}


def test_root_is_the_topmost_ancestor_in_the_same_session() -> None:
    assert server_root(103, STATS) == 100
    assert server_root(101, STATS) == 100
    assert server_root(200, STATS) == 200
    assert server_root(999, STATS) == 999


def test_root_walk_is_bounded_on_a_long_chain() -> None:
    chain = {pid: ProcStat(pid, pid - 1, 7) for pid in range(1, MAX_ANCESTORS + 10)}
    top = MAX_ANCESTORS + 9
    assert server_root(top, chain) == top - MAX_ANCESTORS


def test_root_walk_stops_on_a_self_parent() -> None:
    assert server_root(5, {5: ProcStat(5, 5, 5)}) == 5


def test_tree_holds_every_descendant_and_nothing_else() -> None:
    assert process_tree(100, STATS) == {100, 101, 102, 103}
    assert process_tree(200, STATS) == {200}


def test_tree_survives_a_parent_cycle() -> None:
    stats = {1: ProcStat(1, 2, 1), 2: ProcStat(2, 1, 1)}
    assert process_tree(1, stats) == {1, 2}


def fake_proc(root: Path) -> ProcFs:
    """A /proc with the processes of STATS, sockets on 8080 (workers) and 5000 (registry)."""
    sockets = {101: [111, 999], 102: [112], 200: [222], 300: [999]}
    for stat in STATS.values():
        pid_dir = root / str(stat.pid)
        (pid_dir / "fd").mkdir(parents=True)
        (pid_dir / "stat").write_text(
            f"{stat.pid} (proc {stat.pid}) S {stat.ppid} {stat.session} {stat.session} 0 -1 0\n"
        )
        (pid_dir / "status").write_text(
            f"Name:\tp\nVmHWM:\t{stat.pid * 2} kB\nVmRSS:\t{stat.pid} kB\n"
        )
        (pid_dir / "fd" / "0").symlink_to("/dev/null")
        for fd, inode in enumerate(sockets.get(stat.pid, []), start=3):
            (pid_dir / "fd" / str(fd)).symlink_to(f"socket:[{inode}]")
    (root / "net").mkdir()
    (root / "net" / "tcp").write_text(
        TCP_HEADER
        + tcp_line(0, "0100007F:1F90", "0A", 111)
        + tcp_line(1, "0100007F:1F90", "0A", 112)
        + tcp_line(2, "0100007F:1F90", "01", 999)
        + tcp_line(3, "0100007F:1388", "0A", 222)
    )
    (root / "self").mkdir()  # not a process directory
    return ProcFs(root)


def test_server_is_the_tree_above_its_listening_workers(tmp_path: Path) -> None:
    procfs = fake_proc(tmp_path)
    assert procfs.listeners(8080) == {101, 102}
    assert procfs.server_pids(8080) == [100, 101, 102, 103]


def test_single_process_server(tmp_path: Path) -> None:
    assert fake_proc(tmp_path).server_pids(5000) == [200]


def test_no_server_on_an_unused_port(tmp_path: Path) -> None:
    assert fake_proc(tmp_path).server_pids(6000) == []


def test_memory_is_summed_and_a_gone_process_counts_zero(tmp_path: Path) -> None:
    procfs = fake_proc(tmp_path)
    assert procfs.memory(101) == Memory(101 * 1024, 202 * 1024)
    assert procfs.memory(4040) == Memory(0, 0)
    assert procfs.total([100, 101, 4040]) == Memory(201 * 1024, 402 * 1024)


def test_peak_reset_writes_the_reset_code(tmp_path: Path) -> None:
    procfs = fake_proc(tmp_path)
    assert procfs.reset_peak(101) is True
    assert (tmp_path / "101" / "clear_refs").read_text() == "5"
    assert procfs.reset_peak(4040) is False


def test_sampler_keeps_the_largest_value() -> None:
    values = iter([3, 9, 4])
    sampler: PeakSampler

    def read() -> int:
        value = next(values)
        if value == 4:
            sampler.stopping.set()
        return value

    sampler = PeakSampler(read, 0.0, 100)
    sampler.start()
    sampler.join(30.0)
    sampler.stop()
    assert sampler.peak == 9
    assert sampler.samples == 3


def test_sampler_stops_after_its_sample_limit() -> None:
    calls = []

    def read() -> int:
        calls.append(1)
        return len(calls)

    sampler = PeakSampler(read, 0.0, 5)
    sampler.start()
    sampler.join(30.0)
    sampler.stop()
    assert sampler.samples == 5
    assert len(calls) == 5
    assert sampler.peak == 5
