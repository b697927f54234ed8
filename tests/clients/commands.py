"""Run client tools in a private environment and report their output on failure."""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

COMMAND_TIMEOUT = 180.0

POLICY = '{"default": [{"type": "insecureAcceptAnything"}]}\n'
REGISTRIES_CONF = 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'


@dataclass(frozen=True)
class ClientHome:
    """A private HOME with the configuration files the clients read, touching nothing else."""

    root: Path

    @property
    def policy(self) -> Path:
        return self.root / "policy.json"

    @property
    def registries_d(self) -> Path:
        return self.root / "registries.d"

    @property
    def docker_config(self) -> Path:
        return self.root / ".docker"

    @property
    def oras_config(self) -> Path:
        return self.root / "oras-config.json"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k.upper() not in {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "REGISTRY_AUTH_FILE"}
        }
        env.update(
            HOME=str(self.root),
            XDG_CONFIG_HOME=str(self.root / ".config"),
            XDG_RUNTIME_DIR=str(self.root / "run"),
            DOCKER_CONFIG=str(self.docker_config),
            REGISTRY_AUTH_FILE=str(self.root / "auth.json"),
            CONTAINERS_REGISTRIES_CONF=str(self.root / "registries.conf"),
            NO_PROXY="127.0.0.1,localhost",
        )
        return env


def unique(prefix: str) -> str:
    """A repository name that no other test (or backend run) uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


def make_client_home(root: Path) -> ClientHome:
    home = ClientHome(root)
    for directory in (root / ".config", root / "run", home.registries_d, home.docker_config):
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.policy.write_text(POLICY, encoding="utf-8")
    (root / "registries.conf").write_text(REGISTRIES_CONF, encoding="utf-8")
    return home


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    stdin: str | None = None,
    check: bool = True,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; with ``check`` a failure raises with the command's full output."""
    result = subprocess.run(
        list(argv),
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited with {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result
