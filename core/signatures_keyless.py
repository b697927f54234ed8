"""Verifying a keyless (Fulcio certificate) Sigstore bundle offline, against a trusted root.

A policy's keyless entry (:class:`KeylessRoot`) names a Fulcio CA (a self-signed root and
optional intermediates), transparency-log keys and trusted identities: an OIDC issuer and
a subject (the certificate's email or URI SAN), each exact or a regular expression that
must match the whole value (cosign's ``--certificate-identity(-regexp)`` and
``--certificate-oidc-issuer(-regexp)``).

Checks, in order (the first failure is the reason): the leaf certificate's key verifies
the signature; then, for each configured root, the log entry (``core.signatures_rekor``:
its key is one of the root's log keys, its SET or inclusion proof verifies, its body
records this signature, certificate and payload), the leaf valid at the entry's
``integratedTime`` (never against now: Fulcio certificates live ten minutes), a time the
SET must vouch for (an inclusion proof does not sign it: an entry with a proof only is
refused, as cosign refuses it without a signed timestamp; a bundle from v0.2 on must
carry the inclusion proof too, a v0.1 bundle or cosign's tag mode may hold the SET
alone), the chain up to the root (intermediates from the policy or the bundle, each a CA
valid then too), the leaf's codeSigning extended key usage, the issuer (Fulcio extension
1.3.6.1.4.1.57264.1.8, a DER UTF8String, or the legacy raw .1.1) and the SAN against the
trusted identities.

The certificate checks live in ``core.signatures_fulcio``, the log's in
``core.signatures_rekor``. cosign's tag mode keeps the same material in layer annotations
(:func:`legacy_material`).

A verified signer's fingerprint is ``sigstore:<root>/<identity>`` (128-bit hex hashes of
the root's configuration and of issuer and subject): results of another configuration do
not count, and one identity counts once however many entries trust it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from core import signatures_fulcio as fulcio
from core import signatures_rekor as rekor
from core.signatures import TrustKey, UnusableKeyError, load_key
from core.signatures_fulcio import KeylessRefusedError

FINGERPRINT_PREFIX: Final = "sigstore:"
#: The annotations of a keyless signature in cosign's tag mode (``.sig``/``.att`` layers).
CERTIFICATE_ANNOTATION: Final = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION: Final = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION: Final = "dev.sigstore.cosign/bundle"


@dataclass(frozen=True, slots=True)
class TrustedIdentity:
    """An OIDC issuer and subject, each exact (``str``) or a full-match pattern."""

    issuer: str | re.Pattern[str]
    subject: str | re.Pattern[str]

    def issuer_matches(self, issuer: str) -> bool:
        return _matches(self.issuer, issuer)

    def subject_matches(self, subject: str) -> bool:
        return _matches(self.subject, subject)


def _matches(wanted: str | re.Pattern[str], value: str) -> bool:
    if isinstance(wanted, str):
        return wanted == value
    return wanted.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class KeylessRoot:
    """A policy's keyless trusted root: Fulcio CA, log keys, trusted identities."""

    name: str
    #: ``sigstore:`` and 32 hex digits of the configuration's SHA-256.
    fingerprint: str
    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...]
    #: Log keys by hex log id.
    log_keys: Mapping[str, TrustKey]
    identities: tuple[TrustedIdentity, ...]

    def owns(self, fingerprint: str) -> bool:
        """Whether a verified signer's fingerprint is of this root's configuration."""
        return fingerprint.startswith(self.fingerprint + "/")


@dataclass(frozen=True, slots=True)
class KeylessSigner:
    """A verified keyless signer: the root that trusts it and the identity it proved."""

    root: KeylessRoot
    issuer: str
    subject: str
    fingerprint: str
    log_index: int
    integrated_time: int
    proofs: tuple[str, ...]

    def facts(self) -> dict[str, Any]:
        return {
            "certificate_issuer": self.issuer,
            "certificate_subject": self.subject,
            "log_index": self.log_index,
            "integrated_time": datetime.fromtimestamp(self.integrated_time, UTC).isoformat(),
            "log_proofs": list(self.proofs),
        }


def identity_key(fingerprint: str) -> str:
    """What a keyless signer is counted by: its identity, whichever root trusted it."""
    if fingerprint.startswith(FINGERPRINT_PREFIX) and "/" in fingerprint:
        return "sigstore-identity:" + fingerprint.rpartition("/")[2]
    return fingerprint


