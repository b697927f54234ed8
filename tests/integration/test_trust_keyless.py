"""Keyless Sigstore bundles end to end: a real Moorage, a real Temporal worker, offline.

The test is its own Sigstore: a Fulcio-style CA (root and intermediate) issues ten-minute
leaf certificates to OIDC identities, a Rekor-style log (a few entries, a Merkle tree, a
signed checkpoint) logs each signature with a signed entry timestamp and an inclusion
proof. Bundles are pushed as cosign v3 pushes them (OCI 1.1 referrers whose artifactType
is the bundle's media type), and signatures as cosign's tag mode writes them (a ``.sig``
manifest whose layers carry the certificate, chain and log entry as annotations). The
project's policy trusts that CA and log for two identities and wants both: the pull is
refused until both have signed, a bundle of another identity is refused with its reason
and does not count. The real cosign, given the same CA and log, verifies what the
registry then serves.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import pytest

from core.signature_formats import COSIGN_SIGN
from tests.api.oci import unique_project
from tests.clients.commands import make_client_home
from tests.integration.trust_rig import (
    Cosign,
    anonymous_pull,
    api,
    http_client,
    push_bundle,
    push_signature_layers,
    results,
    start_api,
    trust_settings,
)
from tests.integration.webhook_rig import until, worker
from tests.services.tools import find_tool
from tests.unit.core.sigstore_fixtures import (
    EMAIL,
    ISSUER,
    WORKFLOW,
    Log,
    dsse_bundle,
    keyless_document,
    message_bundle,
    new_fulcio,
    new_leaf,
    tag_annotations,
    trusted_root,
)
from tests.unit.core.trust_fixtures import simple_payload, statement

if TYPE_CHECKING:
    from pathlib import Path

    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration

IDENTITIES = [
    {"issuer": ISSUER, "subject": EMAIL},
    {
        "issuer_regexp": r"https://token\.actions\.example\.test",
        "subject_regexp": r"https://git\.example\.test/team/.*",
    },
]


def _with(found: list[dict[str, Any]], subject: str) -> list[dict[str, Any]]:
    return [r for r in found if (r.get("facts") or {}).get("certificate_subject") == subject]


async def test_keyless_bundles_of_trusted_identities_open_the_pull_gate(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    settings = trust_settings(tmp_path, temporal_server, request)
    registry = start_api(settings, tmp_path)
    try:
        oci = http_client(registry)
        project = unique_project()
        created = api(oci, "POST", "/api/v1/projects", json={"name": project, "public": True})
        assert created.status_code == 201, created.text
        repo = f"{project}/app"
        image = await anyio.to_thread.run_sync(lambda: oci.push_image(repo, "v1"))
        tagged = await anyio.to_thread.run_sync(lambda: oci.push_image(repo, "v2"))
        fulcio, log = new_fulcio(), Log()
        policy = {
            "keyless": [keyless_document("release", fulcio, log, IDENTITIES)],
            "signatures": {"required_signers": 2, "signers": ["release"]},
        }
        saved = api(oci, "PUT", f"/api/v1/projects/{project}/trust/policy", json=policy)
        assert saved.status_code == 200, saved.text
        shown = api(oci, "GET", f"/api/v1/projects/{project}/trust/policy").json()
        assert shown["document"]["keyless"][0]["identities"][1]["subject_regexp"]
        refused = anonymous_pull(oci, repo, "v1")
        assert refused.status_code == 403
        assert "signatures: 0 of 2 required distinct signers verified" in refused.text

        signed_statement = statement(
            image.digest, COSIGN_SIGN, {}, name=f"{registry.host_port}/{repo}"
        )
        intruder_key, intruder = new_leaf(fulcio, email="intruder@example.test")
        email_key, email_cert = new_leaf(fulcio)
        ci_key, ci_cert = new_leaf(fulcio, email=None, uri=WORKFLOW)
        async with worker(settings, None):  # type: ignore[arg-type]
            # another identity of the same CA: refused, with the reason
            wrong = dsse_bundle(intruder_key, intruder, log, payload=signed_statement)
            await anyio.to_thread.run_sync(lambda: push_bundle(oci, repo, image, wrong))
            await until(
                lambda: bool(results(oci, repo, image.digest)),
                what="the other identity's bundle checked",
            )
            [bad] = results(oci, repo, image.digest)
            assert not bad["verified"]
            assert bad["format"] == "sigstore-bundle"
            assert bad["location"] == "referrer"
            assert bad["reason"] == (
                f"certificate identity 'intruder@example.test' (issuer {ISSUER!r}) is not a "
                "trusted identity of 'release'"
            )
            assert "0 of 2" in anonymous_pull(oci, repo, "v1").text

            # the email identity signs (a DSSE bundle, as cosign v3 signs images)
            good = dsse_bundle(email_key, email_cert, log, payload=signed_statement)
            await anyio.to_thread.run_sync(lambda: push_bundle(oci, repo, image, good))
            await until(
                lambda: any(r["verified"] for r in _with(results(oci, repo, image.digest), EMAIL)),
                what="the email identity's bundle verified",
            )
            still = anonymous_pull(oci, repo, "v1")
            assert still.status_code == 403
            assert "signatures: 1 of 2 required distinct signers verified" in still.text

            # the CI workflow identity signs the manifest digest (a message signature)
            message = message_bundle(ci_key, ci_cert, log, digest=image.digest)
            await anyio.to_thread.run_sync(lambda: push_bundle(oci, repo, image, message))
            await until(
                lambda: anonymous_pull(oci, repo, "v1").status_code == 200,
                what="the pull allowed once both identities signed",
            )

            # cosign's tag mode: a .sig manifest, one layer per identity, the certificate,
            # chain and log entry in annotations
            assert anonymous_pull(oci, repo, "v2").status_code == 403
            payload = simple_payload(tagged.digest, f"{registry.host_port}/{repo}")
            layers = [
                (payload, tag_annotations(k, c, fulcio, log, payload))
                for k, c in ((email_key, email_cert), (ci_key, ci_cert))
            ]
            await anyio.to_thread.run_sync(
                lambda: push_signature_layers(oci, repo, tagged.digest, layers)
            )
            await until(
                lambda: anonymous_pull(oci, repo, "v2").status_code == 200,
                what="the tag-mode keyless signatures verified",
            )
            in_tags = results(oci, repo, tagged.digest)
            assert {r["facts"]["certificate_subject"] for r in in_tags if r["verified"]} == {
                EMAIL,
                WORKFLOW,
            }
            assert {r["location"] for r in in_tags} == {"tag"}

        found = results(oci, repo, image.digest)
        [by_email] = _with(found, EMAIL)
        [by_ci] = _with(found, WORKFLOW)
        for result in (by_email, by_ci):
            assert result["verified"], result
            assert result["signer"] == "release"
            assert result["kind"] == "signature"
            assert result["facts"]["certificate_issuer"] == ISSUER
            assert result["facts"]["log_proofs"] == ["set", "inclusion-proof"]
        assert by_email["predicate_type"] == COSIGN_SIGN
        assert by_email["key_fingerprint"] != by_ci["key_fingerprint"]
        verdict = api(
            oci, "GET", f"/api/v1/projects/{project}/trust/artifacts",
            params={"repository": repo, "reference": "v1"},
        ).json()  # fmt: skip
        assert verdict["allowed"] is True
        assert verdict["refused"] == 1
        assert anonymous_pull(oci, repo, "v1").status_code == 200

        # the real cosign, given the same CA and log as a trusted root, verifies what the
        # registry serves: the bundles (v1) and the tag-mode signatures (v2)
        cosign = Cosign(find_tool("cosign"), make_client_home(tmp_path / "home"), registry)
        (cosign.home.root / "root.json").write_text(json.dumps(trusted_root(fulcio, log)))
        for mode, digest in (
            ("--new-bundle-format", image.digest),
            ("--new-bundle-format=false", tagged.digest),
        ):
            args = [
                "verify", "--trusted-root", "root.json", "--certificate-identity", EMAIL,
                "--certificate-oidc-issuer", ISSUER, "--insecure-ignore-sct",
                "--allow-insecure-registry", "--allow-http-registry", mode,
                f"{registry.host_port}/{repo}@{digest}",
            ]  # fmt: skip
            verified = await anyio.to_thread.run_sync(cosign, *args)
            assert digest in verified.stdout + verified.stderr
    finally:
        registry.stop()
