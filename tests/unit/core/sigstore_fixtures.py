"""A Fulcio-style CA, a Rekor-style log and keyless Sigstore bundles, made in Python.

The CA is a root and an intermediate; a leaf lives ten minutes, carries the signer's
email or URI SAN, the OIDC issuer extensions and the codeSigning usage. The log keeps a
list of entries, computes its Merkle tree the RFC 6962 recursive way (the verifier walks
the path iteratively, RFC 9162), and signs entry timestamps (SETs) and checkpoints.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.signature_formats import BUNDLE_V03, COSIGN_SIGN, IN_TOTO, SIGNATURE_ANNOTATION
from core.signatures import pae
from core.signatures_keyless import BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION
from tests.unit.core.trust_fixtures import SUBJECT, statement

ISSUER = "https://token.actions.example.test"
EMAIL = "release@example.test"
WORKFLOW = "https://git.example.test/team/app/.github/workflows/release.yml@refs/heads/main"
SIGNED_AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
BUNDLE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


@dataclass
class Fulcio:
    """A root CA and an intermediate CA that issues the leaves."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate

    def chain_pem(self) -> str:
        return _pem(self.root) + _pem(self.intermediate)


def _ca(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(signer, hashes.SHA384())
    )


def new_fulcio(label: str = "sigstore") -> Fulcio:
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _ca(f"{label} root", root_key, _name(f"{label} root"), root_key)
    key = ec.generate_private_key(ec.SECP384R1())
    intermediate = _ca(f"{label} intermediate", key, root.subject, root_key)
    return Fulcio(root_key, root, key, intermediate)


