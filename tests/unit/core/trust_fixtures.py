"""Signatures and attestations made in Python exactly as cosign writes them."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from core.signature_formats import (
    BUNDLE_V03,
    COSIGN_SIGN,
    DSSE_ENVELOPE,
    IN_TOTO,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING,
    SLSA_V1,
    Entry,
)
from core.signatures import pae

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

SUBJECT = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
REPOSITORY = "team/app"
BUILDER = "https://ci.example.test/builders/main"
SOURCE = "git+https://git.example.test/team/app@refs/heads/main"


def new_key(kind: str = "ecdsa") -> PrivateKey:
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def public_pem(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign(key: PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data)


def simple_payload(
    digest: str = SUBJECT, reference: str = f"127.0.0.1:5000/{REPOSITORY}", **critical: Any
) -> bytes:
    document = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
            **critical,
        },
        "optional": None,
    }
    return json.dumps(document).encode()


def simple_entry(
    key: PrivateKey, payload: bytes | None = None, *, signed: bytes | None = None
) -> Entry:
    """A ``.sig`` layer: ``payload`` with a signature over ``signed`` (default: itself)."""
    body = payload if payload is not None else simple_payload()
    signature = base64.b64encode(sign(key, signed if signed is not None else body)).decode()
    return Entry(
        "sha256:" + "11" * 32, 0, "tag", SIMPLE_SIGNING, len(body), body,
        {SIGNATURE_ANNOTATION: signature},
    )  # fmt: skip


def provenance(builder: str = BUILDER, source: str = SOURCE) -> dict[str, Any]:
    return {
        "buildDefinition": {
            "buildType": "https://ci.example.test/buildtypes/v1",
            "externalParameters": {"source": source},
            "resolvedDependencies": [{"uri": source, "digest": {"gitCommit": "a" * 40}}],
        },
        "runDetails": {"builder": {"id": builder}, "metadata": {}},
    }


def statement(
    digest: str = SUBJECT,
    predicate_type: str = SLSA_V1,
    predicate: Any = None,
    name: str = f"127.0.0.1:5000/{REPOSITORY}",
) -> bytes:
    document = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": {"sha256": digest.partition(":")[2]}}],
        "predicateType": predicate_type,
        "predicate": provenance() if predicate is None else predicate,
    }
    return json.dumps(document).encode()


def envelope(key: PrivateKey, payload: bytes, payload_type: str = IN_TOTO) -> dict[str, Any]:
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {"keyid": "", "sig": base64.b64encode(sign(key, pae(payload_type, payload))).decode()}
        ],
    }


def dsse_entry(key: PrivateKey, payload: bytes | None = None) -> Entry:
    body = json.dumps(envelope(key, payload if payload is not None else statement())).encode()
    return Entry("sha256:" + "22" * 32, 0, "tag", DSSE_ENVELOPE, len(body), body)


def bundle_entry(key: PrivateKey, payload: bytes | None = None, *, keyless: bool = False) -> Entry:
    material: dict[str, Any] = (
        {"certificate": {"rawBytes": "MIIB"}} if keyless else {"publicKey": {"hint": "k"}}
    )
    bundle = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {**material, "tlogEntries": []},
        "dsseEnvelope": envelope(
            key,
            payload if payload is not None else statement(predicate_type=COSIGN_SIGN, predicate={}),
        ),
    }
    body = json.dumps(bundle).encode()
    return Entry("sha256:" + "33" * 32, 0, "referrer", BUNDLE_V03, len(body), body)
