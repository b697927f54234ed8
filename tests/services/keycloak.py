"""A real Keycloak (``keycloak-quarkus-dist``, ``start-dev``) for the tests.

``scripts/install-tools`` unpacks the pinned distribution into the tools cache; each
instance runs from its own copy (start-dev writes its H2 database and build state into
the distribution directory) with the realm from ``deploy/keycloak`` imported at start.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from tests.services.process import LOOPBACK, ManagedProcess, free_port, spawn
from tests.services.tools import tools_dir

KEYCLOAK_VERSION = "26.4.0"
REALM = "moorage"
REALM_FILE = Path(__file__).resolve().parents[2] / "deploy" / "keycloak" / "moorage-realm.json"
START_TIMEOUT = 480.0
ADMIN_USER = "kcadmin"
ADMIN_PASSWORD = "kcadmin-password"


@dataclass
class Keycloak:
    """Where the Keycloak instance answers, its master admin, and how long it took to start."""

    base_url: str
    port: int
    admin_user: str
    admin_password: str
    startup_seconds: float
    process: ManagedProcess

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/realms/{REALM}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    def stop(self) -> None:
        self.process.stop(timeout=30.0)


def keycloak_home() -> Path:
    """The unpacked distribution in the tools cache (``$MOORAGE_TOOLS_DIR``)."""
    home = tools_dir() / f"keycloak-{KEYCLOAK_VERSION}"
    if not (home / "bin" / "kc.sh").is_file():
        raise RuntimeError(f"Keycloak is not installed in {home}: run scripts/install-tools")
    return home


def _discovery_ready(issuer: str) -> bool:
    try:
        response = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def start_keycloak(workdir: Path) -> Keycloak:
    """Copy the distribution to ``workdir``, import the realm, start it, wait for discovery."""
    started = time.monotonic()
    home = workdir / "keycloak"
    if home.exists():
        shutil.rmtree(home)
    shutil.copytree(keycloak_home(), home, symlinks=True)
    (home / "data" / "import").mkdir(parents=True, exist_ok=True)
    shutil.copy(REALM_FILE, home / "data" / "import" / REALM_FILE.name)
    port, management_port = free_port(), free_port()
    env = {
        **os.environ,
        "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
        "KC_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "JAVA_OPTS_APPEND": "-Xms64m -Xmx512m",
    }
    process = spawn(
        "keycloak",
        [
            str(home / "bin" / "kc.sh"),
            "start-dev",
            "--import-realm",
            f"--http-host={LOOPBACK}",
            f"--http-port={port}",
            f"--http-management-port={management_port}",
            f"--hostname=http://{LOOPBACK}:{port}",
            "--log-level=WARN",
        ],
        log_path=workdir / "keycloak.log",
        env=env,
        cwd=home,
    )
    base_url = f"http://{LOOPBACK}:{port}"
    process.wait_until(
        partial(_discovery_ready, f"{base_url}/realms/{REALM}"),
        timeout=START_TIMEOUT,
        what="realm discovery document served",
        interval=0.5,
    )
    return Keycloak(
        base_url=base_url,
        port=port,
        admin_user=ADMIN_USER,
        admin_password=ADMIN_PASSWORD,
        startup_seconds=time.monotonic() - started,
        process=process,
    )
