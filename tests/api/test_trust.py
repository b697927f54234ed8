"""Trust policies through the API and the signature pull gate on ``/v2``, in process.

Signatures are made in Python exactly as cosign lays them out (``sha256-<hex>.sig``);
the verifier is the composition's (the one the trust subscriber's activity runs), its
results in the real store. The real cosign and the Temporal worker are exercised in
``tests/integration/test_trust_cosign.py``.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from api.app import create_app
from cli.composition import compose
from cli.startup import prepare_installation
from core.event_batches import EventValue
from core.settings import Settings
from core.signature_formats import SIGNATURE_ANNOTATION, SIMPLE_SIGNING
from core.trust_ports import TRUST_POLICY_CHANGED
from storage.db.repos.outbox import OUTBOX
from tests.api.oci import OCIClient, digest_of, unique_project
from tests.unit.core.trust_fixtures import new_key, public_pem, sign, simple_payload

PASSWORD = secrets.token_urlsafe(12)
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CI_KEY = new_key()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root: Path = tmp_path_factory.mktemp("trust")
    made = Settings.model_validate(
        {
            "data_dir": root,
            "auth": {"admin_password": PASSWORD, "create_project_on_push": True},
            "trust": {"verdict_cache_seconds": 0, "policy_cache_seconds": 0},
        }
    )
    prepare_installation(made)
    return made


@pytest.fixture(scope="module")
def oci(settings: Settings) -> Iterator[OCIClient]:
    with TestClient(create_app(settings)) as client:
        yield OCIClient(client, PASSWORD)


def _api(oci: OCIClient, method: str, path: str, **kwargs: Any) -> Any:
    return oci.client.request(method, path, auth=(oci.username, PASSWORD), **kwargs)


def _public_project(oci: OCIClient) -> str:
    name = unique_project()
    created = _api(oci, "POST", "/api/v1/projects", json={"name": name, "public": True})
    assert created.status_code == 201, created.text
    return name


def _policy(oci: OCIClient, project: str, **document: Any) -> dict[str, Any]:
    body = {"keys": [{"name": "ci", "public_key": public_pem(CI_KEY)}], **document}
    answer = _api(oci, "PUT", f"/api/v1/projects/{project}/trust/policy", json=body)
    assert answer.status_code == 200, answer.text
    saved: dict[str, Any] = answer.json()
    return saved


def _push_signature(oci: OCIClient, repo: str, digest: str, payload: bytes) -> str:
    config = b"{}"
    signature = base64.b64encode(sign(CI_KEY, payload)).decode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
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
                "annotations": {SIGNATURE_ANNOTATION: signature},
            }
        ],
    }
    tag = "sha256-" + digest.partition(":")[2] + ".sig"
    answer = oci.put_manifest(repo, tag, manifest)
    assert answer.status_code == 201, answer.text
    return digest_of(json.dumps(manifest).encode())


def _anonymous_pull(oci: OCIClient, repo: str, reference: str) -> Any:
    token = oci.token(f"repository:{repo}:pull", anonymous=True)
    return oci.client.get(
        f"/v2/{repo}/manifests/{reference}",
        headers={"Authorization": f"Bearer {token}", "Accept": MANIFEST},
    )


def test_an_unsigned_image_is_refused_until_a_trusted_signature_is_verified(
    oci: OCIClient, settings: Settings
) -> None:
    project = _public_project(oci)
    repo = f"{project}/app"
    image = oci.push_image(repo, "v1")
    saved = _policy(oci, project)
    assert saved["revision"] == 1

    refused = _anonymous_pull(oci, repo, "v1")
    assert refused.status_code == 403
    error = refused.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert error["message"] == (
        f"trust policy of project {project!r} not met: "
        "signatures: 0 of 1 required distinct signers verified (trusted: ci)"
    )
    token = oci.token(f"repository:{repo}:pull", anonymous=True)
    head = oci.client.head(
        f"/v2/{repo}/manifests/v1", headers={"Authorization": f"Bearer {token}", "Accept": MANIFEST}
    )
    assert head.status_code == 200  # no content; signers resolve digests with it
    # the caller who pushed (may push) still reads it: cosign must, to sign it
    own = oci.request("GET", f"/v2/{repo}/manifests/v1", repo, headers={"Accept": MANIFEST})
    assert own.status_code == 200

    reference = f"127.0.0.1:5000/{repo}"
    sig = _push_signature(oci, repo, image.digest, simple_payload(image.digest, reference))
    root = compose(settings)
    try:
        findings = root.trust_verifier.verify(repo, image.digest)
    finally:
        root.close()
    assert [f.reason for f in findings] == ["verified"]

    assert _anonymous_pull(oci, repo, "v1").status_code == 200
    assert _anonymous_pull(oci, repo, image.digest).status_code == 200
    verdict = _api(
        oci, "GET", f"/api/v1/projects/{project}/trust/artifacts",
        params={"repository": repo, "reference": "v1"},
    ).json()  # fmt: skip
    assert verdict["allowed"] is True
    assert verdict["signatures_verified"] == 1
    results = _api(
        oci, "GET", f"/api/v1/projects/{project}/trust/artifacts/results",
        params={"repository": repo, "reference": image.digest, "limit": 10},
    ).json()  # fmt: skip
    [result] = results["items"]
    assert result["artifact_digest"] == sig
    assert result["signer"] == "ci"
    assert result["location"] == "tag"
    assert result["kind"] == "signature"
    assert result["facts"]["identity"] == reference


def test_a_signature_copied_from_another_project_does_not_count(
    oci: OCIClient, settings: Settings
) -> None:
    source, target = _public_project(oci), _public_project(oci)
    image = oci.push_image(f"{target}/app", "v1")
    payload = simple_payload(image.digest, f"127.0.0.1:5000/{source}/app")
    _policy(oci, target)
    _push_signature(oci, f"{target}/app", image.digest, payload)
    root = compose(settings)
    try:
        [finding] = root.trust_verifier.verify(f"{target}/app", image.digest)
    finally:
        root.close()
    assert not finding.verified
    assert finding.reason == (
        f"signed for repository '{source}/app', not '{target}/app' (copied from elsewhere)"
    )
    assert _anonymous_pull(oci, f"{target}/app", "v1").status_code == 403


def test_signature_artifacts_stay_pullable_and_unenforced_policies_refuse_nothing(
    oci: OCIClient,
) -> None:
    project = _public_project(oci)
    repo = f"{project}/app"
    image = oci.push_image(repo, "v1")
    _push_signature(oci, repo, image.digest, simple_payload(image.digest, repo))
    _policy(oci, project)
    tag = "sha256-" + image.digest.partition(":")[2] + ".sig"
    assert _anonymous_pull(oci, repo, tag).status_code == 200
    assert _anonymous_pull(oci, repo, "v1").status_code == 403
    _policy(oci, project, enforce=False)
    assert _anonymous_pull(oci, repo, "v1").status_code == 200
    removed = _api(oci, "DELETE", f"/api/v1/projects/{project}/trust/policy")
    assert removed.status_code == 204
    assert _api(oci, "GET", f"/api/v1/projects/{project}/trust/policy").status_code == 404


def test_a_bad_policy_is_refused_naming_the_field(oci: OCIClient) -> None:
    project = _public_project(oci)
    answer = _api(
        oci, "PUT", f"/api/v1/projects/{project}/trust/policy",
        json={"keys": [{"name": "ci", "public_key": "not a key"}]},
    )  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert "keys.0.public_key" in answer.text
    anonymous = oci.client.get(f"/api/v1/projects/{project}/trust/policy")
    assert anonymous.status_code == 403  # a public project, but not its configuration
    edit = oci.client.put(f"/api/v1/projects/{project}/trust/policy", json={})
    assert edit.status_code == 401


def test_a_policy_change_is_an_outbox_event_that_verifies_the_project_again(
    oci: OCIClient, settings: Settings
) -> None:
    project = _public_project(oci)
    repo = f"{project}/app"
    image = oci.push_image(repo, "v1")
    _push_signature(oci, repo, image.digest, simple_payload(image.digest, repo))
    other = new_key("ed25519")
    keys = [{"name": "other", "public_key": public_pem(other)}]
    answer = _api(oci, "PUT", f"/api/v1/projects/{project}/trust/policy", json={"keys": keys})
    assert answer.status_code == 200, answer.text
    root = compose(settings)
    try:
        with root.metadata.read() as session:
            project_id = session.projects.get(project).id  # type: ignore[union-attr]
        changed = _policy_events(root, project_id)
        assert len(changed) == 1
        assert root.trust_verifier.handle(changed, lambda: None) == 1
        [refused] = root.trust_store.results(repo, image.digest)
        assert refused.finding.reason == "signature does not verify with any policy key (other)"
        _policy(oci, project)  # now with the key that signed
        changed = _policy_events(root, project_id)[1:]
        assert root.trust_verifier.handle(changed, lambda: None) == 1
        [verified] = root.trust_store.results(repo, image.digest)
        assert verified.finding.verified
        assert verified.policy_revision == 2
    finally:
        root.close()
    assert _anonymous_pull(oci, repo, "v1").status_code == 200


def _policy_events(root: Any, project_id: int) -> list[EventValue]:
    query = (
        select(OUTBOX)
        .where(OUTBOX.c.kind == TRUST_POLICY_CHANGED, OUTBOX.c.project_id == project_id)
        .order_by(OUTBOX.c.id)
    )
    with root.engines.read.connect() as connection:
        rows = connection.execute(query).all()
    return [
        EventValue(r.id, r.kind, r.project_id, r.repository, r.digest, r.tag, r.data, "")
        for r in rows
    ]


def test_openapi_lists_the_results_page_parameters(oci: OCIClient) -> None:
    schema = oci.client.get("/api/v1/schema/openapi.json")
    assert schema.status_code == 200, schema.text
    operation = schema.json()["paths"]["/api/v1/projects/{project}/trust/artifacts/results"]
    names = {p["name"] for p in operation["get"]["parameters"]}
    assert {"limit", "last", "repository", "reference", "kind"} <= names
