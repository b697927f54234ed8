"""Signed promotions: the real ``cosign verify`` accepts the registry's signature with the
public key the registry exports; the key is stored sealed."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from cli.composition import Composition, compose
from cli.startup import prepare_installation
from core.promotion_signing import SIGNING_KEY_KIND, signature_tag
from core.sealing import SecretBox
from core.settings import SecretSettings, Settings
from core.signatures_notation import NOTARY_SIGNATURE
from tests.api.oci import digest_of, unique_project
from tests.clients.commands import ClientHome, make_client_home, run
from tests.integration.trust_rig import (
    Cosign,
    api,
    http_client,
    results,
    start_api,
    trust_settings,
)
from tests.services.control_backends import worker_env
from tests.services.moorage import REPO_ROOT
from tests.services.process import spawn
from tests.services.tools import find_tool

if TYPE_CHECKING:
    from collections.abc import Iterator
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


@contextlib.contextmanager
def _site(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[Any, Any, Cosign, OCIClient, str, str]]:
    """An API and a worker, cosign logged in (with its home), and two new projects."""
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
        yield registry, home, cosign, oci, source_project, target_project
    finally:
        worker.stop()
        registry.process.stop()


def test_cosign_verifies_a_signed_promotion_with_the_exported_key(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    settings = trust_settings(tmp_path, temporal_server, request)
    with _site(settings, tmp_path) as site:
        registry, home, cosign, oci, source_project, target_project = site
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

        # The real notation verifies the notation signature with the exported certificate.
        _notation_verifies(home, registry, target, image.digest, exported.json()["certificate"])

        # Another signed promotion of the image in the project adds no second signature.
        again = {**body, "target": f"{target}:stable"}
        assert _promoted(oci, again)["status"] == "promoted"
        sig = oci.request("GET", f"/v2/{target}/manifests/{signature_tag(image.digest)}", target)
        assert len(sig.json()["layers"]) == 1
        listed = oci.request(
            "GET",
            f"/v2/{target}/referrers/{image.digest}",
            target,
            params={"artifactType": NOTARY_SIGNATURE},
        )
        assert len(listed.json()["manifests"]) == 1

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


def test_a_rotated_key_leaves_old_signatures_verifiable_by_cosign_and_trust(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    settings = trust_settings(tmp_path, temporal_server, request)
    with _site(settings, tmp_path) as site:
        registry, home, cosign, oci, source_project, target_project = site
        source, target = f"{source_project}/app", f"{target_project}/app"
        before = oci.push_image(source, "one")
        after = oci.push_image(source, "two")
        keys_path = f"/api/v1/projects/{target_project}/signing-keys"

        signed = {"source": f"{source}:one", "target": f"{target}:one", "sign": True}
        assert _promoted(oci, signed)["status"] == "promoted"
        [old] = api(oci, "GET", keys_path).json()["items"]
        assert (old["version"], old["active"]) == (1, True)
        (home.root / "old.pub").write_text(old["public_key"])

        rotated = api(oci, "POST", f"{keys_path}/rotate")
        assert rotated.status_code == 201, rotated.text
        new = rotated.json()
        assert (new["version"], new["active"]) == (2, True)
        assert new["fingerprint"] != old["fingerprint"]
        (home.root / "new.pub").write_text(new["public_key"])
        current = api(oci, "GET", f"/api/v1/projects/{target_project}/signing-key").json()
        assert current["public_key"] == new["public_key"]
        listed = api(oci, "GET", keys_path).json()["items"]
        assert [(k["version"], k["active"]) for k in listed] == [(1, False), (2, True)]
        assert listed[0]["public_key"] == old["public_key"]  # still exported
        assert listed[0]["retired_at"]

        signed_after = {"source": f"{source}:two", "target": f"{target}:two", "sign": True}
        assert _promoted(oci, signed_after)["status"] == "promoted"

        verify = ["verify", "--insecure-ignore-tlog", "--allow-insecure-registry"]

        def verified(key: str, tag: str) -> bool:
            ref = f"{registry.host_port}/{target}:{tag}"
            answer: subprocess.CompletedProcess[str] = cosign(
                *verify, "--key", key, ref, check=False
            )
            return answer.returncode == 0

        assert verified("old.pub", "one")  # signed before the rotation, old key still good
        assert verified("new.pub", "two")  # signed after it, with the new key
        assert not verified("old.pub", "two")
        assert not verified("new.pub", "one")

        # The registry's trust verification accepts the stored signatures of both keys.
        policy = {
            "enforce": False,
            "keys": [
                {"name": "before", "public_key": old["public_key"]},
                {"name": "after", "public_key": new["public_key"]},
            ],
            "signatures": {"required_signers": 1},
        }
        saved = api(oci, "PUT", f"/api/v1/projects/{target_project}/trust/policy", json=policy)
        assert saved.status_code == 200, saved.text
        for image, signer in ((before, "before"), (after, "after")):
            deadline = time.monotonic() + BOUND
            while not any(
                r["verified"] and r["signer"] == signer for r in results(oci, target, image.digest)
            ):
                assert time.monotonic() < deadline, results(oci, target, image.digest)
                time.sleep(0.3)

        # A rotation needs project administration: a robot of the project may not.
        robot = api(
            oci,
            "POST",
            f"/api/v1/projects/{target_project}/robots",
            json={"name": "ci", "permissions": [{"repository": "*", "actions": ["pull"]}]},
        ).json()
        refused = oci.client.post(f"{keys_path}/rotate", auth=(robot["name"], robot["secret"]))
        assert refused.status_code in {403, 404}, refused.text
        assert len(api(oci, "GET", keys_path).json()["items"]) == 2


def test_a_signing_key_rotation_survives_a_master_key_reseal(tmp_path: Path) -> None:
    old, new = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()

    def root_with(*keys: str) -> Composition:
        secrets = SecretSettings(master_keys=[SecretStr(key) for key in keys])
        settings = Settings(data_dir=tmp_path / "data", secrets=secrets)
        prepare_installation(settings)
        return compose(settings)

    first = root_with(old)
    project = first.projects.ensure("rotating")
    assert first.promotion_keys.keys(project.id) == []
    _, public_1 = first.promotion_keys.ensure(project.id)
    made = first.promotion_keys.rotate(project.id)
    private_2, public_2 = first.promotion_keys.ensure(project.id)
    assert (made.version, made.public_pem, public_2 != public_1) == (2, public_2, True)
    first.close()

    resealed = root_with(new, old)
    assert resealed.promotion_keys.ensure(project.id) == (private_2, public_2)
    keys = resealed.promotion_keys.keys(project.id)
    resealed.close()
    assert [(k.version, k.public_pem, k.active) for k in keys] == [
        (1, public_1, False),
        (2, public_2, True),
    ]


def _notation_verifies(
    home: ClientHome, registry: Any, repository: str, digest: str, certificate: str
) -> None:
    """The real ``notation verify`` accepts the registry's signature of ``digest`` with the
    exported ``certificate`` in a ``ca`` trust store and the key's exact identity, and
    ``notation inspect`` shows the registry's one signature."""
    (home.root / "moorage.crt").write_text(certificate)
    subject = x509.load_pem_x509_certificate(certificate.encode()).subject
    notation, env = find_tool("notation"), home.env()
    run([notation, "cert", "add", "--type", "ca", "--store", "moorage",
         str(home.root / "moorage.crt")], env=env)  # fmt: skip
    [common_name] = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    identity = f"x509.subject: C=ZZ, ST=Moorage, O=Moorage, CN={common_name.value!s}"
    trust_policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "moorage",
                "registryScopes": [f"{registry.host_port}/{repository}"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:moorage"],
                "trustedIdentities": [identity],
            }
        ],
    }
    (home.root / "trustpolicy.json").write_text(json.dumps(trust_policy))
    run([notation, "policy", "import", "--force", str(home.root / "trustpolicy.json")], env=env)
    by_digest = f"{registry.host_port}/{repository}@{digest}"
    checked = run([notation, "verify", "--insecure-registry", by_digest], env=env)
    assert "Successfully verified" in checked.stdout
    inspected = run(
        [notation, "inspect", "--insecure-registry", "--output", "json", by_digest], env=env
    )
    [signature] = json.loads(inspected.stdout)["Signatures"]
    assert signature["unsignedAttributes"]["signingAgent"] == "Moorage"
    assert signature["signatureAlgorithm"] == "ECDSA-SHA-256"
    [issued] = signature["certificates"]
    assert issued["issuedTo"] == f"CN={common_name.value!s},O=Moorage,ST=Moorage,C=ZZ"


