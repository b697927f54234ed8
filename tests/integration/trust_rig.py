"""What the cosign tests share: a real Moorage, an in-process worker, cosign, a client home.

The API runs as ``moorage api`` (``tests.services.moorage``) so cosign talks HTTP to it;
the worker and the outbox dispatcher run in the test's event loop on the same database
and Temporal (``tests.integration.webhook_rig.worker``), so verification runs as the trust
subscriber's batch workflows do in production.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from core.settings import Settings
from core.signature_formats import BUNDLE_V03, SIGNATURE_ANNOTATION, SIMPLE_SIGNING
from core.trust_settings import TrustSettings
from tests.api.oci import OCIClient, Pushed, digest_of
from tests.clients.commands import ClientHome, run
from tests.services.control_backends import control_settings, worker_env
from tests.services.moorage import MoorageServer, start_moorage
from tests.unit.core.trust_fixtures import PrivateKey, sign, simple_payload

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from tests.services.temporal import TemporalServer

CONTROL: dict[str, Any] = {
    "outbox_poll_seconds": 0.05,
    "event_batch_seconds": 0.2,
    "event_batch_size": 100,
    "gc_every_seconds": 0,
    "policy_every_seconds": 0,
}


def trust_settings(
    root: Path, temporal: TemporalServer, request: pytest.FixtureRequest
) -> Settings:
    settings = control_settings("sqlite-fs", root, temporal, request, CONTROL, label="trust")
    return settings.model_copy(
        update={"trust": TrustSettings(verdict_cache_seconds=0, policy_cache_seconds=0)}
    )


def start_api(settings: Settings, root: Path) -> MoorageServer:
    """``moorage api`` on the settings' installation, its trust caches off."""
    env = {k: v for k, v in worker_env(settings, {}).items() if k.startswith("MOORAGE_")}
    password = settings.auth.admin_password
    assert password is not None
    env |= {
        "MOORAGE_AUTH__ADMIN_PASSWORD": password.get_secret_value(),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_TRUST__VERDICT_CACHE_SECONDS": "0",
        "MOORAGE_TRUST__POLICY_CACHE_SECONDS": "0",
    }
    return start_moorage(root / "api", env, ["--workers", "1"])


@dataclass
class Cosign:
    """The real cosign in a private home, logged in to the registry as the admin."""

    binary: str
    home: ClientHome
    registry: MoorageServer

    def login(self) -> None:
        auth = base64.b64encode(
            f"{self.registry.admin_username}:{self.registry.admin_password}".encode()
        ).decode()
        config = {"auths": {self.registry.host_port: {"auth": auth}}}
        (self.home.docker_config / "config.json").write_text(json.dumps(config))

    def __call__(self, *args: str, check: bool = True, **env: str) -> Any:
        return run(
            [self.binary, *args],
            env={**self.home.env(), "COSIGN_PASSWORD": "", **env},
            cwd=self.home.root,
            check=check,
        )


def http_client(registry: MoorageServer) -> OCIClient:
    client = httpx.Client(base_url=registry.url, timeout=30)
    return OCIClient(client, registry.admin_password, registry.admin_username)


def api(oci: OCIClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return oci.client.request(method, path, auth=(oci.username, oci.password), **kwargs)


def anonymous_pull(oci: OCIClient, repo: str, reference: str) -> httpx.Response:
    token = oci.token(f"repository:{repo}:pull", anonymous=True)
    return oci.client.get(
        f"/v2/{repo}/manifests/{reference}",
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.oci.image.manifest.v1+json",
        },
    )


def results(oci: OCIClient, repo: str, digest: str) -> list[dict[str, Any]]:
    project = repo.partition("/")[0]
    answer = api(
        oci, "GET", f"/api/v1/projects/{project}/trust/artifacts/results",
        params={"repository": repo, "reference": digest, "limit": 100},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["items"]
    return found


def push_signature(oci: OCIClient, repo: str, digest: str, key: PrivateKey) -> str:
    """Push a ``sha256-<hex>.sig`` manifest as cosign lays it out; return its digest."""
    payload = simple_payload(digest, f"127.0.0.1:5000/{repo}")
    annotations = {SIGNATURE_ANNOTATION: base64.b64encode(sign(key, payload)).decode()}
    return push_signature_layers(oci, repo, digest, [(payload, annotations)])


def push_signature_layers(
    oci: OCIClient, repo: str, digest: str, layers: list[tuple[bytes, dict[str, str]]]
) -> str:
    """Push a ``.sig`` manifest of simple-signing layers (payload, annotations)."""
    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": oci.push_blob(repo, config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": SIMPLE_SIGNING,
                "digest": oci.push_blob(repo, payload),
                "size": len(payload),
                "annotations": annotations,
            }
            for payload, annotations in layers
        ],
    }
    raw = json.dumps(manifest).encode()
    answer = oci.put_manifest(repo, "sha256-" + digest.partition(":")[2] + ".sig", raw)
    assert answer.status_code == 201, answer.text
    return digest_of(raw)


def push_bundle(oci: OCIClient, repo: str, image: Pushed, bundle: dict[str, Any]) -> str:
    """Push a Sigstore bundle as cosign v3 does: an OCI 1.1 referrer of the image."""
    raw_bundle = json.dumps(bundle).encode()
    empty = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": BUNDLE_V03,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": oci.push_blob(repo, empty),
            "size": len(empty),
        },
        "layers": [
            {
                "mediaType": BUNDLE_V03,
                "digest": oci.push_blob(repo, raw_bundle),
                "size": len(raw_bundle),
            }
        ],
        "subject": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.digest,
            "size": len(image.payload),
        },
    }
    raw = json.dumps(manifest).encode()
    digest = digest_of(raw)
    answer = oci.put_manifest(repo, digest, raw)
    assert answer.status_code == 201, answer.text
    return digest
