"""Fulcio certificates: reading them from a bundle, their chain, usage and identity.

A Fulcio leaf names its signer in its SAN (an email or a URI) and the OIDC issuer that
vouched for it in an extension: 1.3.6.1.4.1.57264.1.8 (a DER UTF8String) or the older
1.3.6.1.4.1.57264.1.1 (the raw text). It lives ten minutes, so its validity (and its
CAs') is checked at the time the transparency log integrated the signature, never now.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

ISSUER_V2: Final = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
ISSUER_V1: Final = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_CHAIN_MAX: Final = 8
_UTF8_STRING: Final = 0x0C


class KeylessRefusedError(Exception):
    """The keyless signature is not accepted; the message is the reason."""


def self_signed(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def certificates(material: Mapping[str, Any]) -> list[x509.Certificate]:
    """The bundle's leaf first, then any further certificates it carries (v0.1/0.2)."""
    single = material.get("certificate")
    chain = material.get("x509CertificateChain")
    if isinstance(single, dict):
        raws = [single.get("rawBytes")]
    elif isinstance(chain, dict) and isinstance(chain.get("certificates"), list):
        raws = [c.get("rawBytes") if isinstance(c, dict) else None for c in chain["certificates"]]
    else:
        raise KeylessRefusedError("bundle has neither a public key nor a certificate")
    if not raws or len(raws) > _CHAIN_MAX:
        raise KeylessRefusedError("bundle's certificate chain is empty or too long")
    try:
        return [
            x509.load_der_x509_certificate(base64.b64decode(str(r), validate=True)) for r in raws
        ]
    except (ValueError, binascii.Error) as exc:
        raise KeylessRefusedError("bundle's certificate is not a DER certificate") from exc


def chain_to(
    name: str,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate],
    leaf: x509.Certificate,
    extra: Sequence[x509.Certificate],
    at: datetime,
) -> None:
    """Whether ``leaf`` chains to one of ``roots`` (every CA valid ``at``)."""
    pool = [*intermediates, *extra, *roots]
    current = leaf
    for _ in range(_CHAIN_MAX):
        issuer = next((c for c in pool if c != current and _issued(current, c)), None)
        if issuer is None:
            break
        if not issuer.not_valid_before_utc <= at <= issuer.not_valid_after_utc:
            raise KeylessRefusedError(
                f"CA certificate {issuer.subject.rfc4514_string()!r} was not valid at "
                f"{at.isoformat()}"
            )
        if issuer in roots:
            return
        current = issuer
    raise KeylessRefusedError(f"the certificate does not chain to the Fulcio root of {name!r}")


def _issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer`` is a CA (basicConstraints, keyCertSign) that signed ``cert``."""
    if cert.issuer != issuer.subject:
        return False
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    if not constraints.ca:
        return False
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_cert_sign:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def require_code_signing(leaf: x509.Certificate) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise KeylessRefusedError("the certificate has no codeSigning extended key usage") from exc
    if ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        raise KeylessRefusedError("the certificate has no codeSigning extended key usage")


def oidc_issuer(leaf: x509.Certificate) -> str:
    for oid, der in ((ISSUER_V2, True), (ISSUER_V1, False)):
        try:
            extension = leaf.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = extension.value if isinstance(extension, x509.UnrecognizedExtension) else b""
        value = _utf8_string(raw) if der else _text(raw)
        if value:
            return value
    raise KeylessRefusedError("the certificate names no OIDC issuer (Fulcio extension)")


def _utf8_string(raw: bytes) -> str | None:
    """The text of a DER UTF8String (short or long length form), else ``None``."""
    if len(raw) < 2 or raw[0] != _UTF8_STRING:  # noqa: PLR2004
        return None
    length, start = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(raw) < 2 + count:  # noqa: PLR2004
            return None
        length, start = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
    if len(raw) != start + length:
        return None
    return _text(raw[start:])


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8") or None
    except UnicodeDecodeError:
        return None


def san_subjects(leaf: x509.Certificate) -> list[str]:
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    found: list[str] = list(names.get_values_for_type(x509.RFC822Name))
    found += names.get_values_for_type(x509.UniformResourceIdentifier)
    return found
