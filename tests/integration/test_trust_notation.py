"""Notation signatures end to end: the real notation signs, the trust subscriber verifies.

``notation cert generate-test`` makes an RSA key and a self-signed code-signing
certificate; the project's policy trusts that certificate for its subject. Until the
signature (JWS, and COSE for a second image) is verified an anonymous pull is refused;
after it, the pull passes and the real ``notation verify`` accepts what the registry serves.
A CRL made with the test key revoking the certificate, added to the policy, closes the
gate again (re-verification on the policy change); at level ``permissive`` the revocation
is only a warning.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.api.oci import OCIClient, unique_project
from tests.clients.commands import make_client_home, run
from tests.integration.trust_rig import (
    anonymous_pull,
    api,
    http_client,
    results,
    start_api,
    trust_settings,
)
from tests.integration.webhook_rig import until, worker
from tests.services.tools import find_tool

if TYPE_CHECKING:
    from pathlib import Path

    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration

IDENTITY = "x509.subject: C=US, ST=WA, L=Seattle, O=Notary, CN=moorage.test"


async def test_a_notation_signature_opens_the_pull_gate(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    home = make_client_home(tmp_path / "home")
    settings = trust_settings(tmp_path, temporal_server, request)
    registry = start_api(settings, tmp_path)
    try:
        auth = f"{registry.admin_username}:{registry.admin_password}"
        config = {"auths": {registry.host_port: {"auth": base64.b64encode(auth.encode()).decode()}}}
        (home.docker_config / "config.json").write_text(json.dumps(config))
        notation, env = find_tool("notation"), home.env()
        oci = http_client(registry)
        project = unique_project()
        created = api(oci, "POST", "/api/v1/projects", json={"name": project, "public": True})
        assert created.status_code == 201, created.text
        repo = f"{project}/app"
        image = await anyio.to_thread.run_sync(lambda: oci.push_image(repo, "v1"))
        cose_image = await anyio.to_thread.run_sync(lambda: oci.push_image(repo, "v2"))
        ref = f"{registry.host_port}/{repo}@{image.digest}"
        cose_ref = f"{registry.host_port}/{repo}@{cose_image.digest}"
        run([notation, "cert", "generate-test", "--default", "moorage.test"], env=env)
        crt = home.root / ".config" / "notation" / "localkeys" / "moorage.test.crt"
        policy = {
            "certificates": [
                {"name": "notary", "certificate": crt.read_text(), "trusted_identities": [IDENTITY]}
            ],
            "signatures": {"required_signers": 1},
        }
        saved = api(oci, "PUT", f"/api/v1/projects/{project}/trust/policy", json=policy)
        assert saved.status_code == 200, saved.text
        assert anonymous_pull(oci, repo, "v1").status_code == 403

        async with worker(settings, None):  # type: ignore[arg-type]
            await anyio.to_thread.run_sync(
                lambda: run([notation, "sign", "--insecure-registry", ref], env=env)
            )

            def verified() -> bool:
                found = results(oci, repo, image.digest)
                return any(r["verified"] and r["signer"] == "notary" for r in found)

            await until(verified, what="the notation signature verified")
            await anyio.to_thread.run_sync(
                lambda: run(
                    [
                        notation,
                        "sign",
                        "--signature-format",
                        "cose",
                        "--insecure-registry",
                        cose_ref,
                    ],
                    env=env,
                )
            )

            def cose_verified() -> bool:
                found = results(oci, repo, cose_image.digest)
                return any(r["verified"] and r["signer"] == "notary" for r in found)

            await until(cose_verified, what="the COSE notation signature verified")
            # A second signature of v1: notation reads the referrers tag index it wrote
            # (``sha256-<hex>``) back through the pull gate before adding to it.
            await anyio.to_thread.run_sync(
                lambda: run(
                    [notation, "sign", "--signature-format", "cose", "--insecure-registry", ref],
                    env=env,
                )
            )

            def both_verified() -> bool:
                found = results(oci, repo, image.digest)
                return len([r for r in found if r["verified"]]) == 2

            await until(both_verified, what="both notation signatures of v1 verified")
        assert anonymous_pull(oci, repo, "v2").status_code == 200
        result, _ = results(oci, repo, image.digest)
        assert result["format"] == "notation"
        assert result["location"] == "referrer"
        assert result["facts"]["identity"] == "CN=moorage.test,O=Notary,L=Seattle,ST=WA,C=US"
        assert anonymous_pull(oci, repo, "v1").status_code == 200

        trust_policy = {
            "version": "1.0",
            "trustPolicies": [
                {
                    "name": "moorage",
                    "registryScopes": [f"{registry.host_port}/{repo}"],
                    "signatureVerification": {"level": "strict"},
                    "trustStores": ["ca:moorage.test"],
                    "trustedIdentities": [IDENTITY],
                }
            ],
        }
        (home.root / "trustpolicy.json").write_text(json.dumps(trust_policy))
        run([notation, "policy", "import", "--force", str(home.root / "trustpolicy.json")], env=env)
        checked = await anyio.to_thread.run_sync(
            lambda: run([notation, "verify", "--insecure-registry", ref], env=env)
        )
        assert "Successfully verified" in checked.stdout
        inspected = await anyio.to_thread.run_sync(
            lambda: run(
                [notation, "inspect", "--insecure-registry", "--output", "json", ref], env=env
            )
        )
        signatures = json.loads(inspected.stdout)["Signatures"]
        assert sorted(s["mediaType"] for s in signatures) == [
            "application/cose",
            "application/jose+json",
        ]
        for signature in signatures:
            assert signature["signedArtifact"]["digest"] == image.digest
            [certificate] = signature["certificates"]
            assert certificate["issuedTo"] == "CN=moorage.test,O=Notary,L=Seattle,ST=WA,C=US"
    finally:
        registry.stop()


def _revoking_crl(crt: Path, key_file: Path) -> str:
    """A CRL signed with notation's test key, revoking its (self-signed) certificate."""
    certificate = x509.load_pem_x509_certificate(crt.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    now = datetime.now(UTC)
    revoked = (
        x509.RevokedCertificateBuilder()
        .serial_number(certificate.serial_number)
        .revocation_date(now - timedelta(minutes=5))
        .build()
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(certificate.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + timedelta(days=1))
        .add_revoked_certificate(revoked)
        .sign(key, hashes.SHA256())
    )
    return crl.public_bytes(serialization.Encoding.PEM).decode()


def _notation_results(oci: OCIClient, repo: str, digest: str) -> list[dict[str, Any]]:
    return [r for r in results(oci, repo, digest) if r["format"] == "notation"]


async def test_a_revoked_notation_certificate_closes_the_gate_unless_permissive(
    tmp_path: Path, temporal_server: TemporalServer, request: pytest.FixtureRequest
) -> None:
    home = make_client_home(tmp_path / "home")
    settings = trust_settings(tmp_path, temporal_server, request)
    registry = start_api(settings, tmp_path)
    try:
        auth = f"{registry.admin_username}:{registry.admin_password}"
        config = {"auths": {registry.host_port: {"auth": base64.b64encode(auth.encode()).decode()}}}
        (home.docker_config / "config.json").write_text(json.dumps(config))
        notation, env = find_tool("notation"), home.env()
        oci = http_client(registry)
        project = unique_project()
        created = api(oci, "POST", "/api/v1/projects", json={"name": project, "public": True})
        assert created.status_code == 201, created.text
        repo = f"{project}/app"
        # One image per envelope format (JWS as v1, COSE as v2).
        images = {
            tag: await anyio.to_thread.run_sync(partial(oci.push_image, repo, tag))
            for tag in ("v1", "v2")
        }
        run([notation, "cert", "generate-test", "--default", "moorage.test"], env=env)
        keys = home.root / ".config" / "notation" / "localkeys"
        crt = keys / "moorage.test.crt"
        entry: dict[str, Any] = {
            "name": "notary",
            "certificate": crt.read_text(),
            "trusted_identities": [IDENTITY],
        }
        path = f"/api/v1/projects/{project}/trust/policy"

        def save(certificate: dict[str, Any]) -> None:
            policy = {"certificates": [certificate], "signatures": {"required_signers": 1}}
            saved = api(oci, "PUT", path, json=policy)
            assert saved.status_code == 200, saved.text

        save(entry)
        serial = f"{x509.load_pem_x509_certificate(crt.read_bytes()).serial_number:x}"
        revoking = entry | {"crls": [_revoking_crl(crt, keys / "moorage.test.key")]}

        def found() -> list[dict[str, Any]]:
            return [r for i in images.values() for r in _notation_results(oci, repo, i.digest)]

        def verified() -> bool:
            return len(found()) == 2 and all(r["verified"] for r in found())

        async with worker(settings, None):  # type: ignore[arg-type]
            for tag, envelope in (("v1", "jws"), ("v2", "cose")):
                ref = f"{registry.host_port}/{repo}@{images[tag].digest}"
                argv = [
                    notation,
                    "sign",
                    "--signature-format",
                    envelope,
                    "--insecure-registry",
                    ref,
                ]
                await anyio.to_thread.run_sync(partial(run, argv, env=env))
            await until(verified, what="the JWS and COSE notation signatures verified")
            assert anonymous_pull(oci, repo, "v1").status_code == 200

            save(revoking)

            def revoked() -> bool:
                return len(found()) == 2 and not any(r["verified"] for r in found())

            await until(revoked, what="the signatures re-verified as revoked")
            for result in found():
                assert f"(serial {serial}) is revoked by the CRL of " in result["reason"]
            for tag in images:
                refused = anonymous_pull(oci, repo, tag)
                assert refused.status_code == 403
                [error] = refused.json()["errors"]
                assert error["code"] == "DENIED"
                message = error["message"]
                assert "signatures: 0 of 1 required distinct signers verified" in message
                assert "notation signature refused: certificate 'CN=moorage.test" in message
                assert f"(serial {serial}) is revoked" in message

            save(revoking | {"signature_verification": {"level": "permissive"}})
            await until(verified, what="the revoked signatures accepted at level permissive")
        for result in found():
            assert result["signer"] == "notary"
            [warning] = result["facts"]["warnings"]
            assert warning.startswith("revocation: certificate 'CN=moorage.test")
            assert f"(serial {serial}) is revoked" in warning
        assert anonymous_pull(oci, repo, "v1").status_code == 200
        assert anonymous_pull(oci, repo, "v2").status_code == 200
    finally:
        registry.stop()