def load_root(
    name: str,
    chain_pem: str,
    log_key_pems: Sequence[str],
    identities: Sequence[TrustedIdentity],
    identity_text: str,
) -> KeylessRoot:
    """A policy's keyless entry loaded; ``ValueError`` with the reason if unusable."""
    try:
        certs = x509.load_pem_x509_certificates(chain_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"keyless {name!r}: certificate_chain is not PEM certificates") from exc
    roots = tuple(c for c in certs if c.issuer == c.subject and fulcio.self_signed(c))
    if not roots:
        raise ValueError(f"keyless {name!r}: certificate_chain holds no self-signed root")
    intermediates = tuple(c for c in certs if c not in roots)
    log_keys: dict[str, TrustKey] = {}
    for index, pem in enumerate(log_key_pems):
        try:
            key = load_key(f"{name}-log-{index}", pem)
        except UnusableKeyError as exc:
            raise ValueError(f"keyless {name!r}: log key {index} is unusable ({exc})") from exc
        log_keys[rekor.log_id(key)] = key
    config = hashlib.sha256(name.encode() + b"\n")
    for cert in certs:
        config.update(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())
    for log in sorted(log_keys):
        config.update(bytes.fromhex(log))
    config.update(identity_text.encode())
    fingerprint = FINGERPRINT_PREFIX + config.hexdigest()[:32]
    return KeylessRoot(name, fingerprint, roots, intermediates, log_keys, tuple(identities))


@dataclass(frozen=True, slots=True)
class Signed:
    """What a keyless signature signs, and what its log entry must record.

    ``data``: the signed bytes (DSSE's PAE, a simple-signing payload), else ``None`` and
    the signature is over ``digest`` itself (a bundle's message signature).
    ``digest``: the SHA-256 a ``hashedrekord`` entry records (of ``data`` when set).
    ``payload_sha256``: the hex SHA-256 of a DSSE payload (``dsse``/``intoto`` entries).
    """

    data: bytes | None
    digest: bytes | None
    payload_sha256: str | None = None


def verify_bundle(
    material: Mapping[str, Any],
    signature: bytes,
    signed: Signed,
    roots: Sequence[KeylessRoot],
    *,
    need_proof: bool = True,
) -> list[KeylessSigner]:
    """The signers ``roots`` prove for a keyless bundle's signature over ``signed``.

    ``need_proof``: the entry must carry an inclusion proof (bundles from v0.2 on; a
    v0.1 bundle and cosign's tag mode may hold the SET alone).

    Raises:
        KeylessRefusedError: With the first failed check as its message.
    """
    chain = fulcio.certificates(material)
    leaf = chain[0]
    _verify_signature(leaf, signature, signed)
    if not roots:
        raise KeylessRefusedError("no keyless trusted root in the trust policy")
    entries = material.get("tlogEntries")
    if not isinstance(entries, list) or not entries:
        raise KeylessRefusedError("bundle has no transparency-log entry")
    leaf_der = leaf.public_bytes(serialization.Encoding.DER)
    recorded = rekor.Recorded(
        signature,
        leaf_der,
        signed.payload_sha256,
        signed.digest.hex() if signed.digest is not None else None,
    )
    found: list[KeylessSigner] = []
    reasons: list[str] = []
    for root in roots:
        try:
            found.append(_verify_with(root, entries[0], recorded, leaf, chain[1:], need_proof))
        except (KeylessRefusedError, rekor.LogRefusedError) as exc:
            reasons.append(f"{root.name}: {exc}" if len(roots) > 1 else str(exc))
    if not found:
        raise KeylessRefusedError("; ".join(reasons))
    return found


