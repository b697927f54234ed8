"""Keyless Sigstore bundles verified offline against a policy's trusted root."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from core.signature_formats import (
    BUNDLE_V03,
    COSIGN_SIGN,
    DSSE_ENVELOPE,
    SIMPLE_SIGNING,
    SLSA_V1,
    Entry,
    Finding,
    Format,
    Kind,
    Limits,
    Target,
    verify_entry,
)
from core.signatures import load_key
from core.signatures_keyless import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION,
    KeylessRoot,
)
from core.signatures_rekor import LogEntry, LogRefusedError, Recorded, check_body
from core.trust_policy import KeylessDocument
from tests.unit.core.sigstore_fixtures import (
    EMAIL,
    ISSUER,
    SIGNED_AT,
    WORKFLOW,
    Fulcio,
    Log,
    dsse_bundle,
    keyless_document,
    message_bundle,
    new_fulcio,
    new_leaf,
    tag_annotations,
)
from tests.unit.core.trust_fixtures import OTHER, REPOSITORY, SUBJECT, simple_payload, statement

LIMITS = Limits(envelope_max_bytes=256 * 1024, json_max_depth=64)
TARGET = Target(SUBJECT, REPOSITORY)


@pytest.fixture(scope="module")
def fulcio() -> Fulcio:
    return new_fulcio()


@pytest.fixture
def log() -> Log:
    return Log()


def _root(
    fulcio: Fulcio, log: Log, identities: list[dict[str, str]] | None = None, name: str = "gha"
) -> KeylessRoot:
    return KeylessDocument.model_validate(keyless_document(name, fulcio, log, identities)).load()


def _entry(bundle: dict[str, Any]) -> Entry:
    body = json.dumps(bundle).encode()
    return Entry("sha256:" + "44" * 32, 0, "referrer", BUNDLE_V03, len(body), body)


def _verify(bundle: dict[str, Any], *roots: KeylessRoot) -> Finding:
    [finding] = verify_entry(_entry(bundle), TARGET, [], LIMITS, (), roots)
    return finding


def _refused(bundle: dict[str, Any], *roots: KeylessRoot) -> str:
    finding = _verify(bundle, *roots)
    assert not finding.verified
    assert finding.signer is None
    return finding.reason


def _tlog(bundle: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = bundle["verificationMaterial"]["tlogEntries"][0]
    return entry


def test_a_keyless_dsse_bundle_verifies_with_its_set_and_inclusion_proof(
    fulcio: Fulcio, log: Log
) -> None:
    key, cert = new_leaf(fulcio)
    root = _root(fulcio, log)
    finding = _verify(dsse_bundle(key, cert, log), root)
    assert finding.verified, finding.reason
    assert finding.signer == "gha"
    assert finding.kind is Kind.SIGNATURE
    assert finding.format is Format.BUNDLE
    assert finding.predicate_type == COSIGN_SIGN
    assert finding.fingerprint is not None
    assert finding.fingerprint.startswith(root.fingerprint + "/")
    assert len(finding.fingerprint) <= 80
    assert finding.facts["certificate_issuer"] == ISSUER
    assert finding.facts["certificate_subject"] == EMAIL
    assert finding.facts["log_proofs"] == ["set", "inclusion-proof"]
    assert finding.facts["integrated_time"] == SIGNED_AT.isoformat()


def test_a_set_alone_is_enough_in_a_v01_bundle_only(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    old = dsse_bundle(key, cert, log, proof=False, version="0.1", fulcio=fulcio)
    finding = _verify(old, _root(fulcio, log))
    assert finding.verified, finding.reason
    assert finding.facts["log_proofs"] == ["set"]
    reason = _refused(dsse_bundle(key, cert, log, proof=False), _root(fulcio, log))
    assert reason == "the log entry has no inclusion proof (bundles need one from v0.2 on)"


def test_an_inclusion_proof_alone_does_not_vouch_for_the_time(fulcio: Fulcio, log: Log) -> None:
    """The proof verifies, but nothing signs integratedTime (cosign refuses it too)."""
    key, cert = new_leaf(fulcio)
    reason = _refused(dsse_bundle(key, cert, log, promise=False), _root(fulcio, log))
    assert reason.startswith("the log entry's integratedTime is not signed")


def test_a_v01_bundle_carries_the_intermediate_and_an_intoto_entry(
    fulcio: Fulcio, log: Log
) -> None:
    """The policy names only the root; the bundle's chain supplies the intermediate."""
    key, cert = new_leaf(fulcio, issuer_v2=False)
    document = keyless_document("gha", fulcio, log)
    document["certificate_chain"] = fulcio.root.public_bytes(Encoding.PEM).decode()
    root = KeylessDocument.model_validate(document).load()
    bundle = dsse_bundle(key, cert, log, version="0.1", fulcio=fulcio, body_kind="intoto")
    finding = _verify(bundle, root)
    assert finding.verified, finding.reason
    assert finding.facts["certificate_issuer"] == ISSUER


