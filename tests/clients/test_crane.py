"""crane copies, lists, reads, pulls and deletes images on Moorage."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.clients.commands import ClientHome, run, unique
from tests.clients.images import OciImage, read_image

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from tests.services.docker_registry import DockerRegistry
    from tests.services.moorage import MoorageServer

pytestmark = pytest.mark.clients


class Crane:
    """crane with a private DOCKER_CONFIG logged in to the registry under test."""

    def __init__(self, executable: str, home: ClientHome, registry: MoorageServer) -> None:
        self.executable = executable
        self.env = home.env()
        run(
            [executable, "auth", "login", registry.host_port,
             "-u", registry.admin_username, "--password-stdin"],
            env=self.env,
            stdin=registry.admin_password,
        )  # fmt: skip

    def __call__(self, *args: str) -> str:
        return self.attempt(*args, check=True).stdout

    def attempt(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return run([self.executable, "--insecure", *args], env=self.env, check=check)


@pytest.fixture
def crane_client(crane: str, client_home: ClientHome, backend_registry: MoorageServer) -> Crane:
    return Crane(crane, client_home, backend_registry)


def test_crane_copy_inspect_pull_delete(
    crane_client: Crane,
    backend_registry: MoorageServer,
    docker_registry: DockerRegistry,
    oci_image: OciImage,
    tmp_path: Path,
) -> None:
    source = f"{docker_registry.host_port}/{unique('peer/crane')}:v1"
    repo = f"{backend_registry.host_port}/{unique('clients/crane')}"
    by_digest = f"{repo}@{oci_image.manifest_digest}"
    crane_client("push", str(oci_image.layout), source)
    crane_client("copy", source, f"{repo}:v1")

    assert crane_client("digest", f"{repo}:v1").strip() == oci_image.manifest_digest
    assert crane_client("manifest", f"{repo}:v1").encode() == oci_image.manifest.data
    assert crane_client("manifest", by_digest).encode() == oci_image.manifest.data
    assert "v1" in crane_client("ls", repo).split()

    pulled = tmp_path / "pulled"
    crane_client("pull", "--format=oci", f"{repo}:v1", str(pulled))
    image = read_image(pulled)
    assert image.manifest_digest == oci_image.manifest_digest
    for blob in (oci_image.config, *oci_image.layers):
        assert image.blobs[blob.digest] == blob.data, f"blob {blob.digest} differs"

    crane_client("delete", by_digest)
    for reference in (by_digest, f"{repo}:v1"):
        result = crane_client.attempt("manifest", reference)
        assert result.returncode != 0, f"{reference} still resolves after the delete"
        assert "MANIFEST_UNKNOWN" in result.stderr or "NAME_UNKNOWN" in result.stderr, result.stderr
    assert "v1" not in crane_client.attempt("ls", repo).stdout.split()
