"""Moorage's own container image: built without an engine, pushed into Moorage, run.

The image is built by ``deploy/image/build.py`` (mmdebstrap, so the test command runs as
root, as it does on CI), which pushes it into a running Moorage with skopeo and attaches
its SBOM with oras; it is pulled back, and its
root filesystem is run with ``chroot`` as the image's user: no container engine exists on
this machine, so ``chroot`` plus the four device nodes a runtime always provides stand in
for one. The smoke test then pushes and pulls an image through the Moorage running from
the image.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.clients.commands import make_client_home, run
from tests.clients.images import build_image
from tests.services.http import answers
from tests.services.process import free_port, spawn

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.services.moorage import MoorageServer
    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.clients

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 900
SBOM_TYPE = "application/vnd.cyclonedx+json"
DEVICES = {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}


def _read_layout(layout: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_text())
    return manifest, config, blobs / manifest["layers"][0]["digest"][7:]


@dataclass(frozen=True)
class Built:
    """The image's OCI layout and where the build pushed it."""

    layout: Path
    reference: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, registry: MoorageServer) -> Built:
    """The image, built once for this module and pushed into Moorage by the build."""
    layout = tmp_path_factory.mktemp("image") / "layout"
    reference = f"{registry.host_port}/deploy/moorage-{secrets.token_hex(4)}:smoke"
    creds = f"{registry.admin_username}:{registry.admin_password}"
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "image" / "build.py"), "--output", str(layout),
         "--tag", "smoke", "--push", reference, "--push-creds", creds, "--insecure"],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[image " in result.stdout  # the long steps report progress
    assert registry.admin_password not in result.stdout + result.stderr
    return Built(layout, reference)


@pytest.fixture(scope="module")
def image(built: Built) -> Path:
    return built.layout


def test_the_build_attaches_the_sbom_of_what_it_ships(
    built: Built, registry: MoorageServer, oras: str, tmp_path: Path
) -> None:
    home = make_client_home(tmp_path / "home")
    config = str(home.oras_config)
    run([oras, "login", "--plain-http", "--registry-config", config, "-u",
         registry.admin_username, "--password-stdin", registry.host_port],
        env=home.env(), stdin=registry.admin_password)  # fmt: skip
    found = json.loads(
        run([oras, "discover", "--plain-http", "--registry-config", config, "--format", "json",
             built.reference], env=home.env()).stdout
    )  # fmt: skip
    sboms = [r for r in found.get("referrers") or [] if r["artifactType"] == SBOM_TYPE]
    assert len(sboms) == 1
    pulled = tmp_path / "sbom"
    run([oras, "pull", "--plain-http", "--registry-config", config, "-o", str(pulled),
         f"{built.reference.rsplit(':', 1)[0]}@{sboms[0]['digest']}"], env=home.env())  # fmt: skip
    document = json.loads(next(pulled.iterdir()).read_text())
    assert document["bomFormat"] == "CycloneDX"
    names = {component["name"].lower() for component in document["components"]}
    assert {"litestar", "temporalio", "sqlmodel"} <= names
    _, _, layer = _read_layout(built.layout)
    with tarfile.open(layer) as archive:
        inside = archive.extractfile("opt/moorage/sbom.cdx.json")
        assert inside is not None
        assert json.loads(inside.read())["components"] == document["components"]


def test_image_runs_as_non_root_with_labels_and_no_compiler_or_extra_shell(image: Path) -> None:
    manifest, config, layer = _read_layout(image)
    settings = config["config"]
    assert settings["User"] == "10001:10001"
    assert settings["Entrypoint"] == ["/usr/bin/python3", "-m", "cli.main"]
    labels = settings["Labels"]
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert labels["org.opencontainers.image.revision"] == revision
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert manifest["annotations"] == labels
    with tarfile.open(layer) as archive:
        members = {m.name: m for m in archive.getmembers()}
        lock = archive.extractfile("opt/moorage/requirements.lock")
        assert lock is not None
        locked = lock.read().decode().split()
    for absent in ("usr/bin/bash", "usr/bin/perl", "usr/bin/gcc", "usr/bin/cc", "usr/bin/apt"):
        assert absent not in members, absent
    assert "usr/bin/python3.11" in members
    assert not [m for m in members.values() if m.ischr() or m.isblk()]
    data = members["var/lib/moorage"]
    assert (data.uid, data.gid) == (10001, 10001)
    assert {line.split("==")[0] for line in locked} >= {"litestar", "temporalio", "sqlmodel"}
    assert all("==" in line for line in locked)


def _unpack(layer: Path, root: Path) -> None:
    with tarfile.open(layer) as archive:
        # The layer is the one this test built and pulled back by digest.
        archive.extractall(root, filter="fully_trusted", numeric_owner=True)  # noqa: S202
    for name, (major, minor) in DEVICES.items():
        node = root / "dev" / name
        node.unlink(missing_ok=True)
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        node.chmod(0o666)


@pytest.fixture
def running_image(
    built: Built, registry: MoorageServer, temporal_server: TemporalServer, tmp_path: Path
) -> Iterator[tuple[int, str]]:
    """The image the build pushed, pulled back and run: its port and admin password."""
    home = make_client_home(tmp_path / "home")
    creds = f"{registry.admin_username}:{registry.admin_password}"
    image, reference = built.layout, built.reference
    pulled = tmp_path / "pulled"
    run(["skopeo", "copy", "--src-tls-verify=false", f"--src-creds={creds}",
         f"docker://{reference}", f"oci:{pulled}:smoke"], env=home.env())  # fmt: skip
    manifest, _, layer = _read_layout(pulled)
    assert manifest == _read_layout(image)[0]
    root = tmp_path / "root"
    _unpack(layer, root)
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": "/opt/moorage/lib",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MOORAGE_DATA_DIR": "/var/lib/moorage",
        "MOORAGE_AUTH__ADMIN_PASSWORD": "smoke-" + secrets.token_hex(8),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_TEMPORAL__ADDRESS": temporal_server.address,
    }
    process = spawn(
        "moorage from its image",
        ["/usr/sbin/chroot", "--userspec=10001:10001", str(root), "/usr/bin/python3", "-m",
         "cli.main", "api", "--listen", f"127.0.0.1:{port}", "--workers", "1"],
        log_path=tmp_path / "image-api.log",
        env=env,
    )  # fmt: skip
    try:
        process.wait_until(
            partial(answers, "127.0.0.1", port, "/healthz"), timeout=120, what="GET /healthz"
        )
        yield port, env["MOORAGE_AUTH__ADMIN_PASSWORD"]
    finally:
        process.stop()


def test_image_serves_pushes_and_pulls(running_image: tuple[int, str], tmp_path: Path) -> None:
    port, password = running_image
    assert answers("127.0.0.1", port, "/readyz")  # database, blob store and Temporal
    served = f"127.0.0.1:{port}"
    source = build_image(tmp_path / "source", tag="v1")
    home = make_client_home(tmp_path / "client")
    creds = f"admin:{password}"
    target = f"docker://{served}/smoke/app:v1"
    run(["skopeo", "copy", "--dest-tls-verify=false", f"--dest-creds={creds}",
         f"oci:{source.reference}", target], env=home.env())  # fmt: skip
    back = tmp_path / "back"
    run(["skopeo", "copy", "--src-tls-verify=false", f"--src-creds={creds}", target,
         f"oci:{back}:v1"], env=home.env())  # fmt: skip
    index = json.loads((back / "index.json").read_text())
    assert index["manifests"][0]["digest"] == source.manifest_digest
