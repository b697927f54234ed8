"""The real cosign judges the test's keyless bundles as Moorage does.

The bundles the keyless tests build (``tests.unit.core.sigstore_fixtures``) are checked
by ``cosign verify-blob`` / ``verify-blob-attestation`` offline, with the same CA and log
as a Sigstore trusted root: what cosign accepts Moorage verifies, and what cosign refuses
(another identity, an entry whose time nothing signs, a v0.3 bundle without an inclusion
proof) Moorage refuses, so the formats
both sides assume are Sigstore's. (The test CA logs no SCTs: cosign is told to skip them.)
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pytest

from core.signature_formats import BUNDLE_V03, Entry, Limits, Target, verify_entry
from core.trust_policy import KeylessDocument
from tests.clients.commands import make_client_home, run
from tests.services.tools import find_tool
from tests.unit.core.sigstore_fixtures import (
    EMAIL,
    ISSUER,
    Log,
    dsse_bundle,
    keyless_document,
    message_bundle,
    new_fulcio,
    new_leaf,
    trusted_root,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

PREDICATE = "https://example.test/predicates/release"
BLOB = b"a release artifact\n"
LIMITS = Limits(envelope_max_bytes=256 * 1024, json_max_depth=64)


def _statement() -> bytes:
    document = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "blob", "digest": {"sha256": hashlib.sha256(BLOB).hexdigest()}}],
        "predicateType": PREDICATE,
        "predicate": {},
    }
    return json.dumps(document).encode()


def test_cosign_and_moorage_agree_on_keyless_bundles(tmp_path: Path) -> None:
    home = make_client_home(tmp_path / "home")
    cosign = find_tool("cosign")
    fulcio, log = new_fulcio(), Log()
    (home.root / "root.json").write_text(json.dumps(trusted_root(fulcio, log)))
    (home.root / "blob").write_bytes(BLOB)
    digest = "sha256:" + hashlib.sha256(BLOB).hexdigest()
    key, cert = new_leaf(fulcio)
    stranger_key, stranger = new_leaf(fulcio, email="stranger@example.test")
    cases: list[tuple[str, dict[str, Any], bool]] = [
        ("message", message_bundle(key, cert, log, digest=digest), True),
        ("dsse", dsse_bundle(key, cert, log, payload=_statement()), True),
        (
            "v01-set-only",
            dsse_bundle(
                key, cert, log, payload=_statement(), proof=False, version="0.1", fulcio=fulcio
            ),
            True,
        ),
        ("v03-set-only", dsse_bundle(key, cert, log, payload=_statement(), proof=False), False),
        ("stranger", dsse_bundle(stranger_key, stranger, log, payload=_statement()), False),
        ("proof-only", dsse_bundle(key, cert, log, payload=_statement(), promise=False), False),
    ]
    root = KeylessDocument.model_validate(keyless_document("release", fulcio, log)).load()
    target = Target(digest, "", bind_repository=False)
    for name, bundle, accepted in cases:
        (home.root / f"{name}.json").write_text(json.dumps(bundle))
        command = "verify-blob" if "messageSignature" in bundle else "verify-blob-attestation"
        extra = [] if command == "verify-blob" else ["--type", PREDICATE]
        judged = run(
            [
                cosign, command, "--bundle", f"{name}.json", "--new-bundle-format",
                "--trusted-root", "root.json", "--certificate-identity", EMAIL,
                "--certificate-oidc-issuer", ISSUER, "--insecure-ignore-sct", *extra, "blob",
            ],
            env=home.env(),
            cwd=home.root,
            check=False,
        )  # fmt: skip
        assert (judged.returncode == 0) is accepted, (name, judged.stderr)
        raw = json.dumps(bundle).encode()
        entry = Entry("sha256:" + "88" * 32, 0, "referrer", BUNDLE_V03, len(raw), raw)
        [finding] = verify_entry(entry, target, [], LIMITS, (), (root,))
        assert finding.verified is accepted, (name, finding.reason)