def test_a_keyless_provenance_attestation_is_read(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio, email=None, uri=WORKFLOW, issuer_v1=False)
    identities = [
        {
            "issuer_regexp": r"https://token\.actions\..*",
            "subject_regexp": r"https://git\.example\.test/team/.*",
        }
    ]
    bundle = dsse_bundle(key, cert, log, payload=statement(SUBJECT, SLSA_V1))
    finding = _verify(bundle, _root(fulcio, log, identities))
    assert finding.verified, finding.reason
    assert finding.kind is Kind.ATTESTATION
    assert finding.predicate_type == SLSA_V1
    assert finding.facts["certificate_subject"] == WORKFLOW
    assert finding.facts["builder_id"]


def test_a_keyless_message_signature_over_the_subject_verifies(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    finding = _verify(message_bundle(key, cert, log), _root(fulcio, log))
    assert finding.verified, finding.reason
    assert finding.kind is Kind.SIGNATURE
    assert finding.predicate_type is None


def test_a_message_signature_over_another_digest_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    reason = _refused(message_bundle(key, cert, log, digest=OTHER), _root(fulcio, log))
    assert reason == f"signature is over {OTHER}, not the subject {SUBJECT}"


def test_a_dsse_statement_about_another_image_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    payload = statement(OTHER, predicate_type=COSIGN_SIGN, predicate={})
    reason = _refused(dsse_bundle(key, cert, log, payload=payload), _root(fulcio, log))
    assert reason.startswith(f"statement is over {OTHER}, not the subject")


def test_another_subject_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio, email="intruder@example.test")
    reason = _refused(dsse_bundle(key, cert, log), _root(fulcio, log))
    assert reason == (
        f"certificate identity 'intruder@example.test' (issuer {ISSUER!r}) is not a trusted "
        "identity of 'gha'"
    )


def test_another_issuer_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio, issuer="https://accounts.example.test")
    reason = _refused(dsse_bundle(key, cert, log), _root(fulcio, log))
    assert reason == "OIDC issuer 'https://accounts.example.test' is not trusted by 'gha'"


def test_a_pattern_must_match_the_whole_subject(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio, email="release@example.test.evil")
    identities = [{"issuer": ISSUER, "subject_regexp": r"release@example\.test"}]
    reason = _refused(dsse_bundle(key, cert, log), _root(fulcio, log, identities))
    assert "'release@example.test.evil'" in reason
    assert "is not a trusted identity" in reason


def test_a_certificate_of_another_ca_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(new_fulcio("rogue"))
    reason = _refused(dsse_bundle(key, cert, log), _root(fulcio, log))
    assert reason == "the certificate does not chain to the Fulcio root of 'gha'"


def test_a_certificate_expired_at_the_log_time_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    late = SIGNED_AT + timedelta(minutes=20)
    reason = _refused(dsse_bundle(key, cert, log, integrated_time=late), _root(fulcio, log))
    assert reason.startswith("the certificate had expired at the log entry's time")


def test_a_certificate_not_yet_valid_at_the_log_time_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    early = SIGNED_AT - timedelta(minutes=5)
    reason = _refused(dsse_bundle(key, cert, log, integrated_time=early), _root(fulcio, log))
    assert reason.startswith("the certificate was not yet valid at the log entry's time")


def test_a_certificate_without_code_signing_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio, code_signing=False)
    reason = _refused(dsse_bundle(key, cert, log), _root(fulcio, log))
    assert reason == "the certificate has no codeSigning extended key usage"


def test_a_bad_inclusion_proof_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    bundle = dsse_bundle(key, cert, log, promise=False)
    hashes = _tlog(bundle)["inclusionProof"]["hashes"]
    hashes[0] = base64.b64encode(b"\x00" * 32).decode()
    reason = _refused(bundle, _root(fulcio, log))
    assert reason == "inclusion proof does not lead from the entry to its root hash"