def _utf8_der(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def new_leaf(
    fulcio: Fulcio,
    *,
    email: str | None = EMAIL,
    uri: str | None = None,
    issuer: str = ISSUER,
    issuer_v1: bool = True,
    issuer_v2: bool = True,
    not_before: datetime = SIGNED_AT - timedelta(minutes=1),
    minutes: int = 10,
    code_signing: bool = True,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """An ephemeral P-256 key and its ten-minute Fulcio-style certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    if email is not None:
        names.append(x509.RFC822Name(email))
    if uri is not None:
        names.append(x509.UniformResourceIdentifier(uri))
    usage = ExtendedKeyUsageOID.CODE_SIGNING if code_signing else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(fulcio.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(minutes=minutes))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    # NOTE: Fulcio writes both: the deprecated raw .1.1 (what cosign's tag mode reads) and
    # the DER UTF8String .1.8.
    if issuer_v1:
        oid = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, issuer.encode()), False)
    if issuer_v2:
        oid = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, _utf8_der(issuer)), False)
    return key, builder.sign(fulcio.key, hashes.SHA384())


def _leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _tree_hash(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH over the leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(
        b"\x01" + _tree_hash(leaves[:split]) + _tree_hash(leaves[split:])
    ).digest()


def _path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 PATH(m, D[n]): the audit path of leaf ``index``."""
    if len(leaves) == 1:
        return []
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    if index < split:
        return [*_path(index, leaves[:split]), _tree_hash(leaves[split:])]
    return [*_path(index - split, leaves[split:]), _tree_hash(leaves[:split])]


@dataclass
class Log:
    """A transparency log: its key and its entries so far (a few unrelated first)."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    origin: str = "rekor.example.test - 1234"
    entries: list[bytes] = field(
        default_factory=lambda: [f'{{"filler":{i}}}'.encode() for i in range(5)]
    )

    def public_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def log_id(self) -> bytes:
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).digest()

    def checkpoint(self, size: int, root: bytes) -> str:
        text = f"{self.origin}\n{size}\n{base64.b64encode(root).decode()}\n"
        signature = self.key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))
        stamp = base64.b64encode(self.log_id()[:4] + signature).decode()
        return f"{text}\n\u2014 {self.origin.split(' ')[0]} {stamp}\n"

    def add(
        self,
        body: bytes,
        integrated_time: int,
        kind: str,
        *,
        promise: bool = True,
        proof: bool = True,
        trailing: int = 2,
    ) -> dict[str, Any]:
        """Log ``body`` (then ``trailing`` more entries); the bundle's tlog entry."""
        index = len(self.entries)
        self.entries.append(body)
        self.entries += [f'{{"later":{index}.{i}}}'.encode() for i in range(trailing)]
        encoded = base64.b64encode(body).decode()
        entry: dict[str, Any] = {
            "logIndex": str(index),
            "logId": {"keyId": base64.b64encode(self.log_id()).decode()},
            "kindVersion": {"kind": kind, "version": "0.0.1"},
            "integratedTime": str(integrated_time),
            "canonicalizedBody": encoded,
        }
        if promise:
            canonical = json.dumps(
                {
                    "body": encoded,
                    "integratedTime": integrated_time,
                    "logID": self.log_id().hex(),
                    "logIndex": index,
                },
                sort_keys=True,
                separators=(",", ":"),
            ).encode()
            set_ = self.key.sign(canonical, ec.ECDSA(hashes.SHA256()))
            entry["inclusionPromise"] = {"signedEntryTimestamp": base64.b64encode(set_).decode()}
        if proof:
            leaves = [_leaf_hash(e) for e in self.entries]
            root = _tree_hash(leaves)
            entry["inclusionProof"] = {
                "logIndex": str(index),
                "rootHash": base64.b64encode(root).decode(),
                "treeSize": str(len(leaves)),
                "hashes": [base64.b64encode(h).decode() for h in _path(index, leaves)],
                "checkpoint": {"envelope": self.checkpoint(len(leaves), root)},
            }
        return entry


def keyless_document(
    name: str, fulcio: Fulcio, log: Log, identities: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """A policy's keyless entry trusting ``fulcio``, ``log`` and the identities."""
    return {
        "name": name,
        "certificate_chain": fulcio.chain_pem(),
        "log_keys": [log.public_pem()],
        "identities": identities or [{"issuer": ISSUER, "subject": EMAIL}],
    }


def _cert_b64_pem(cert: x509.Certificate) -> str:
    return base64.b64encode(_pem(cert).encode()).decode()


def _material(
    cert: x509.Certificate, fulcio: Fulcio | None, version: str, entry: dict[str, Any]
) -> dict[str, Any]:
    if version == "0.3":
        return {"certificate": {"rawBytes": _der_b64(cert)}, "tlogEntries": [entry]}
    chain = [cert] + ([fulcio.intermediate] if fulcio is not None else [])
    return {
        "x509CertificateChain": {"certificates": [{"rawBytes": _der_b64(c)} for c in chain]},
        "tlogEntries": [entry],
    }


def dsse_bundle(
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    log: Log,
    *,
    payload: bytes | None = None,
    integrated_time: datetime = SIGNED_AT,
    version: str = "0.3",
    fulcio: Fulcio | None = None,
    promise: bool = True,
    proof: bool = True,
    body_kind: str = "dsse",
) -> dict[str, Any]:
    """A keyless bundle of a DSSE in-toto envelope (cosign v3's image signature)."""
    payload = (
        payload
        if payload is not None
        else statement(SUBJECT, predicate_type=COSIGN_SIGN, predicate={})
    )
    signature = key.sign(pae(IN_TOTO, payload), ec.ECDSA(hashes.SHA256()))
    envelope = {
        "payloadType": IN_TOTO,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
    }
    payload_hash = {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}
    envelope_hash = {
        "algorithm": "sha256",
        "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
    }
    if body_kind == "intoto":
        spec: dict[str, Any] = {
            "content": {
                "envelope": {
                    "payloadType": IN_TOTO,
                    "signatures": [
                        {
                            "sig": base64.b64encode(base64.b64encode(signature)).decode(),
                            "publicKey": _cert_b64_pem(cert),
                        }
                    ],
                },
                "hash": envelope_hash,
                "payloadHash": payload_hash,
            }
        }
        api_version = "0.0.2"
    else:
        spec = {
            "envelopeHash": envelope_hash,
            "payloadHash": payload_hash,
            "signatures": [
                {
                    "signature": base64.b64encode(signature).decode(),
                    "verifier": _cert_b64_pem(cert),
                }
            ],
        }
        api_version = "0.0.1"
    body = json.dumps(
        {"apiVersion": api_version, "kind": body_kind, "spec": spec},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    entry = log.add(body, int(integrated_time.timestamp()), body_kind, promise=promise, proof=proof)
    media_type = BUNDLE_V03 if version == "0.3" else BUNDLE_V01
    return {
        "mediaType": media_type,
        "verificationMaterial": _material(cert, fulcio, version, entry),
        "dsseEnvelope": envelope,
    }


def message_bundle(
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    log: Log,
    *,
    digest: str = SUBJECT,
    integrated_time: datetime = SIGNED_AT,
) -> dict[str, Any]:
    """A keyless bundle of a message signature over the artifact digest ``digest``."""
    raw = bytes.fromhex(digest.partition(":")[2])
    signature = key.sign(raw, ec.ECDSA(Prehashed(hashes.SHA256())))
    body = _hashedrekord(raw.hex(), signature, cert)
    entry = log.add(body, int(integrated_time.timestamp()), "hashedrekord")
    return {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": _material(cert, None, "0.3", entry),
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": base64.b64encode(raw).decode()},
            "signature": base64.b64encode(signature).decode(),
        },
    }


def _hashedrekord(digest_hex: str, signature: bytes, cert: x509.Certificate) -> bytes:
    document = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest_hex}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": _cert_b64_pem(cert)},
            },
        },
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def tag_annotations(
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    fulcio: Fulcio,
    log: Log,
    payload: bytes,
    *,
    integrated_time: datetime = SIGNED_AT,
) -> dict[str, str]:
    """The annotations of a keyless ``.sig`` layer over ``payload``, as cosign writes them."""
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    body = _hashedrekord(hashlib.sha256(payload).hexdigest(), signature, cert)
    seconds = int(integrated_time.timestamp())
    entry = log.add(body, seconds, "hashedrekord", proof=False)
    logged = {
        "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": entry["canonicalizedBody"],
            "integratedTime": seconds,
            "logIndex": int(entry["logIndex"]),
            "logID": log.log_id().hex(),
        },
    }
    return {
        SIGNATURE_ANNOTATION: base64.b64encode(signature).decode(),
        CERTIFICATE_ANNOTATION: _pem(cert),
        CHAIN_ANNOTATION: _pem(fulcio.intermediate) + _pem(fulcio.root),
        BUNDLE_ANNOTATION: json.dumps(logged),
    }


def trusted_root(fulcio: Fulcio, log: Log) -> dict[str, Any]:
    """The same CA and log as a Sigstore ``trusted_root.json`` (what cosign reads)."""
    start = {"start": "2020-01-01T00:00:00Z"}
    public = log.key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [
            {
                "baseUrl": "https://rekor.example.test",
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": base64.b64encode(public).decode(),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": start,
                },
                "logId": {"keyId": base64.b64encode(log.log_id()).decode()},
            }
        ],
        "certificateAuthorities": [
            {
                "subject": {"organization": "example", "commonName": "fulcio"},
                "uri": "https://fulcio.example.test",
                "certChain": {
                    "certificates": [
                        {"rawBytes": _der_b64(fulcio.intermediate)},
                        {"rawBytes": _der_b64(fulcio.root)},
                    ]
                },
                "validFor": start,
            }
        ],
        "ctlogs": [],
        "timestampAuthorities": [],
    }
