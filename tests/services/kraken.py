"""A real Kraken cluster (Uber's P2P registry) on loopback, with a registry as its backend.

The five Kraken binaries (``kraken-origin``, ``kraken-tracker``, ``kraken-build-index``,
``kraken-proxy``, ``kraken-agent``) are built by ``scripts/install-tools`` from the Go
module proxy; each one runs Debian's ``nginx`` in front of its own unix socket, as Kraken
does in production. The cluster is one of each, configured here (no Docker):

- the origin seeds blobs: it fetches what it does not hold from the backend registry
  (``registry_blob``), with the HTTP Basic credentials it was given, over TLS (Kraken's
  registry client speaks HTTPS only when it authenticates);
- the build-index resolves tags through the same registry (``registry_tag``);
- the tracker hands peers out (its in-memory peer store: no Redis);
- the proxy's server receives distribution notifications on ``/registry/notifications``
  (the preheat receiver) and makes the origin fetch the image's blobs;
- the agent serves ``/v2`` on loopback and downloads blobs peer to peer from the origin.

:class:`TlsFront` is an nginx that terminates TLS in front of Moorage for the backend.
Every process is started in a session of its own; stopping one signals its process group
(the Kraken binary and the nginx it started), then waits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml

from tests.services.process import LOOPBACK, ManagedProcess, free_ports, port_accepts, spawn
from tests.services.tls import Pki
from tests.services.tools import MissingToolError, find_tool

START_TIMEOUT = 60.0
NGINX = "/usr/sbin/nginx"
COMPONENTS = ("origin", "tracker", "build-index", "proxy", "agent")


@dataclass(frozen=True)
class Backend:
    """The registry Kraken seeds from: its TLS address, the credentials and the CA."""

    address: str
    username: str
    password: str
    ca: Path


def _binary(component: str) -> str:
    return find_tool(f"kraken-{component}")


def _nginx() -> str:
    if not os.access(NGINX, os.X_OK):
        raise MissingToolError(f"{NGINX} is missing: run scripts/install-tools (Debian's nginx)")
    return NGINX


def _stop_group(process: ManagedProcess, timeout: float = 10.0) -> None:
    """SIGTERM the process group this test started (the binary and its nginx), then wait."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.popen.wait(timeout=timeout)
    # nginx's master and workers may outlive the Kraken binary by a moment
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://{LOOPBACK}:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class TlsFront:
    """nginx terminating TLS on loopback and passing requests to ``upstream_port``."""

    process: ManagedProcess
    port: int

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        _stop_group(self.process)


def start_tls_front(workdir: Path, pki: Pki, upstream_port: int, port: int) -> TlsFront:
    """Start nginx on ``port`` with the server certificate of ``pki`` before ``upstream_port``.

    The registry behind it must know the front's URL as its public URL: its token realm
    is then the HTTPS one Kraken can reach.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log {workdir}/access.log;
  client_body_temp_path {workdir}/body;
  proxy_temp_path {workdir}/proxy;
  fastcgi_temp_path {workdir}/fastcgi;
  uwsgi_temp_path {workdir}/uwsgi;
  scgi_temp_path {workdir}/scgi;
  server {{
    listen {LOOPBACK}:{port} ssl;
    ssl_certificate {pki.server_cert};
    ssl_certificate_key {pki.server_key};
    client_max_body_size 0;
    location / {{
      proxy_pass http://{LOOPBACK}:{upstream_port};
      proxy_http_version 1.1;
      proxy_request_buffering off;
      proxy_buffering off;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto https;
    }}
  }}
}}
""",
        encoding="utf-8",
    )
    process = spawn(
        "nginx (TLS front)", [_nginx(), "-c", str(conf)], log_path=workdir / "nginx.log"
    )
    process.wait_until(partial(port_accepts, port), timeout=START_TIMEOUT, what="TLS port open")
    return TlsFront(process, port)


