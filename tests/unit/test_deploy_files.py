"""Deployment files: the compose file and the systemd units, checked by their own tools.

The compose file is validated by ``docker-compose config`` (Debian's ``docker-compose``,
which checks it against the Compose specification's JSON Schema without a container
engine); the units by ``systemd-analyze verify`` with the install path pointed at this
environment's ``moorage`` script.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
SYSTEMD = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/moorage/venv/bin/moorage"


def _compose_config(compose_file: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    assert tool is not None, "docker-compose (Debian package) is installed by scripts/install-tools"
    return subprocess.run(
        [tool, "--env-file", str(COMPOSE / "env.example"), "-f", str(compose_file), "config"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=compose_file.parent,
    )


def test_the_compose_file_is_valid_and_complete() -> None:
    done = _compose_config(COMPOSE / "compose.yaml")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    assert set(services) == {
        "postgres",
        "s3",
        "s3-bucket",
        "temporal",
        "temporal-ui",
        "keycloak",
        "migrate",
        "api",
        "worker",
    }
    assert services["api"]["command"] == ["moorage", "api", "--listen", "0.0.0.0:5000"]
    assert services["worker"]["command"] == ["moorage", "worker"]
    for process in ("api", "worker"):
        needs = services[process]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert needs["temporal"]["condition"] == "service_healthy"
        assert services[process]["read_only"] is True
        assert services[process]["cap_drop"] == ["ALL"]
        assert services[process]["environment"]["MOORAGE_STORAGE"] == "s3"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
        if name not in {"s3-bucket", "migrate", "temporal-ui"}:
            assert "healthcheck" in service or name == "worker", name


def test_the_compose_validator_refuses_an_unknown_key(tmp_path: Path) -> None:
    text = (COMPOSE / "compose.yaml").read_text(encoding="utf-8")
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace("  worker:\n", "  worker:\n    restart_policy: always\n"))
    shutil.copy(COMPOSE / "postgres-init.sql", tmp_path)
    done = _compose_config(broken)
    assert done.returncode != 0
    assert "restart_policy" in done.stderr


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze (Debian package systemd)"
    moorage = Path(sys.executable).parent / "moorage"
    assert moorage.exists(), moorage
    units = [*sorted(SYSTEMD.glob("*.service")), SYSTEMD / "moorage.target"]
    assert {u.name for u in units} == {
        "moorage-api.service",
        "moorage-worker.service",
        "moorage-migrate.service",
        "moorage.target",
    }
    for unit in units:
        text = unit.read_text(encoding="utf-8")
        if unit.suffix == ".service":
            assert f"ExecStart={INSTALLED} " in text
            assert "EnvironmentFile=/etc/moorage/moorage.env" in text
            assert "StateDirectory=moorage" in text
        # NOTE: the environment file is optional here only: this machine has no /etc/moorage.
        text = text.replace(INSTALLED, str(moorage)).replace(
            "EnvironmentFile=/etc/", "EnvironmentFile=-/etc/"
        )
        (tmp_path / unit.name).write_text(text, encoding="utf-8")
    done = subprocess.run(
        [analyze, "verify", *(str(tmp_path / u.name) for u in units)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # unknown keys are only warnings: none allowed