def _verify_with(
    root: KeylessRoot,
    entry: Any,
    recorded: rekor.Recorded,
    leaf: x509.Certificate,
    extra: list[x509.Certificate],
    need_proof: bool,
) -> KeylessSigner:
    logged = rekor.verify_entry(entry, root.log_keys)
    rekor.check_body(logged, recorded)
    if need_proof and "inclusion-proof" not in logged.proofs:
        raise KeylessRefusedError(
            "the log entry has no inclusion proof (bundles need one from v0.2 on)"
        )
    if "set" not in logged.proofs:
        raise KeylessRefusedError(
            "the log entry's integratedTime is not signed (no signed entry timestamp): the "
            "certificate's validity when it signed cannot be checked"
        )
    at = datetime.fromtimestamp(logged.integrated_time, UTC)
    if at < leaf.not_valid_before_utc:
        raise KeylessRefusedError(
            f"the certificate was not yet valid at the log entry's time {at.isoformat()} "
            f"(valid from {leaf.not_valid_before_utc.isoformat()})"
        )
    if at > leaf.not_valid_after_utc:
        raise KeylessRefusedError(
            f"the certificate had expired at the log entry's time {at.isoformat()} "
            f"(valid until {leaf.not_valid_after_utc.isoformat()})"
        )
    fulcio.chain_to(root.name, root.roots, root.intermediates, leaf, extra, at)
    fulcio.require_code_signing(leaf)
    issuer = fulcio.oidc_issuer(leaf)
    subjects = fulcio.san_subjects(leaf)
    trusted = [i for i in root.identities if i.issuer_matches(issuer)]
    if not trusted:
        raise KeylessRefusedError(f"OIDC issuer {issuer!r} is not trusted by {root.name!r}")
    for subject in subjects:
        if any(i.subject_matches(subject) for i in trusted):
            digest = hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:32]
            return KeylessSigner(
                root,
                issuer,
                subject,
                f"{root.fingerprint}/{digest}",
                logged.log_index,
                logged.integrated_time,
                logged.proofs,
            )
    shown = ", ".join(repr(s) for s in subjects) or "none"
    raise KeylessRefusedError(
        f"certificate identity {shown} (issuer {issuer!r}) is not a trusted identity of "
        f"{root.name!r}"
    )


def legacy_material(annotations: Mapping[str, str]) -> dict[str, Any]:
    """A tag-mode keyless signature's annotations as a bundle's verification material.

    cosign's ``dev.sigstore.cosign/certificate`` (PEM leaf), ``.../chain`` (PEM CAs) and
    ``.../bundle`` (``{"SignedEntryTimestamp", "Payload": {"body", "integratedTime",
    "logIndex", "logID"}}``) hold what a bundle's ``verificationMaterial`` does.
    """
    try:
        certs = x509.load_pem_x509_certificates(
            (
                annotations.get(CERTIFICATE_ANNOTATION, "") + annotations.get(CHAIN_ANNOTATION, "")
            ).encode("ascii")
        )
    except (ValueError, UnicodeEncodeError) as exc:
        raise KeylessRefusedError("the certificate annotation is not PEM certificates") from exc
    try:
        logged = json.loads(annotations.get(BUNDLE_ANNOTATION, ""))
        payload = logged["Payload"]
        entry: dict[str, Any] = {
            "logIndex": payload["logIndex"],
            "logId": {"keyId": base64.b64encode(bytes.fromhex(payload["logID"])).decode()},
            "integratedTime": payload["integratedTime"],
            "canonicalizedBody": payload["body"],
            "inclusionPromise": {"signedEntryTimestamp": logged["SignedEntryTimestamp"]},
        }
    except (ValueError, KeyError, TypeError) as exc:
        raise KeylessRefusedError(
            "the bundle annotation (the transparency-log entry) is missing or malformed"
        ) from exc
    ders = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in certs]
    return {
        "x509CertificateChain": {"certificates": [{"rawBytes": d} for d in ders]},
        "tlogEntries": [entry],
    }


def _verify_signature(leaf: x509.Certificate, signature: bytes, signed: Signed) -> None:
    key = leaf.public_key()
    if signed.data is not None:
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        try:
            trust_key = load_key("certificate", pem)
        except UnusableKeyError as exc:
            raise KeylessRefusedError(f"the certificate's key is unusable: {exc}") from exc
        if not trust_key.verifies(signature, signed.data):
            raise KeylessRefusedError("signature does not verify with the certificate's key")
        return
    assert signed.digest is not None  # noqa: S101 - one of them is set
    prehashed = Prehashed(hashes.SHA256())
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed.digest, ec.ECDSA(prehashed))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed.digest, padding.PKCS1v15(), prehashed)
        else:
            raise KeylessRefusedError(
                "message signatures need an ECDSA or RSA certificate key (the artifact "
                "itself is not at hand)"
            )
    except InvalidSignature as exc:
        raise KeylessRefusedError(
            "signature does not verify with the certificate's key over the digest"
        ) from exc
