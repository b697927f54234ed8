"""Registry-side signatures of promoted images, in cosign's tag format.

Each project that promotes with ``sign`` gets one ECDSA P-256 key, made on first use;
its private half is stored only sealed under the installation's master key
(``core.sealing``, context ``promotion-signing-key:<project id>``), its public half as PEM
(what ``GET /api/v1/projects/{p}/signing-key`` exports for ``cosign verify --key``).
A rotation makes a new active key and keeps the public halves of the keys before it
(``GET /api/v1/projects/{p}/signing-keys``): signatures are never rewritten, so each
stays verifiable with the key that made it.

A signature is cosign's "simple signing" payload (``critical.image.docker-manifest-digest``
= the image, ``critical.identity.docker-reference`` = the repository) signed with
ECDSA-SHA256 (DER, base64), stored as a layer of the image manifest tagged
``sha256-<hex>.sig`` (annotation ``dev.cosignproject.cosign/signature``). Signatures the
image already carried (copied from the source) stay: the registry's layer is added to
them, as ``cosign sign`` does. ECDSA signatures are randomized, so the signer makes one
only when the manifest has no layer of this key yet (a retried copy adds none).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.digests import Digest

SIGNING_KEY_KIND: Final = "promotion-signing-key"
PAYLOAD_TYPE: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
#: Our own annotation on the layer: which key made it (its fingerprint).
KEY_ANNOTATION: Final = "dev.moorage.signing-key"
_OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
_OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"


@dataclass(frozen=True, slots=True)
class RetiredKey:
    """A key that signed before a rotation: its public half only (for verification)."""

    version: int
    public_pem: str
    created_at: str
    retired_at: str
    #: Its notation certificate (``core.notation_signing``; empty: retired before those).
    certificate_pem: str = ""


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A project's keys as stored: the active key and the keys it replaced.

    The active key is its sealed private half and its public PEM; the replaced keys keep
    only their public halves, oldest first. ``version`` numbers the project's keys from 1;
    a body written before rotation existed (no ``version``) is version 1, nothing retired.
    """

    sealed: str
    public_pem: str
    version: int = 1
    created_at: str = ""
    retired: tuple[RetiredKey, ...] = ()

    def dump(self) -> str:
        return json.dumps(
            {
                "sealed": self.sealed,
                "public_pem": self.public_pem,
                "version": self.version,
                "created_at": self.created_at,
                "retired": [
                    {
                        "version": r.version,
                        "public_pem": r.public_pem,
                        "created_at": r.created_at,
                        "retired_at": r.retired_at,
                        "certificate_pem": r.certificate_pem,
                    }
                    for r in self.retired
                ],
            }
        )

    @classmethod
    def load(cls, body: str) -> StoredKey:
        data = json.loads(body)
        retired = tuple(
            RetiredKey(
                int(r["version"]),
                str(r["public_pem"]),
                str(r["created_at"]),
                str(r["retired_at"]),
                str(r.get("certificate_pem", "")),
            )
            for r in data.get("retired", [])
        )
        return cls(
            str(data["sealed"]),
            str(data["public_pem"]),
            int(data.get("version", 1)),
            str(data.get("created_at", "")),
            retired,
        )

    def rotated(
        self, sealed: str, public_pem: str, now: str, certificate_pem: str = ""
    ) -> StoredKey:
        """A new active key; this one's public half (and certificate) kept as retired."""
        old = RetiredKey(self.version, self.public_pem, self.created_at, now, certificate_pem)
        return StoredKey(sealed, public_pem, self.version + 1, now, (*self.retired, old))


def sealing_context(project_id: int) -> str:
    return f"{SIGNING_KEY_KIND}:{project_id}"


def new_private_key() -> tuple[bytes, str]:
    """A new P-256 key: (PKCS#8 DER private key, SubjectPublicKeyInfo PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


def fingerprint(public_pem: str) -> str:
    return "sha256:" + hashlib.sha256(public_pem.encode()).hexdigest()


def signature_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def simple_signing_payload(repository: str, digest: str) -> bytes:
    """Cosign's payload for ``digest`` (docker-reference: the repository)."""
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": repository},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()


def sign(private_der: bytes, payload: bytes) -> str:
    """The base64 DER ECDSA-SHA256 signature of ``payload``."""
    key = serialization.load_der_private_key(private_der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("promotion signing keys are ECDSA keys")
    return base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()


def has_signature_of(manifest: dict[str, Any] | None, key_fingerprint: str) -> bool:
    """Whether a signature manifest already holds a layer of this key."""
    layers = [] if manifest is None else manifest.get("layers", [])
    return any(
        (layer.get("annotations") or {}).get(KEY_ANNOTATION) == key_fingerprint
        for layer in layers
        if isinstance(layer, dict)
    )


def signature_manifest(
    existing: dict[str, Any] | None, payload: bytes, signature: str, key_fingerprint: str
) -> tuple[bytes, bytes]:
    """(config bytes, manifest bytes) of the ``.sig`` manifest with our layer added."""
    layers: list[dict[str, Any]] = list(existing.get("layers", [])) if existing else []
    layers.append(
        {
            "mediaType": PAYLOAD_TYPE,
            "digest": str(Digest.of(payload)),
            "size": len(payload),
            "annotations": {SIGNATURE_ANNOTATION: signature, KEY_ANNOTATION: key_fingerprint},
        }
    )
    config = json.dumps(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
            "config": {},
        },
        separators=(",", ":"),
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": _OCI_MANIFEST,
            "config": {
                "mediaType": _OCI_CONFIG,
                "digest": str(Digest.of(config)),
                "size": len(config),
            },
            "layers": layers,
        },
        separators=(",", ":"),
    ).encode()
    return config, manifest
