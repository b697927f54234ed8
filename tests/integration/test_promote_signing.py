"""Signed promotions: the real ``cosign verify`` accepts the registry's signature with the
public key the registry exports; the key is stored sealed."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import SecretStr

from cli.composition import Composition, compose
from cli.startup import prepare_installation
from core.promotion_signing import SIGNING_KEY_KIND, signature_tag
from core.sealing import SecretBox
from core.settings import SecretSettings, Settings
from tests.api.oci import unique_project
from tests.clients.commands import make_client_home
from tests.integration.trust_rig import Cosign, api, http_client, start_api, trust_settings
from tests.services.control_backends import worker_env
from tests.services.moorage import REPO_ROOT
from tests.services.process import spawn
from tests.services.tools import find_tool

if TYPE_CHECKING:
    from pathlib import Path

    from tests.api.oci import OCIClient
    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration
BOUND = 120.0


def _promoted(oci: OCIClient, body: dict[str, Any]) -> dict[str, Any]:
    started = api(oci, "POST", "/api/v1/promotions", json=body)
    assert started.status_code in {200, 202}, started.text
    deadline = time.monotonic() + BOUND
    while True:
        state: dict[str, Any] = api(oci, "GET", f"/api/v1/promotions/{started.json()['id']}").json()
        if state["status"] in {"promoted", "refused", "failed"}:
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.3)


def test_cosign_verifies_a_signed_promotion_with_the_exported_key(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    settings = trust_settings(tmp_path, temporal_server, request)
    registry = start_api(settings, tmp_path)
    worker = spawn(
        "moorage worker",
        [sys.executable, "-m", "cli.main", "worker"],
        log_path=tmp_path / "worker.log",
        env=worker_env(settings, {}),
        cwd=REPO_ROOT,
    )
    try:
        home = make_client_home(tmp_path / "home")
        cosign = Cosign(find_tool("cosign"), home, registry)
        cosign.login()
        oci = http_client(registry)
        source_project, target_project = unique_project(), unique_project()
        for name in (source_project, target_project):
            assert api(oci, "POST", "/api/v1/projects", json={"name": name}).status_code == 201
        image = oci.push_image(f"{source_project}/app", "rc1")
        target = f"{target_project}/app"
        assert api(oci, "GET", f"/api/v1/projects/{target_project}/signing-key").status_code == 404

        body = {"source": f"{source_project}/app:rc1", "target": f"{target}:prod", "sign": True}
        assert _promoted(oci, body)["status"] == "promoted"
        exported = api(oci, "GET", f"/api/v1/projects/{target_project}/signing-key")
        assert exported.status_code == 200, exported.text
        (home.root / "moorage.pub").write_text(exported.json()["public_key"])

        ref = f"{registry.host_port}/{target}:prod"
        verify = ["verify", "--insecure-ignore-tlog", "--allow-insecure-registry"]
        verified = cosign(*verify, "--key", "moorage.pub", ref)
        claims = json.loads(verified.stdout.strip().splitlines()[-1])
        assert claims[0]["critical"]["image"]["docker-manifest-digest"] == image.digest

        cosign("generate-key-pair")
        assert cosign(*verify, "--key", "cosign.pub", ref, check=False).returncode != 0

        # Another signed promotion of the image in the project adds no second signature.
        again = {**body, "target": f"{target}:stable"}
        assert _promoted(oci, again)["status"] == "promoted"
        sig = oci.request("GET", f"/v2/{target}/manifests/{signature_tag(image.digest)}", target)
        assert len(sig.json()["layers"]) == 1

        root = compose(settings)
        try:
            project = root.projects.find(target_project)
            assert project is not None
            with root.metadata.read() as session:
                stored = json.loads(session.policies.get(project.id, SIGNING_KEY_KIND) or "{}")
        finally:
            root.close()
        assert stored["public_pem"] == exported.json()["public_key"]
        assert "PRIVATE" not in stored["sealed"]
        assert stored["sealed"].count(".") == 3  # version.key id.nonce.ciphertext
    finally:
        worker.stop()
        registry.process.stop()


def test_a_master_key_rotation_keeps_the_signing_key(tmp_path: Path) -> None:
    old, new = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()

    def root_with(*keys: str) -> Composition:
        secrets = SecretSettings(master_keys=[SecretStr(key) for key in keys])
        settings = Settings(data_dir=tmp_path / "data", secrets=secrets)
        prepare_installation(settings)
        return compose(settings)

    first = root_with(old)
    project = first.projects.ensure("signing")
    private, public = first.promotion_keys.ensure(project.id)
    first.close()

    rotated = root_with(new, old)  # the new master key seals; the old one still opens
    assert rotated.promotion_keys.ensure(project.id) == (private, public)
    with rotated.metadata.read() as session:
        sealed = json.loads(session.policies.get(project.id, SIGNING_KEY_KIND) or "{}")["sealed"]
    rotated.close()
    assert sealed.split(".")[1] == SecretBox([base64.b64decode(new)]).key_id  # re-sealed

    only_new = root_with(new)  # the old master key dropped: the same key still opens
    assert only_new.promotion_keys.ensure(project.id) == (private, public)
    assert only_new.promotion_keys.public_pem(project.id) == public
    only_new.close()
