"""The API's server workers keep sharing the memory their parent built before forking them.

``moorage api`` imports its modules, prepares the installation and builds the app's
framework, then its server forks the workers, each of which composes its own registry. A
page of the parent's that a worker never writes stays shared, so an installation's memory
grows by what each worker writes for itself, not by its whole resident size. Python's full
garbage collection writes to the header of every object it walks; before the start-up heap
was exempted from it (``cli.heap``), each worker's first full collection, while it built
its app, made most of the parent's pages its own: after this test's requests 121 MiB of a
worker's 217 MiB resident were private (56%), against 71 MiB (33%) with it.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from tests.services.moorage import start_moorage
from tests.services.sockets import ask_every_worker, wait_for_workers

pytestmark = pytest.mark.integration

WORKERS = 2
#: Each worker's private memory after serving, at most this share of its resident memory.
PRIVATE_SHARE = 0.45
ROUNDS = 20


def _memory_mib(pid: int) -> tuple[float, float]:
    """Resident and private memory of ``pid`` in MiB (``/proc/PID/smaps_rollup``)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            fields[parts[0].rstrip(":")] = int(parts[1])
    private = fields["Private_Clean"] + fields["Private_Dirty"]
    return fields["Rss"] / 1024, private / 1024


def test_workers_keep_most_of_their_memory_shared_after_serving(tmp_path: Path) -> None:
    server = start_moorage(
        tmp_path,
        {"MOORAGE_DATA_DIR": str(tmp_path / "data"), "MOORAGE_LOGIN_LIMIT__MAX_FAILURES": "1000"},
        ["--workers", str(WORKERS)],
    )
    try:
        workers = wait_for_workers(server.pid, server.port, WORKERS)
        assert len(workers) == WORKERS, f"{len(workers)} workers listen; {server.log_path}"
        basic = base64.b64encode(f"{server.admin_username}:{server.admin_password}".encode())
        auth = {"Authorization": f"Basic {basic.decode()}"}
        for _ in range(ROUNDS):  # the pipeline, the password check, a miss, the probes
            for path in ("/v2/", "/v2/library/absent/manifests/latest", "/readyz", "/metrics"):
                answers = ask_every_worker(server.pid, server.port, "GET", path, auth)
                assert answers.keys() == workers, f"{path}: answered by {sorted(answers)}"
        shares = {}
        for pid in workers:
            resident, private = _memory_mib(pid)
            shares[pid] = (round(resident), round(private), round(private / resident, 2))
        assert all(share <= PRIVATE_SHARE for _, _, share in shares.values()), (
            f"(resident MiB, private MiB, private share) by worker: {shares}"
        )
    finally:
        server.stop()
