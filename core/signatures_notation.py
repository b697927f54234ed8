"""Verifying Notary Project (notation) signatures with a policy's trust anchors.

A notation signature is a referrer (``artifactType`` or config media type
``application/vnd.cncf.notary.signature``) with one ``application/jose+json`` layer: a
flattened JWS whose protected header names the algorithm and the critical headers, whose
unprotected header carries the certificate chain (``x5c``, leaf first), and whose payload
is ``{"targetArtifact": <descriptor of the signed manifest>}``.

Validations, in the order of the Notary Project specification, each enforced (its
failure is the reason the signature is refused) or logged (its failure is a warning of
:class:`Signed` and the signature still counts) as the anchor's verification level says
(``core.notation_policy``: ``strict`` by default, ``permissive``, ``audit``, ``skip``,
``override``):

1. **integrity** (always enforced): the envelope's shape, the protected header (content
   type, ``crit`` lists only headers present and implemented, signing scheme
   ``notary.x509``), the algorithm derived from the leaf key equals ``alg``, the
   signature, and the payload's descriptor against the signed manifest;
2. **authenticity**: the chain (each certificate issued by the next, the leaf usable for
   signing, no SHA-1), a certificate byte-equal to a policy certificate (the trust
   anchor), the anchor's trusted identities against the leaf subject. When it is logged
   and no anchor matches, the signature counts for the first policy certificate whose
   authenticity is logged (``audit``: any intact signature counts, as notation's
   ``audit`` passes it);
3. **expiry**: the signed ``io.cncf.notary.expiry``;
4. **authentic timestamp**: without timestamps (not read), every certificate of the
   chain must be valid at the verification time;
5. **revocation**: offline, by the CRLs the anchor's policy entry carries
   (``core.notation_revocation``; a revoked or unknown status fails it). OCSP responders
   and CRL distribution points are never contacted.

A signature chaining to an anchor of level ``skip`` is refused: Moorage does not count
what it did not verify. COSE envelopes (``application/cose``, :func:`verify_cose`) go
through the same checks on their CBOR headers. Signing authorities and timestamp
countersignatures are not supported.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from core import signatures_cbor as cbor
from core.notation_policy import STRICT, Action, Verification
from core.notation_revocation import RevocationError, check_revocation

NOTARY_SIGNATURE: Final = "application/vnd.cncf.notary.signature"
JWS: Final = "application/jose+json"
COSE: Final = "application/cose"
PAYLOAD_TYPE: Final = "application/vnd.cncf.notary.payload.v1+json"
_SCHEME, _EXPIRY = "io.cncf.notary.signingScheme", "io.cncf.notary.expiry"
_KNOWN_CRITICAL: Final = frozenset({_SCHEME, _EXPIRY})
_RSA_ALGS: Final = {2048: "PS256", 3072: "PS384", 4096: "PS512"}
_EC_ALGS: Final = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
_SUBJECT_KEYS: Final = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
}


class NotationRefusedError(Exception):
    """The signature is not accepted; the message is the reason."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """A trusted certificate of a policy, its identities, verification level and CRLs."""

    name: str
    fingerprint: str
    der: bytes
    identities: tuple[str, ...]
    verification: Verification = STRICT
    crls: tuple[x509.CertificateRevocationList, ...] = ()


@dataclass(frozen=True, slots=True)
class Signed:
    """What a verified notation signature is bound to, and the failures only logged."""

    anchor: Anchor
    leaf_subject: str
    warnings: tuple[str, ...] = ()


def verify_jws(
    envelope: Any,
    anchors: Sequence[Anchor],
    target: dict[str, Any],
    now: datetime | None = None,
) -> Signed:
    """Verify a parsed JWS envelope for ``target`` (the manifest's digest, media type, size).

    Raises:
        NotationRefusedError: With the first failed check as its message.
    """
    now = now or datetime.now(UTC)
    if not isinstance(envelope, dict) or set(envelope) != {
        "payload", "protected", "header", "signature",
    }:  # fmt: skip
        raise NotationRefusedError("not a flattened JWS with one signature")
    protected_b64, payload_b64 = str(envelope["protected"]), str(envelope["payload"])
    protected = _json_object(_b64url(protected_b64, "protected header"), "protected header")
    _check_header(protected)
    header = envelope["header"]
    chain = _chain(header.get("x5c") if isinstance(header, dict) else None)
    alg = _expected_alg(chain[0])
    if protected.get("alg") != alg:
        raise NotationRefusedError(
            f"alg {protected.get('alg')!r} does not match the {alg} leaf key"
        )
    signature = _b64url(str(envelope["signature"]), "signature")
    _verify_signature(chain[0], alg, signature, f"{protected_b64}.{payload_b64}".encode("ascii"))
    payload = _json_object(_b64url(payload_b64, "payload"), "payload")
    _check_target(payload.get("targetArtifact"), target)
    expiry = protected.get(_EXPIRY)

    def check_expiry() -> None:
        if isinstance(expiry, str) and _time(expiry) <= now:
            raise NotationRefusedError(f"signature expired at {expiry}")

    return _trust(chain, anchors, check_expiry, now)


def _trust(
    chain: list[x509.Certificate],
    anchors: Sequence[Anchor],
    check_expiry: Callable[[], None],
    now: datetime,
) -> Signed:
    """The validations after integrity, each enforced or logged by the anchor's level."""
    warnings: list[str] = []
    matched = _matching_anchor(chain, anchors)
    if matched is not None and matched.verification.skip:
        raise NotationRefusedError(
            f"policy certificate {matched.name!r} is at verification level skip: "
            "its signatures are not verified and count for no signer"
        )
    try:
        _check_certificates(chain)
        anchor = _anchor(matched, anchors)
        _check_identity(chain[0], anchor)
    except NotationRefusedError as exc:
        logged = matched or _logging_authenticity(anchors)
        if logged is None or logged.verification.authenticity is not Action.LOG:
            raise
        warnings.append(f"authenticity: {exc}")
        anchor = logged
    actions = anchor.verification
    _validate(actions.expiry, "expiry", check_expiry, warnings)
    _validate(
        actions.authentic_timestamp,
        "authentic timestamp",
        lambda: _check_validity(chain, now),
        warnings,
    )
    if actions.revocation is not Action.SKIP:
        crls = anchor.crls
        _validate(actions.revocation, "revocation", lambda: _revocation(chain, crls, now), warnings)
    return Signed(anchor, chain[0].subject.rfc4514_string(), tuple(warnings))


def _validate(action: Action, what: str, check: Callable[[], None], warnings: list[str]) -> None:
    """Run ``check``: an enforced failure raises, a logged one becomes a warning."""
    try:
        check()
    except NotationRefusedError as exc:
        if action is Action.ENFORCE:
            raise
        warnings.append(f"{what}: {exc}")


def _revocation(
    chain: list[x509.Certificate], crls: Sequence[x509.CertificateRevocationList], now: datetime
) -> None:
    try:
        check_revocation(chain, crls, now)
    except RevocationError as exc:
        raise NotationRefusedError(str(exc)) from exc


def _logging_authenticity(anchors: Sequence[Anchor]) -> Anchor | None:
    return next((a for a in anchors if a.verification.authenticity is Action.LOG), None)


def _b64url(text: str, what: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise NotationRefusedError(f"{what} is not base64url") from exc


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise NotationRefusedError(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise NotationRefusedError(f"{what} is not a JSON object")
    return value


def _check_header(protected: dict[str, Any]) -> None:
    if protected.get("cty") != PAYLOAD_TYPE:
        raise NotationRefusedError(f"content type {protected.get('cty')!r} is not notation's")
    critical = protected.get("crit")
    if not isinstance(critical, list) or not critical:
        raise NotationRefusedError("crit is missing")
    for name in critical:
        if name not in _KNOWN_CRITICAL:
            raise NotationRefusedError(f"unknown critical header {name!r}")
        if name not in protected:
            raise NotationRefusedError(f"critical header {name!r} is absent")
    if _SCHEME not in critical:
        raise NotationRefusedError(f"{_SCHEME} is not critical")
    if protected.get(_SCHEME) != "notary.x509":
        raise NotationRefusedError(f"signing scheme {protected.get(_SCHEME)!r} is not supported")


def _chain(x5c: Any) -> list[x509.Certificate]:
    if not isinstance(x5c, list) or not x5c or len(x5c) > 10:  # noqa: PLR2004
        raise NotationRefusedError("x5c certificate chain is missing")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c]
    except (ValueError, TypeError, binascii.Error) as exc:
        raise NotationRefusedError("x5c holds something other than certificates") from exc


def _expected_alg(leaf: x509.Certificate) -> str:
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size in _RSA_ALGS:
        return _RSA_ALGS[key.key_size]
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGS:
        return _EC_ALGS[key.curve.name]
    raise NotationRefusedError("the leaf key is neither RSA 2048/3072/4096 nor ECDSA P-256/384/521")


def _verify_signature(leaf: x509.Certificate, alg: str, signature: bytes, data: bytes) -> None:
    digest = _HASHES[alg[2:]]()
    key = leaf.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            key.verify(signature, data, pss, digest)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            half = len(signature) // 2
            der = encode_dss_signature(
                int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
            )
            key.verify(der, data, ec.ECDSA(digest))
    except InvalidSignature as exc:
        raise NotationRefusedError("signature does not verify with the leaf certificate") from exc


def _check_validity(chain: list[x509.Certificate], now: datetime) -> None:
    for cert in chain:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise NotationRefusedError(
                f"certificate {cert.subject.rfc4514_string()!r} is not valid at {now.isoformat()}"
            )


def _check_certificates(chain: list[x509.Certificate]) -> None:
    for index, cert in enumerate(chain):
        if isinstance(cert.signature_hash_algorithm, hashes.SHA1):
            raise NotationRefusedError("a certificate of the chain is signed with SHA-1")
        issuer = chain[index + 1] if index + 1 < len(chain) else cert
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise NotationRefusedError("the certificate chain is broken") from exc
    try:
        usage = chain[0].extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.digital_signature:
        raise NotationRefusedError("the leaf certificate may not sign (keyUsage)")


def _matching_anchor(chain: list[x509.Certificate], anchors: Sequence[Anchor]) -> Anchor | None:
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    ders = {cert.public_bytes(Encoding.DER) for cert in chain}
    return next((anchor for anchor in anchors if anchor.der in ders), None)


def _anchor(matched: Anchor | None, anchors: Sequence[Anchor]) -> Anchor:
    if matched is not None:
        return matched
    names = ", ".join(a.name for a in anchors) or "none"
    raise NotationRefusedError(f"no certificate of the chain is a policy certificate ({names})")


def _check_identity(leaf: x509.Certificate, anchor: Anchor) -> None:
    if "*" in anchor.identities:
        return
    for identity in anchor.identities:
        if _subject_matches(leaf.subject, identity.removeprefix("x509.subject:").strip()):
            return
    raise NotationRefusedError(
        f"leaf subject {leaf.subject.rfc4514_string()!r} is not a trusted identity of "
        f"{anchor.name!r}"
    )


def _subject_matches(subject: x509.Name, wanted: str) -> bool:
    for part in wanted.split(","):
        key, _, value = part.strip().partition("=")
        oid = _SUBJECT_KEYS.get(key.strip())
        if oid is None:
            return False
        if value.strip() not in [str(a.value) for a in subject.get_attributes_for_oid(oid)]:
            return False
    return True


def _time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise NotationRefusedError(f"time {text!r} is not RFC 3339") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _check_target(descriptor: Any, target: dict[str, Any]) -> None:
    if not isinstance(descriptor, dict):
        raise NotationRefusedError("payload has no targetArtifact")
    for name in ("digest", "mediaType", "size"):
        if descriptor.get(name) != target.get(name):
            raise NotationRefusedError(
                f"signature is over {name} {descriptor.get(name)!r}, not {target.get(name)!r}"
            )


_COSE_ALGS: Final = {
    -37: "PS256",
    -38: "PS384",
    -39: "PS512",
    -7: "ES256",
    -35: "ES384",
    -36: "ES512",
}
_COSE_SIGN1_TAG: Final = 18
_X5CHAIN: Final = 33


def verify_cose(
    data: bytes,
    anchors: Sequence[Anchor],
    target: dict[str, Any],
    now: datetime | None = None,
) -> Signed:
    """Verify a COSE_Sign1 notation envelope (``application/cose``) like :func:`verify_jws`.

    Raises:
        NotationRefusedError: With the first failed check as its message.
    """
    now = now or datetime.now(UTC)
    try:
        envelope = cbor.loads(data)
        if isinstance(envelope, cbor.Tagged) and envelope.tag == _COSE_SIGN1_TAG:
            envelope = envelope.value
        protected_raw, unprotected, payload, signature = envelope
        protected = cbor.loads(protected_raw)
    except (cbor.CborError, ValueError, TypeError) as exc:
        raise NotationRefusedError("not a COSE_Sign1 envelope") from exc
    if not all(isinstance(v, bytes) for v in (protected_raw, payload, signature)):
        raise NotationRefusedError("not a COSE_Sign1 envelope")
    if not isinstance(protected, dict) or not isinstance(unprotected, dict):
        raise NotationRefusedError("COSE headers are not maps")
    _check_cose_header(protected)
    chain = _chain_der(unprotected.get(_X5CHAIN))
    alg = _expected_alg(chain[0])
    alg_id = protected.get(1)
    if not isinstance(alg_id, int) or _COSE_ALGS.get(alg_id) != alg:
        raise NotationRefusedError(f"alg {alg_id!r} does not match the {alg} leaf key")
    _verify_signature(chain[0], alg, signature, cbor.sig_structure(protected_raw, payload))
    body = _json_object(payload, "payload")
    _check_target(body.get("targetArtifact"), target)
    expiry = protected.get(_EXPIRY)
    seconds = expiry.value if isinstance(expiry, cbor.Tagged) else None

    def check_expiry() -> None:
        if isinstance(seconds, int) and datetime.fromtimestamp(seconds, UTC) <= now:
            raise NotationRefusedError("signature expired")

    return _trust(chain, anchors, check_expiry, now)


def _check_cose_header(protected: dict[Any, Any]) -> None:
    if protected.get(3) != PAYLOAD_TYPE:
        raise NotationRefusedError(f"content type {protected.get(3)!r} is not notation's")
    critical = protected.get(2)
    if not isinstance(critical, list) or not critical:
        raise NotationRefusedError("crit is missing")
    for name in critical:
        if name not in _KNOWN_CRITICAL:
            raise NotationRefusedError(f"unknown critical header {name!r}")
        if name not in protected:
            raise NotationRefusedError(f"critical header {name!r} is absent")
    if protected.get(_SCHEME) != "notary.x509":
        raise NotationRefusedError(f"signing scheme {protected.get(_SCHEME)!r} is not supported")


def _chain_der(x5chain: Any) -> list[x509.Certificate]:
    items = x5chain if isinstance(x5chain, list) else [x5chain]
    if not items or len(items) > 10 or not all(isinstance(c, bytes) for c in items):  # noqa: PLR2004
        raise NotationRefusedError("x5chain certificate chain is missing")
    try:
        return [x509.load_der_x509_certificate(c) for c in items]
    except ValueError as exc:
        raise NotationRefusedError("x5chain holds something other than certificates") from exc
