"""skopeo copies images between an OCI layout, Moorage and the reference registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.clients.commands import ClientHome, run, unique
from tests.clients.images import OciImage, read_image

if TYPE_CHECKING:
    from pathlib import Path

    from tests.services.docker_registry import DockerRegistry
    from tests.services.moorage import MoorageServer

pytestmark = pytest.mark.clients


class Skopeo:
    """skopeo with a private policy and registries configuration, over plain HTTP."""

    def __init__(self, executable: str, home: ClientHome, registry: MoorageServer) -> None:
        self.base = [executable, "--policy", str(home.policy)]
        self.base += ["--registries.d", str(home.registries_d)]
        self.env = home.env()
        self.creds = f"{registry.admin_username}:{registry.admin_password}"

    def copy(self, source: str, dest: str, *, src_creds: bool, dest_creds: bool) -> None:
        """Copy keeping digests; ``*_creds`` log in to Moorage on that side."""
        argv = [*self.base, "copy", "--preserve-digests"]
        argv += ["--src-tls-verify=false", "--dest-tls-verify=false"]
        if src_creds:
            argv += ["--src-creds", self.creds]
        if dest_creds:
            argv += ["--dest-creds", self.creds]
        run([*argv, source, dest], env=self.env)

    def raw_manifest(self, image: str, *, creds: bool) -> bytes:
        argv = [*self.base, "inspect", "--raw", "--tls-verify=false"]
        if creds:
            argv += ["--creds", self.creds]
        return run([*argv, image], env=self.env).stdout.encode()


@pytest.fixture
def skopeo_client(skopeo: str, client_home: ClientHome, backend_registry: MoorageServer) -> Skopeo:
    return Skopeo(skopeo, client_home, backend_registry)


def _assert_same_image(pulled_layout: Path, tag: str, image: OciImage) -> None:
    pulled = read_image(pulled_layout, tag)
    assert pulled.manifest_digest == image.manifest_digest
    assert pulled.manifest.data == image.manifest.data
    for blob in (image.config, *image.layers):
        assert pulled.blobs[blob.digest] == blob.data, f"blob {blob.digest} differs"


def test_push_then_pull_oci_layout(
    skopeo_client: Skopeo,
    backend_registry: MoorageServer,
    oci_image: OciImage,
    tmp_path: Path,
) -> None:
    remote = f"docker://{backend_registry.host_port}/{unique('clients/skopeo')}:v1"
    skopeo_client.copy(f"oci:{oci_image.reference}", remote, src_creds=False, dest_creds=True)
    assert skopeo_client.raw_manifest(remote, creds=True) == oci_image.manifest.data

    pulled = tmp_path / "pulled"
    skopeo_client.copy(remote, f"oci:{pulled}:v1", src_creds=True, dest_creds=False)
    _assert_same_image(pulled, "v1", oci_image)


def test_copy_to_and_from_docker_registry(
    skopeo_client: Skopeo,
    backend_registry: MoorageServer,
    docker_registry: DockerRegistry,
    oci_image: OciImage,
    tmp_path: Path,
) -> None:
    ours = f"docker://{backend_registry.host_port}/{unique('clients/skopeo-out')}:v1"
    theirs = f"docker://{docker_registry.host_port}/{unique('peer/skopeo')}:v1"
    back = f"docker://{backend_registry.host_port}/{unique('clients/skopeo-back')}:v1"

    skopeo_client.copy(f"oci:{oci_image.reference}", ours, src_creds=False, dest_creds=True)
    skopeo_client.copy(ours, theirs, src_creds=True, dest_creds=False)
    assert skopeo_client.raw_manifest(theirs, creds=False) == oci_image.manifest.data

    skopeo_client.copy(theirs, back, src_creds=False, dest_creds=True)
    assert skopeo_client.raw_manifest(back, creds=True) == oci_image.manifest.data

    pulled = tmp_path / "pulled"
    skopeo_client.copy(back, f"oci:{pulled}:v1", src_creds=True, dest_creds=False)
    _assert_same_image(pulled, "v1", oci_image)