@dataclass
class KrakenCluster:
    """The running Kraken processes and where they answer on loopback."""

    workdir: Path
    ports: dict[str, int]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def notifications_url(self) -> str:
        """The proxy server's base URL (``/registry/notifications``, ``/health``)."""
        return f"http://{LOOPBACK}:{self.ports['proxy-server']}"

    @property
    def agent_registry_url(self) -> str:
        """The agent's registry (``/v2``): what a node's container runtime pulls from."""
        return f"http://{LOOPBACK}:{self.ports['agent-registry']}"

    @property
    def origin_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['origin']}"

    def origin_has(self, repository: str, digest: str) -> bool:
        """Whether the origin holds the blob ``digest`` itself (``local=true``: no fetch)."""
        response = httpx.head(
            f"{self.origin_url}/internal/namespace/{quote(repository, safe='')}/blobs/{digest}",
            params={"local": "true"},
            timeout=10,
        )
        return response.status_code == 200

    def log(self, component: str) -> str:
        return (self.workdir / component / "stdout.log").read_text(errors="replace")

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            _stop_group(self.processes.pop(name))


def _zap() -> dict[str, Any]:
    return {
        "level": "info",
        "development": False,
        "encoding": "console",
        "disableStacktrace": True,
        "encoderConfig": {
            "messageKey": "message",
            "nameKey": "logger_name",
            "levelKey": "level",
            "timeKey": "ts",
            "callerKey": "caller",
            "stacktraceKey": "stack",
            "levelEncoder": "capital",
            "timeEncoder": "iso8601",
            "durationEncoder": "seconds",
            "callerEncoder": "short",
        },
        "outputPaths": ["stdout"],
        "errorOutputPaths": ["stdout"],
    }


def _common(directory: Path, name: str) -> dict[str, Any]:
    """What every component's configuration shares: logging, nginx, plain HTTP inside."""
    return {
        "zap": _zap(),
        "nginx": {
            "binary": _nginx(),
            "name": f"kraken-{name}",
            "cache_dir": str(directory / "nginx-cache"),
            "log_dir": str(directory),
        },
        "tls": {"server": {"disabled": True}, "client": {"disabled": True}},
    }


def _unix(directory: Path, name: str) -> dict[str, str]:
    return {"net": "unix", "addr": str(directory / f"{name}.sock")}


def _registry_security(backend: Backend) -> dict[str, Any]:
    return {
        "basic": {"username": backend.username, "password": backend.password},
        "tls": {"cas": [{"path": str(backend.ca)}]},
    }


def _origin(directory: Path, ports: dict[str, int], backend: Backend) -> dict[str, Any]:
    return {
        **_common(directory, "origin"),
        "metainfogen": {"piece_lengths": {0: "4MB"}},
        "peer_id_factory": "addr_hash",
        "scheduler": {"torrentlog": {"disable": True}},
        "localdb": {"source": str(directory / "origin.db")},
        "castore": {
            "upload_dir": str(directory / "upload"),
            "cache_dir": str(directory / "cache"),
        },
        "blobserver": {"listener": _unix(directory, "blobserver")},
        "cluster": {"static": [f"{LOOPBACK}:{ports['origin']}"]},
        "hashring": {"max_replica": 1},
        "writeback": {"retry_interval": "100ms", "poll_retries_interval": "250ms"},
        "backends": [
            {
                "namespace": ".*",
                "backend": {
                    "registry_blob": {
                        "address": backend.address,
                        "security": _registry_security(backend),
                    }
                },
            }
        ],
    }


def _tracker(directory: Path, ports: dict[str, int]) -> dict[str, Any]:
    return {
        **_common(directory, "tracker"),
        "peerhandoutpolicy": {"priority": "completeness"},
        "trackerserver": {"listener": _unix(directory, "tracker"), "announce_interval": "1s"},
        "origin": {"hosts": {"static": [f"{LOOPBACK}:{ports['origin']}"]}},
    }


def _build_index(directory: Path, ports: dict[str, int], backend: Backend) -> dict[str, Any]:
    return {
        **_common(directory, "build-index"),
        "localdb": {"source": str(directory / "index.db")},
        "store": {
            "upload_dir": str(directory / "upload"),
            "cache_dir": str(directory / "cache"),
        },
        "tagserver": {"listener": _unix(directory, "tagserver")},
        "backends": [
            {
                "namespace": ".*",
                "backend": {
                    "registry_tag": {
                        "address": backend.address,
                        "security": _registry_security(backend),
                    }
                },
            }
        ],
        "cluster": {"hosts": {"static": [f"{LOOPBACK}:{ports['build-index']}"]}},
        "origin": {"hosts": {"static": [f"{LOOPBACK}:{ports['origin']}"]}},
        "remotes": {},
        "tag_replication": {"retry_interval": "100ms", "poll_retries_interval": "250ms"},
        "tag_types": [{"namespace": ".*", "type": "docker", "root": "tags"}],
        "tag_store": {"write_through": False},
        "writeback": {"retry_interval": "100ms", "poll_retries_interval": "250ms"},
    }


