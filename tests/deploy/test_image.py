"""Moorage's own container image: built without an engine, pushed into Moorage, run.

The image is built once for the module by ``deploy/image/build.py`` (mmdebstrap, so the
test command runs as root, as it does on CI), which pushes it with skopeo into a running
Moorage (``moorage api`` and ``moorage worker`` on a task queue of their own), signs it
with cosign and an operator key, has Moorage scan it and attaches its own SBOM with oras.
The tests read what the registry then holds: the scan report, Moorage's SBOM referrers of
the packages it found, the signature (``cosign verify`` and Moorage's trust results). The
image is pulled back, and its root filesystem is run with ``chroot`` as the image's user:
no container engine exists on this machine, so ``chroot`` plus the four device nodes a
runtime always provides stand in for one. The smoke test then pushes and pulls an image
through the Moorage running from the image.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import subprocess
import sys
import tarfile
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.api.oci import OCIClient
from tests.clients.commands import ClientHome, make_client_home, run
from tests.clients.images import build_image
from tests.services.http import answers
from tests.services.moorage import REPO_ROOT, MoorageServer, start_moorage
from tests.services.process import ManagedProcess, free_port, spawn
from tests.services.tools import find_tool

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.services.temporal import TemporalServer

# NOTE: one worker runs the whole module, so the image is built once (module fixtures
# are per xdist worker: split over two, the ~3-minute build ran twice at once).
pytestmark = [pytest.mark.clients, pytest.mark.xdist_group("image")]

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 900
SBOM_TYPE = "application/vnd.cyclonedx+json"
SPDX_TYPE = "application/spdx+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DESCRIPTION = "org.opencontainers.image.description"
BUILD_SBOM = "CycloneDX SBOM of the locked runtime dependencies (image build)"
DEVICES = {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}


def _read_layout(layout: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    index = json.loads((layout / "index.json").read_text())
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"][7:]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"][7:]).read_text())
    return manifest, config, blobs / manifest["layers"][0]["digest"][7:]


@dataclass(frozen=True)
class Installation:
    """A Moorage that scans and verifies: the API, a worker, an admin client."""

    server: MoorageServer
    worker: ManagedProcess
    oci: OCIClient

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        auth = (self.server.admin_username, self.server.admin_password)
        return self.oci.client.request(method, path, auth=auth, **kwargs)


@pytest.fixture(scope="module")
def installation(
    tmp_path_factory: pytest.TempPathFactory, temporal_server: TemporalServer
) -> Iterator[Installation]:
    root = tmp_path_factory.mktemp("moorage")
    settings = {
        "MOORAGE_AUTH__ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_TEMPORAL__ADDRESS": temporal_server.address,
        "MOORAGE_TEMPORAL__TASK_QUEUE": f"q-{uuid.uuid4().hex}",
        "MOORAGE_DATA_DIR": str(root / "data"),
        "MOORAGE_STORAGE": "filesystem",
        "MOORAGE_CONTROL__OUTBOX_POLL_SECONDS": "0.2",
        "MOORAGE_CONTROL__GC_EVERY_SECONDS": "0",
        "MOORAGE_CONTROL__POLICY_EVERY_SECONDS": "0",
    }
    server = start_moorage(root / "api", settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    worker = spawn("moorage worker", [sys.executable, "-m", "cli.main", "worker"],
                   log_path=root / "worker.log", env=env | settings | {"PYTHONUNBUFFERED": "1"},
                   cwd=REPO_ROOT)  # fmt: skip
    http = httpx.Client(base_url=server.url, timeout=30)
    try:
        yield Installation(server, worker, OCIClient(http, server.admin_password))
    finally:
        http.close()
        worker.stop()
        server.stop()


@dataclass(frozen=True)
class Signer:
    """An operator's cosign key pair (``cosign generate-key-pair``) and its password."""

    key: Path
    public: Path
    password: str