def test_a_project_that_signs_pushes_signs_each_image_pushed_by_tag(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    """``sign_pushes``: the registry signs a tagged push (cosign's and notation's formats),
    which the real cosign and notation verify with the exported key and certificate; a
    manifest pushed by digest only, and the signatures themselves, are not signed."""
    settings = trust_settings(tmp_path, temporal_server, request)
    with _site(settings, tmp_path) as site:
        registry, home, cosign, oci, project, _ = site
        repo = f"{project}/app"
        policy = {"enforce": False, "sign_pushes": True, "signatures": {"required_signers": 0}}
        saved = api(oci, "PUT", f"/api/v1/projects/{project}/trust/policy", json=policy)
        assert saved.status_code == 200, saved.text

        untagged = oci.image(repo)
        payload = json.dumps(untagged).encode()
        assert oci.put_manifest(repo, digest_of(payload), payload).status_code == 201
        image = oci.push_image(repo, "v1")

        def signed(digest: str) -> bool:
            tag = signature_tag(digest)
            return oci.request("GET", f"/v2/{repo}/manifests/{tag}", repo).status_code == 200

        def notation_signatures(digest: str) -> list[Any]:
            listed = oci.request(
                "GET", f"/v2/{repo}/referrers/{digest}", repo,
                params={"artifactType": NOTARY_SIGNATURE},
            )  # fmt: skip
            found: list[Any] = listed.json()["manifests"]
            return found

        deadline = time.monotonic() + BOUND
        while not (signed(image.digest) and notation_signatures(image.digest)):
            assert time.monotonic() < deadline, "the push was not signed"
            time.sleep(0.3)
        exported = api(oci, "GET", f"/api/v1/projects/{project}/signing-key").json()
        (home.root / "moorage.pub").write_text(exported["public_key"])
        verify = ["verify", "--insecure-ignore-tlog", "--allow-insecure-registry"]
        verified = cosign(*verify, "--key", "moorage.pub", f"{registry.host_port}/{repo}:v1")
        claims = json.loads(verified.stdout.strip().splitlines()[-1])
        assert claims[0]["critical"]["image"]["docker-manifest-digest"] == image.digest
        _notation_verifies(home, registry, repo, image.digest, exported["certificate"])

        # the trust subscriber handles a repository's events in order: the tagged push
        # was signed, so the earlier push by digest was seen and left alone
        assert not signed(digest_of(payload))
        assert notation_signatures(digest_of(payload)) == []
        sig = oci.request("GET", f"/v2/{repo}/manifests/{signature_tag(image.digest)}", repo)
        assert not signed(digest_of(sig.content))  # a signature is not signed again
        assert len(notation_signatures(image.digest)) == 1