def _docker_registry(directory: Path, name: str) -> dict[str, Any]:
    return {
        "docker": {
            "version": 0.1,
            "log": {"level": "error"},
            "http": _unix(directory, name),
        }
    }


def _proxy(directory: Path, ports: dict[str, int]) -> dict[str, Any]:
    return {
        **_common(directory, "proxy"),
        "castore": {
            "upload_dir": str(directory / "upload"),
            "cache_dir": str(directory / "cache"),
            "capacity": 1024,
        },
        "server": {"listener": {"net": "tcp", "addr": f"{LOOPBACK}:{ports['proxy-server']}"}},
        "registry": _docker_registry(directory, "registry"),
        "registryoverride": {"listener": _unix(directory, "registry-override")},
        "origin": {"hosts": {"static": [f"{LOOPBACK}:{ports['origin']}"]}},
        "build_index": {"hosts": {"static": [f"{LOOPBACK}:{ports['build-index']}"]}},
    }


def _agent(directory: Path, ports: dict[str, int]) -> dict[str, Any]:
    return {
        **_common(directory, "agent"),
        "scheduler": {"torrentlog": {"disable": True}},
        "store": {
            "download_dir": str(directory / "download"),
            "cache_dir": str(directory / "cache"),
        },
        "registry": _docker_registry(directory, "registry"),
        "peer_id_factory": "addr_hash",
        "allowed_cidrs": [LOOPBACK],
        "tracker": {"hosts": {"static": [f"{LOOPBACK}:{ports['tracker']}"]}},
        "build_index": {"hosts": {"static": [f"{LOOPBACK}:{ports['build-index']}"]}},
    }


def _argv(component: str, config: Path, ports: dict[str, int]) -> list[str]:
    argv = [_binary(component), f"--config={config}"]
    if component == "origin":
        return [
            *argv,
            f"--blobserver-hostname={LOOPBACK}",
            f"--blobserver-port={ports['origin']}",
            f"--peer-ip={LOOPBACK}",
            f"--peer-port={ports['origin-peer']}",
        ]
    if component == "agent":
        return [
            *argv,
            f"--peer-ip={LOOPBACK}",
            f"--peer-port={ports['agent-peer']}",
            f"--agent-server-port={ports['agent']}",
            f"--agent-registry-port={ports['agent-registry']}",
        ]
    return [*argv, f"--port={ports[component]}"]


def start_kraken(workdir: Path, backend: Backend) -> KrakenCluster:
    """Write the five configurations and start the cluster; wait until each is healthy."""
    names = [*COMPONENTS, "origin-peer", "proxy-server", "agent-peer", "agent-registry"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    cluster = KrakenCluster(workdir, ports)
    configs = {
        "origin": _origin(workdir / "origin", ports, backend),
        "tracker": _tracker(workdir / "tracker", ports),
        "build-index": _build_index(workdir / "build-index", ports, backend),
        "proxy": _proxy(workdir / "proxy", ports),
        "agent": _agent(workdir / "agent", ports),
    }
    try:
        for component in COMPONENTS:
            directory = workdir / component
            directory.mkdir(parents=True, exist_ok=True)
            config = directory / "config.yaml"
            config.write_text(yaml.safe_dump(configs[component]), encoding="utf-8")
            process = spawn(
                f"kraken-{component}",
                _argv(component, config, ports),
                log_path=directory / "stdout.log",
                cwd=directory,
            )
            cluster.processes[component] = process
            port = ports["proxy-server" if component == "proxy" else component]
            process.wait_until(
                partial(_healthy, port), timeout=START_TIMEOUT, what="GET /health = 200"
            )
    except BaseException:
        cluster.stop()
        raise
    return cluster