def test_a_bad_inclusion_proof_is_refused_even_beside_a_good_set(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    bundle = dsse_bundle(key, cert, log)
    _tlog(bundle)["inclusionProof"]["logIndex"] = "0"
    reason = _refused(bundle, _root(fulcio, log))
    assert reason == "inclusion proof does not lead from the entry to its root hash"


def test_a_checkpoint_signed_by_another_key_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    bundle = dsse_bundle(key, cert, log, promise=False)
    proof = _tlog(bundle)["inclusionProof"]
    other = Log()
    root = base64.b64decode(proof["rootHash"])
    proof["checkpoint"]["envelope"] = other.checkpoint(int(proof["treeSize"]), root)
    reason = _refused(bundle, _root(fulcio, log))
    assert reason == "checkpoint is not signed by the log key"


def test_a_bad_set_is_refused(fulcio: Fulcio, log: Log) -> None:
    """The SET vouches for the time: moving the entry into the certificate's life fails."""
    key, cert = new_leaf(fulcio)
    late = SIGNED_AT + timedelta(hours=1)
    bundle = dsse_bundle(key, cert, log, integrated_time=late)
    _tlog(bundle)["integratedTime"] = str(int(SIGNED_AT.timestamp()))
    reason = _refused(bundle, _root(fulcio, log))
    assert reason.startswith("signed entry timestamp does not verify with log key")


def test_an_entry_without_proofs_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    bundle = dsse_bundle(key, cert, log, promise=False, proof=False)
    reason = _refused(bundle, _root(fulcio, log))
    assert reason == "log entry has neither a signed entry timestamp nor an inclusion proof"


def test_an_unknown_log_key_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    other = Log()
    reason = _refused(dsse_bundle(key, cert, other), _root(fulcio, log))
    assert reason == (f"transparency-log key {other.log_id().hex()} is not a configured log key")


def test_a_tampered_payload_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    bundle = dsse_bundle(key, cert, log)
    other = statement(OTHER, predicate_type=COSIGN_SIGN, predicate={})
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(other).decode()
    reason = _refused(bundle, _root(fulcio, log))
    assert reason == "signature does not verify with the certificate's key"


def test_a_log_entry_of_another_payload_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    bundle = dsse_bundle(key, cert, log)
    slsa = dsse_bundle(key, cert, log, payload=statement(SUBJECT, SLSA_V1))
    bundle["verificationMaterial"]["tlogEntries"] = slsa["verificationMaterial"]["tlogEntries"]
    reason = _refused(bundle, _root(fulcio, log))
    assert reason == "log entry records another payload"


def test_a_log_entry_of_another_signature_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    bundle = dsse_bundle(key, cert, log)
    again = dsse_bundle(key, cert, log)  # ECDSA: same payload, another signature
    bundle["verificationMaterial"]["tlogEntries"] = again["verificationMaterial"]["tlogEntries"]
    reason = _refused(bundle, _root(fulcio, log))
    assert reason == "log entry records another signature"


def test_a_bundle_without_a_log_entry_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    bundle = dsse_bundle(key, cert, log)
    bundle["verificationMaterial"]["tlogEntries"] = []
    assert _refused(bundle, _root(fulcio, log)) == "bundle has no transparency-log entry"


def test_without_a_keyless_root_nothing_verifies(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    reason = _refused(dsse_bundle(key, cert, log))
    assert reason == "no keyless trusted root in the trust policy"


def test_each_root_that_trusts_the_identity_gives_a_finding(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    first, second = _root(fulcio, log, name="gha"), _root(fulcio, log, name="release")
    rogue = _root(new_fulcio("rogue"), log, name="rogue")
    entry = _entry(dsse_bundle(key, cert, log))
    findings = verify_entry(entry, TARGET, [], LIMITS, (), (rogue, first, second))
    assert [f.signer for f in findings] == ["gha", "release"]
    refused = verify_entry(entry, TARGET, [], LIMITS, (), (rogue,))
    assert refused[0].reason == "the certificate does not chain to the Fulcio root of 'rogue'"


def _tag_entry(annotations: dict[str, str], payload: bytes) -> Entry:
    return Entry(
        "sha256:" + "66" * 32, 0, "tag", SIMPLE_SIGNING, len(payload), payload, annotations
    )


def test_a_tag_mode_keyless_signature_verifies(fulcio: Fulcio, log: Log) -> None:
    """cosign's ``.sig`` layer with its certificate, chain and bundle annotations."""
    key, cert = new_leaf(fulcio)
    payload = simple_payload()
    entry = _tag_entry(tag_annotations(key, cert, fulcio, log, payload), payload)
    [finding] = verify_entry(entry, TARGET, [], LIMITS, (), (_root(fulcio, log),))
    assert finding.verified, finding.reason
    assert finding.format is Format.SIMPLE_SIGNING
    assert finding.signer == "gha"
    assert finding.facts["certificate_subject"] == EMAIL
    assert finding.facts["log_proofs"] == ["set"]
    assert finding.facts["identity"] == f"127.0.0.1:5000/{REPOSITORY}"


def test_a_tag_mode_keyless_signature_is_checked_like_a_bundle(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio)
    payload = simple_payload()
    late = SIGNED_AT + timedelta(minutes=30)
    annotations = tag_annotations(key, cert, fulcio, log, payload, integrated_time=late)
    [expired] = verify_entry(
        _tag_entry(annotations, payload), TARGET, [], LIMITS, (), (_root(fulcio, log),)
    )
    assert expired.reason.startswith("the certificate had expired at the log entry's time")
    other = simple_payload(OTHER)
    good = tag_annotations(key, cert, fulcio, log, payload)
    [swapped] = verify_entry(_tag_entry(good, other), TARGET, [], LIMITS, (), (_root(fulcio, log),))
    assert swapped.reason == "signature does not verify with the certificate's key"
    broken = good | {BUNDLE_ANNOTATION: "{}"}
    [no_log] = verify_entry(
        _tag_entry(broken, payload), TARGET, [], LIMITS, (), (_root(fulcio, log),)
    )
    assert no_log.reason == (
        "the bundle annotation (the transparency-log entry) is missing or malformed"
    )


def test_a_tag_mode_keyless_attestation_verifies(fulcio: Fulcio, log: Log) -> None:
    """A ``.att`` DSSE layer: the log entry of the bundle annotation is an intoto one."""
    key, cert = new_leaf(fulcio)
    bundle = dsse_bundle(key, cert, log, payload=statement(SUBJECT, SLSA_V1), proof=False)
    tlog = _tlog(bundle)
    logged = {
        "SignedEntryTimestamp": tlog["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": tlog["canonicalizedBody"],
            "integratedTime": int(tlog["integratedTime"]),
            "logIndex": int(tlog["logIndex"]),
            "logID": log.log_id().hex(),
        },
    }
    annotations = {
        CERTIFICATE_ANNOTATION: cert.public_bytes(Encoding.PEM).decode(),
        CHAIN_ANNOTATION: fulcio.chain_pem(),
        BUNDLE_ANNOTATION: json.dumps(logged),
    }
    body = json.dumps(bundle["dsseEnvelope"]).encode()
    entry = Entry("sha256:" + "77" * 32, 0, "tag", DSSE_ENVELOPE, len(body), body, annotations)
    [finding] = verify_entry(entry, TARGET, [], LIMITS, (), (_root(fulcio, log),))
    assert finding.verified, finding.reason
    assert finding.kind is Kind.ATTESTATION
    assert finding.predicate_type == SLSA_V1


def test_an_intoto_v001_entry_binds_by_payload_hash_and_certificate(fulcio: Fulcio) -> None:
    """intoto 0.0.1 keeps no signature in its canonical body."""
    _key, cert = new_leaf(fulcio)
    _other_key, other = new_leaf(fulcio)
    der = cert.public_bytes(Encoding.DER)

    def body(certificate: Any, payload_hash: str) -> LogEntry:
        pem = base64.b64encode(certificate.public_bytes(Encoding.PEM)).decode()
        spec = {
            "content": {"payloadHash": {"algorithm": "sha256", "value": payload_hash}},
            "publicKey": pem,
        }
        document = {"apiVersion": "0.0.1", "kind": "intoto", "spec": spec}
        return LogEntry(1, 1, document, _root_key(), ("set",))

    recorded = Recorded(b"sig", der, "aa" * 32)
    check_body(body(cert, "aa" * 32), recorded)
    with pytest.raises(LogRefusedError, match="another certificate"):
        check_body(body(other, "aa" * 32), recorded)
    with pytest.raises(LogRefusedError, match="another payload"):
        check_body(body(cert, "bb" * 32), recorded)


def _root_key() -> Any:
    return load_key("log", Log().public_pem())


def test_a_certificate_without_an_issuer_is_refused(fulcio: Fulcio, log: Log) -> None:
    key, cert = new_leaf(fulcio, issuer_v1=False, issuer_v2=False)
    reason = _refused(dsse_bundle(key, cert, log), _root(fulcio, log))
    assert reason == "the certificate names no OIDC issuer (Fulcio extension)"


def test_a_leaf_cannot_stand_in_for_a_ca(fulcio: Fulcio, log: Log) -> None:
    """A certificate the CA issued to someone else does not issue certificates itself."""
    other_key, other = new_leaf(fulcio, email="other@example.test")
    key = ec.generate_private_key(ec.SECP256R1())
    forged = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(other.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(other.not_valid_before_utc)
        .not_valid_after(other.not_valid_after_utc)
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(EMAIL)]), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
        .sign(other_key, hashes.SHA256())
    )
    bundle = dsse_bundle(key, forged, log, version="0.1", fulcio=fulcio)
    chain = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
    chain.insert(1, {"rawBytes": base64.b64encode(other.public_bytes(Encoding.DER)).decode()})
    reason = _refused(bundle, _root(fulcio, log))
    assert reason == "the certificate does not chain to the Fulcio root of 'gha'"
