"""A real S3 server: SeaweedFS (``weed mini``) on the loopback address.

moto answers S3 correctly but is far too slow to measure anything but itself, so the
benchmarks' S3 comparison runs both registries against SeaweedFS's S3 gateway instead,
and the HA tests (``tests/ha``) stop and start it under load (:func:`start_again`).
``scripts/install-tools`` builds ``weed`` from the Go module proxy into the tools cache.
Every listener (master, volume, filer, S3 and their gRPC ports) is bound to 127.0.0.1 on
ports chosen here; the admin UI, WebDAV and the table-format endpoints are turned off. One
identity with full rights signs all requests.
"""

from __future__ import annotations

import json
import secrets
from functools import partial
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.services.process import LOOPBACK, free_ports, spawn
from tests.services.s3 import S3Server
from tests.services.tools import find_tool

if TYPE_CHECKING:
    from pathlib import Path

READY_TIMEOUT = 90.0
#: Ports ``weed mini`` needs besides S3's: master, volume and filer with their gRPC
#: ports, S3's gRPC port, the admin gRPC port and the debug port.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
    "debug.port",
)


def start_seaweedfs(workdir: Path, bucket: str) -> S3Server:
    """Start ``weed mini`` with ``bucket`` created; wait until its S3 gateway answers.

    Args:
        workdir: Data directory, S3 identity file and ``weed.log`` go here.
        bucket: A bucket to create at start-up.

    Returns:
        The endpoint and the credentials of its one identity; ``stop()`` ends the PID.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = f"moorage{secrets.token_hex(6)}", secrets.token_urlsafe(24)
    identity = {
        "name": "moorage",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [identity]}))
    config.chmod(0o600)
    s3_port, *others = free_ports(len(_PORT_FLAGS) + 1)
    argv = [
        find_tool("weed"),
        "mini",
        f"-dir={workdir / 'data'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-s3.port={s3_port}",
        f"-s3.config={config}",
        f"-bucket={bucket}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-admin.ui=false",
        "-admin.port.legacy=0",
        "-webdav=false",
        *(f"-{flag}={port}" for flag, port in zip(_PORT_FLAGS, others, strict=True)),
    ]
    (workdir / "data").mkdir(exist_ok=True)
    process = spawn("weed mini", argv, log_path=workdir / "weed.log", cwd=workdir)
    server = S3Server(
        endpoint_url=f"http://{LOOPBACK}:{s3_port}",
        access_key_id=access_key,
        secret_access_key=secret_key,
        pid=process.pid,
        _process=process,
    )
    _wait_for_bucket(server, bucket)
    return server


def start_again(server: S3Server, bucket: str) -> None:
    """Start a stopped server again with the same command line: same ports, same data.

    Args:
        server: A server from :func:`start_seaweedfs` whose process was stopped.
        bucket: The bucket it was started with; waited for as at the first start.
    """
    stopped = server._process
    if stopped.popen.poll() is None:
        raise RuntimeError(f"weed mini (pid {stopped.pid}) still runs")
    argv = [str(arg) for arg in stopped.popen.args]  # type: ignore[union-attr]
    workdir = stopped.log_path.parent
    process = spawn("weed mini", argv, log_path=stopped.log_path, cwd=workdir)
    server._process, server.pid = process, process.pid
    _wait_for_bucket(server, bucket)


def _wait_for_bucket(server: S3Server, bucket: str) -> None:
    # The gateway answers before the start-up bucket exists: wait for the bucket itself.
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )
    try:
        server._process.wait_until(
            partial(_bucket_exists, client, bucket), timeout=READY_TIMEOUT, what="the bucket"
        )
    except BaseException:
        server.stop()
        raise


def _bucket_exists(client: Any, bucket: str) -> bool:
    try:
        client.head_bucket(Bucket=bucket)
    except (ClientError, BotoCoreError):
        return False
    return True
