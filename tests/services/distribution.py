"""CNCF distribution v3 (``registry`` from ``github.com/distribution/distribution/v3``).

The registry users would pick today, run beside Debian's ``docker-registry`` (2.8) as a
second benchmark peer and a replication destination of the tests. Built by
``scripts/install-tools`` into the tools cache as ``distribution-registry``; configured
like ``tests.services.docker_registry`` (same configuration format, filesystem under
``workdir`` unless S3 facts are given).
"""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING, Final

from tests.services.docker_registry import DockerRegistry, S3Storage, write_config
from tests.services.http import answers
from tests.services.process import LOOPBACK, free_port, spawn
from tests.services.tools import find_tool

if TYPE_CHECKING:
    from pathlib import Path

#: The executable's name in the tools cache.
EXECUTABLE: Final = "distribution-registry"
START_TIMEOUT: Final = 30.0


def start_distribution(
    workdir: Path, s3: S3Storage | None = None, *, redirect: bool = True, delete: bool = True
) -> DockerRegistry:
    """Start distribution v3 on a free loopback port; wait for ``GET /v2/``.

    Raises:
        MissingToolError: ``distribution-registry`` is not built.
    """
    executable = find_tool(EXECUTABLE)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = write_config(workdir, port, s3, redirect=redirect, delete=delete)
    env = dict(os.environ)
    env["OTEL_TRACES_EXPORTER"] = "none"  # NOTE: v3 exports traces over OTLP by default
    process = spawn(
        "distribution v3",
        [executable, "serve", str(config_path)],
        log_path=workdir / "distribution.log",
        env=env,
    )
    process.wait_until(
        partial(answers, LOOPBACK, port, "/v2/"), timeout=START_TIMEOUT, what="GET /v2/ = 200"
    )
    host_port = f"{LOOPBACK}:{port}"
    return DockerRegistry(
        url=f"http://{host_port}",
        host_port=host_port,
        port=port,
        config_path=config_path,
        log_path=process.log_path,
        process=process,
    )