def _key_pair(cosign: str, directory: Path) -> Signer:
    directory.mkdir(parents=True)
    password = secrets.token_urlsafe(12)
    env = {"PATH": os.environ["PATH"], "HOME": str(directory), "COSIGN_PASSWORD": password}
    run([cosign, "generate-key-pair"], env=env, cwd=directory)
    return Signer(directory / "cosign.key", directory / "cosign.pub", password)


@pytest.fixture(scope="module")
def cosign() -> str:
    return find_tool("cosign")


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory, cosign: str) -> Signer:
    return _key_pair(cosign, tmp_path_factory.mktemp("release") / "keys")


@dataclass(frozen=True)
class Built:
    """The image's OCI layout, where the build pushed it, its digest and what it printed."""

    layout: Path
    reference: str
    repository: str
    digest: str
    output: str


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, installation: Installation, signer: Signer
) -> Built:
    """The image, built once for this module, published into Moorage by the build."""
    # The project exists first, with a trust policy naming the operator's key (recording
    # only), so that Moorage verifies the signature when it arrives.
    created = installation.api("POST", "/api/v1/projects", json={"name": "deploy"})
    assert created.status_code == 201, created.text
    policy = {
        "enforce": False,
        "keys": [{"name": "release", "public_key": signer.public.read_text()}],
        "signatures": {"required_signers": 1},
    }
    saved = installation.api("PUT", "/api/v1/projects/deploy/trust/policy", json=policy)
    assert saved.status_code == 200, saved.text
    registry = installation.server
    layout = tmp_path_factory.mktemp("image") / "layout"
    repository = f"deploy/moorage-{secrets.token_hex(4)}"
    reference = f"{registry.host_port}/{repository}:smoke"
    creds = f"{registry.admin_username}:{registry.admin_password}"
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "image" / "build.py"), "--output", str(layout),
         "--tag", "smoke", "--push", reference, "--push-creds", creds, "--insecure",
         "--cosign-key", str(signer.key)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False,
        env=os.environ | {"COSIGN_PASSWORD": signer.password},
    )  # fmt: skip
    (layout.parent / "build.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[image " in result.stdout  # the long steps report progress
    assert registry.admin_password not in result.stdout + result.stderr
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    return Built(layout, reference, repository, digest, result.stdout)


@pytest.fixture(scope="module")
def image(built: Built) -> Path:
    return built.layout


def _referrers(installation: Installation, built: Built) -> list[dict[str, Any]]:
    """The image's referrers, from the OCI referrers API."""
    path = f"/v2/{built.repository}/referrers/{built.digest}"
    answer = installation.oci.request("GET", path, built.repository)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(OCI_INDEX)
    listed: list[dict[str, Any]] = answer.json()["manifests"]
    return listed


def _document(installation: Installation, built: Built, manifest_digest: str) -> Any:
    """The one document (layer) of an SBOM referrer; checks its subject is the image."""
    repo = built.repository
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    answer = installation.oci.request(
        "GET", f"/v2/{repo}/manifests/{manifest_digest}", repo, headers=accept
    )
    assert answer.status_code == 200, answer.text
    manifest = answer.json()
    assert manifest["subject"]["digest"] == built.digest
    (layer,) = manifest["layers"]
    blob = installation.oci.request("GET", f"/v2/{repo}/blobs/{layer['digest']}", repo)
    assert blob.status_code == 200, blob.text
    return blob.json()


def test_moorage_scanned_the_image_and_attached_sboms_of_its_packages(
    built: Built, installation: Installation
) -> None:
    summary = installation.api("GET", f"/api/v1/projects/deploy/scans/{built.digest}")
    assert summary.status_code == 200, summary.text
    assert summary.json()["status"] == "succeeded"
    assert summary.json()["repository"] == built.repository
    assert f"scan: {built.repository}@{built.digest}: succeeded" in built.output
    made_by_moorage = {
        r["artifactType"]: r["digest"]
        for r in _referrers(installation, built)
        if r.get("annotations", {}).get(DESCRIPTION, "").endswith("made by Moorage")
    }
    assert sorted(made_by_moorage) == [SPDX_TYPE, SBOM_TYPE]
    cyclonedx = _document(installation, built, made_by_moorage[SBOM_TYPE])
    found = {(c.get("purl") or "").split("@")[0] for c in cyclonedx["components"]}
    # the Debian packages of the root filesystem and the Python packages of the application
    assert {"pkg:deb/debian/libc6", "pkg:deb/debian/python3.11"} <= found
    assert {"pkg:pypi/litestar", "pkg:pypi/temporalio", "pkg:pypi/sqlmodel"} <= found
    assert "pkg:deb/debian/bash" not in found  # purged by the build
    spdx = _document(installation, built, made_by_moorage[SPDX_TYPE])
    assert spdx["spdxVersion"] == "SPDX-2.3"
    assert {"libc6", "litestar"} <= {p["name"] for p in spdx["packages"]}


def _verify(
    cosign: str, public: Path, image: str, home: ClientHome
) -> subprocess.CompletedProcess[str]:
    command = [cosign, "verify", "--key", str(public), "--insecure-ignore-tlog=true",
               "--allow-insecure-registry", image]  # fmt: skip
    return run(command, env=home.env(), check=False)


def test_the_image_is_signed_with_the_operators_key(
    built: Built, installation: Installation, signer: Signer, cosign: str, tmp_path: Path
) -> None:
    registry = installation.server
    image = f"{registry.host_port}/{built.repository}@{built.digest}"
    home = make_client_home(tmp_path / "home")
    auth = base64.b64encode(f"{registry.admin_username}:{registry.admin_password}".encode())
    config = {"auths": {registry.host_port: {"auth": auth.decode()}}}
    (home.docker_config / "config.json").write_text(json.dumps(config))
    verified = _verify(cosign, signer.public, image, home)
    assert verified.returncode == 0, verified.stderr
    assert built.digest in verified.stdout
    other = _key_pair(cosign, tmp_path / "other")
    refused = _verify(cosign, other.public, image, home)
    assert refused.returncode != 0
    assert "no matching signatures" in refused.stderr
    # Moorage verified the signature with the key its trust policy names
    query = {"repository": built.repository, "reference": built.digest, "kind": "signature"}
    path = "/api/v1/projects/deploy/trust/artifacts/results"

    def signed_by_release() -> bool:
        answer = installation.api("GET", path, params=query)
        assert answer.status_code == 200, answer.text
        return any(r["verified"] and r["signer"] == "release" for r in answer.json()["items"])

    installation.worker.wait_until(signed_by_release, timeout=120, what="a verified signature")
    verdict = installation.api(
        "GET", "/api/v1/projects/deploy/trust/artifacts",
        params={"repository": built.repository, "reference": "smoke"},
    ).json()  # fmt: skip
    assert verdict["digest"] == built.digest
    assert verdict["signatures_verified"] == 1
    assert verdict["failed_requirement"] is None


def test_the_build_attaches_the_sbom_of_what_it_ships(
    built: Built, installation: Installation, oras: str, tmp_path: Path
) -> None:
    registry = installation.server
    home = make_client_home(tmp_path / "home")
    config = str(home.oras_config)
    run([oras, "login", "--plain-http", "--registry-config", config, "-u",
         registry.admin_username, "--password-stdin", registry.host_port],
        env=home.env(), stdin=registry.admin_password)  # fmt: skip
    found = json.loads(
        run([oras, "discover", "--plain-http", "--registry-config", config, "--format", "json",
             built.reference], env=home.env()).stdout
    )  # fmt: skip
    # the build's own SBOM, told apart from Moorage's by its description
    sboms = [
        r for r in found.get("referrers") or []
        if r["artifactType"] == SBOM_TYPE
        and r.get("annotations", {}).get(DESCRIPTION) == BUILD_SBOM
    ]  # fmt: skip
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
    built: Built, installation: Installation, temporal_server: TemporalServer, tmp_path: Path
) -> Iterator[tuple[int, str]]:
    """The image the build pushed, pulled back and run: its port and admin password."""
    registry = installation.server
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
