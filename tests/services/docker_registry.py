"""The reference registry (Debian's ``docker-registry``, distribution 2.8) for the tests.

It serves as a peer for copies and as a yardstick for what clients expect.
Storage is the filesystem under ``workdir`` unless S3 facts are given.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import yaml

from tests.services.http import answers
from tests.services.process import LOOPBACK, ManagedProcess, free_port, spawn

if TYPE_CHECKING:
    from pathlib import Path

START_TIMEOUT = 30.0


@dataclass(frozen=True)
class S3Storage:
    """Where the registry keeps its blobs on an S3-compatible service."""

    endpoint_url: str
    bucket: str
    access_key_id: str
    secret_access_key: str
    region: str = "us-east-1"
    root_directory: str = "/docker-registry"


@dataclass
class DockerRegistry:
    """Where the registry answers and the means to stop it."""

    url: str
    host_port: str
    port: int
    config_path: Path
    log_path: Path
    process: ManagedProcess

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.stop()


def _storage(
    workdir: Path, s3: S3Storage | None, *, redirect: bool, delete: bool = True
) -> dict[str, Any]:
    storage: dict[str, Any] = {"delete": {"enabled": delete}}
    if s3 is None:
        storage["filesystem"] = {"rootdirectory": str(workdir / "data")}
    else:
        storage["s3"] = {
            "region": s3.region,
            "regionendpoint": s3.endpoint_url,
            "bucket": s3.bucket,
            "accesskey": s3.access_key_id,
            "secretkey": s3.secret_access_key,
            "secure": s3.endpoint_url.startswith("https:"),
            "v4auth": True,
            "rootdirectory": s3.root_directory,
            # NOTE: distribution v3 addresses buckets by host name unless told otherwise
            # (2.8 uses the path whenever an endpoint is given); loopback has no such names.
            "forcepathstyle": True,
        }
    if not redirect:
        storage["redirect"] = {"disable": True}
    return storage


def write_config(
    workdir: Path,
    port: int,
    s3: S3Storage | None = None,
    *,
    redirect: bool = True,
    delete: bool = True,
    proxy_url: str | None = None,
) -> Path:
    """Write a distribution configuration file and return its path.

    ``delete``: whether manifests and blobs may be deleted (``storage.delete.enabled``);
    ``proxy_url``: run as a pull-through cache of that registry (distribution's proxy mode).
    """
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": _storage(workdir, s3, redirect=redirect, delete=delete),
        "http": {"addr": f"{LOOPBACK}:{port}", "secret": secrets.token_hex(16)},
    }
    if proxy_url is not None:
        config["proxy"] = {"remoteurl": proxy_url}
    path = workdir / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def start_docker_registry(
    workdir: Path,
    s3: S3Storage | None = None,
    *,
    redirect: bool = True,
    delete: bool = True,
    proxy_url: str | None = None,
) -> DockerRegistry:
    """Start ``docker-registry serve`` on a free loopback port; wait for ``GET /v2/``."""
    executable = shutil.which("docker-registry")
    if executable is None:
        raise RuntimeError("no 'docker-registry' executable: apt-get install docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = write_config(
        workdir, port, s3, redirect=redirect, delete=delete, proxy_url=proxy_url
    )
    env = dict(os.environ)
    # NOTE: distribution 2.8 panics (LoadCustomCABundleError) on S3 when this is set.
    env.pop("AWS_CA_BUNDLE", None)
    process = spawn(
        "docker-registry",
        [executable, "serve", str(config_path)],
        log_path=workdir / "docker-registry.log",
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
