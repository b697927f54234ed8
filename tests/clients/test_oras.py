"""oras pushes, attaches, discovers and pulls OCI artifacts on Moorage."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest

from tests.clients.commands import ClientHome, run, unique

if TYPE_CHECKING:
    from pathlib import Path

    from tests.clients.images import OciImage
    from tests.services.moorage import MoorageServer

pytestmark = pytest.mark.clients

ARTIFACT_TYPE = "application/vnd.moorage.test.artifact.v1"
PAYLOAD_TYPE = "application/vnd.moorage.test.payload.v1"
SBOM_TYPE = "application/vnd.moorage.test.sbom.v1"


class Oras:
    """oras with a private login to the registry under test, over plain HTTP."""

    def __init__(self, executable: str, home: ClientHome, registry: MoorageServer) -> None:
        self.executable = executable
        self.env = home.env()
        self.config = str(home.oras_config)
        self.registry = registry

    def __call__(self, *args: str, cwd: Path | None = None) -> str:
        argv = [self.executable, *args, "--plain-http", "--registry-config", self.config]
        return run(argv, env=self.env, cwd=cwd).stdout

    def login(self) -> None:
        run(
            [self.executable, "login", "--plain-http", "--registry-config", self.config,
             "-u", self.registry.admin_username, "--password-stdin", self.registry.host_port],
            env=self.env,
            stdin=self.registry.admin_password,
        )  # fmt: skip


@pytest.fixture
def oras_client(oras: str, client_home: ClientHome, backend_registry: MoorageServer) -> Oras:
    client = Oras(oras, client_home, backend_registry)
    client.login()
    return client


def _write(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def test_push_and_pull_artifact(
    oras_client: Oras, backend_registry: MoorageServer, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    payload = _write(source / "payload.bin", 200_000)
    reference = f"{backend_registry.host_port}/{unique('clients/oras')}:artifact"
    oras_client(
        "push", "--artifact-type", ARTIFACT_TYPE, reference, f"payload.bin:{PAYLOAD_TYPE}",
        cwd=source,
    )  # fmt: skip

    manifest = json.loads(oras_client("manifest", "fetch", reference))
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert [layer["mediaType"] for layer in manifest["layers"]] == [PAYLOAD_TYPE]

    pulled = tmp_path / "pulled"
    oras_client("pull", "-o", str(pulled), reference)
    assert (pulled / "payload.bin").read_bytes() == payload


def _referrers(discovered: dict[str, Any]) -> list[dict[str, Any]]:
    """Every referrer in ``oras discover --format json`` output, at any depth."""
    found: list[dict[str, Any]] = []
    pending = list(discovered.get("referrers") or [])
    while pending:
        entry = pending.pop()
        found.append(entry)
        pending.extend(entry.get("referrers") or [])
    return found


def test_attach_discover_and_pull_referrer(
    oras_client: Oras,
    backend_registry: MoorageServer,
    oci_image: OciImage,
    tmp_path: Path,
) -> None:
    repo = f"{backend_registry.host_port}/{unique('clients/oras-image')}"
    image = f"{repo}:v1"
    run(
        [oras_client.executable, "cp", "--from-oci-layout", oci_image.reference, image,
         "--to-plain-http", "--to-registry-config", oras_client.config],
        env=oras_client.env,
    )  # fmt: skip
    source = tmp_path / "source"
    sbom = _write(source / "sbom.json", 5_000)
    attached = json.loads(
        oras_client(
            "attach", "--artifact-type", SBOM_TYPE, "--format", "json", image,
            "sbom.json:application/json", cwd=source,
        )
    )  # fmt: skip
    attached_digest = attached["digest"]
    subject = json.loads(oras_client("manifest", "fetch", f"{repo}@{attached_digest}"))
    assert subject["subject"]["digest"] == oci_image.manifest_digest

    for args in ((), ("--artifact-type", SBOM_TYPE)):
        discovered = json.loads(oras_client("discover", *args, "--format", "json", image))
        referrers = _referrers(discovered)
        assert [(r["digest"], r["artifactType"]) for r in referrers] == [
            (attached_digest, SBOM_TYPE)
        ], discovered
    none = json.loads(
        oras_client("discover", "--artifact-type", "x/none", "--format", "json", image)
    )
    assert _referrers(none) == []

    pulled = tmp_path / "pulled"
    oras_client("pull", "-o", str(pulled), f"{repo}@{attached_digest}")
    assert (pulled / "sbom.json").read_bytes() == sbom
