"""Registry-side signatures of promoted images in the Notary Project (notation) format.

The key is the project's promotion signing key (``core.promotion_signing``, ECDSA
P-256). Notation verifies X.509 signatures, so each key has a self-signed code-signing
certificate: ``C=ZZ, ST=Moorage, O=Moorage, CN=Moorage project <id> signing key v<version>``
(notation's trusted identities need C, ST and O: ``ZZ`` is the ISO code left for private
use, since the registry has no country of its own), valid ten
years from the key's creation, key usage ``digitalSignature`` (critical), extended key
usage ``codeSigning``, serial from the public key's hash. It is signed with deterministic
ECDSA (RFC 6979), so the same key and creation time always give the same certificate:
it can be made again whenever it is needed and never changes. It is what
``GET /api/v1/projects/{p}/signing-key`` exports for ``notation cert add --type ca``.

A signature is a JWS envelope (``application/jose+json``, the Notary Project's JWS
signature envelope): protected header ``alg`` ES256, ``cty`` the notation payload type,
``crit`` the signing scheme ``notary.x509`` and the signing time; payload
``{"targetArtifact": <descriptor of the image>}``; unprotected header ``x5c`` (the
certificate) and the signing agent. It is stored as an OCI 1.1 referrer of the image
(``artifactType`` ``application/vnd.cncf.notary.signature``, empty config, ``subject``),
with notation's certificate thumbprint annotation and our key annotation, so a retried
promotion finds its signature and adds none.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.digests import Digest
from core.mediatypes import OCI_EMPTY, OCI_MANIFEST
from core.promotion_signing import KEY_ANNOTATION
from core.signatures_notation import JWS, NOTARY_SIGNATURE, PAYLOAD_TYPE

THUMBPRINT_ANNOTATION: Final = "io.cncf.notary.x509chain.thumbprint#S256"
EMPTY_CONFIG: Final = b"{}"
SIGNING_AGENT: Final = "Moorage"
VALIDITY: Final = timedelta(days=3650)
#: The creation time of a key stored before keys recorded theirs.
_UNDATED: Final = datetime(2026, 1, 1, tzinfo=UTC)


def _key(private_der: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_der_private_key(private_der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("promotion signing keys are ECDSA keys")
    return key


def _created(created_at: str) -> datetime:
    if not created_at:
        return _UNDATED
    parsed = datetime.fromisoformat(created_at)
    moment = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return moment.replace(microsecond=0)


def certificate_pem(private_der: bytes, project_id: int, version: int, created_at: str) -> str:
    """The key's self-signed code-signing certificate (PEM); the same on every call."""
    key = _key(private_der)
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "Moorage"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Moorage"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"Moorage project {project_id} signing key v{version}"
            ),
        ]
    )
    start = _created(created_at)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(public_der).digest()[:16], "big") >> 1)
        .not_valid_before(start)
        .not_valid_after(start + VALIDITY)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def jws_envelope(
    private_der: bytes, certificate: str, target: dict[str, Any], signed_at: datetime
) -> bytes:
    """The JWS envelope signing ``target`` (a descriptor: media type, digest, size)."""
    key = _key(private_der)
    cert = x509.load_pem_x509_certificate(certificate.encode())
    protected = _b64url(
        _compact(
            {
                "alg": "ES256",
                "cty": PAYLOAD_TYPE,
                "crit": ["io.cncf.notary.signingScheme"],
                "io.cncf.notary.signingScheme": "notary.x509",
                "io.cncf.notary.signingTime": signed_at.astimezone(UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
            }
        )
    )
    payload = _b64url(_compact({"targetArtifact": target}))
    der = key.sign(f"{protected}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return _compact(
        {
            "payload": payload,
            "protected": protected,
            "header": {
                "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()],
                "io.cncf.notary.signingAgent": SIGNING_AGENT,
            },
            "signature": _b64url(signature),
        }
    )


def thumbprint(certificate: str) -> str:
    """The SHA-256 of the certificate's DER bytes (hex), as notation annotates it."""
    cert = x509.load_pem_x509_certificate(certificate.encode())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def signature_manifest(
    envelope: bytes,
    subject: dict[str, Any],
    certificate: str,
    key_fingerprint: str,
    signed_at: datetime,
) -> bytes:
    """The referrer manifest holding ``envelope`` for ``subject`` (its config: ``{}``)."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": NOTARY_SIGNATURE,
            "config": {
                "mediaType": OCI_EMPTY,
                "digest": str(Digest.of(EMPTY_CONFIG)),
                "size": len(EMPTY_CONFIG),
            },
            "layers": [
                {"mediaType": JWS, "digest": str(Digest.of(envelope)), "size": len(envelope)}
            ],
            "subject": subject,
            "annotations": {
                THUMBPRINT_ANNOTATION: json.dumps([thumbprint(certificate)]),
                "org.opencontainers.image.created": signed_at.astimezone(UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                KEY_ANNOTATION: key_fingerprint,
            },
        },
        separators=(",", ":"),
    ).encode()


def signed_by(manifest: dict[str, Any], key_fingerprint: str) -> bool:
    """Whether a referrer manifest is a notation signature made with this key."""
    annotations = manifest.get("annotations") or {}
    return (
        manifest.get("artifactType") == NOTARY_SIGNATURE
        and isinstance(annotations, dict)
        and annotations.get(KEY_ANNOTATION) == key_fingerprint
    )
