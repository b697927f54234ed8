"""Offline revocation of notation signing certificates by CRLs a trust policy carries.

A certificate entry of a trust policy may hold CRLs (PEM; base CRLs only). Nothing is
fetched: OCSP responders and CRL distribution points named by certificates are not
contacted (the registry verifies without network access), so a CRL counts only when the
policy holds it, and a certificate whose issuer has no CRL there is not checked (as
notation treats a certificate without revocation information: not revoked).

For each certificate of the chain, root to leaf, whose issuer (the next certificate of
the chain) has a CRL in the policy (matched by issuer name), :func:`check_revocation`
finds its status. The root of a chain is not checked (notation counts a root as
non-revokable), except a chain of one self-signed signing certificate (what ``notation
cert generate-test`` makes), which is checked against a CRL it signed itself:

- **revoked**: a CRL signed by the issuer and current at the verification time
  (``thisUpdate <= now < nextUpdate``) lists the certificate's serial number;
- **unknown**: no CRL of that issuer is signed by it, or none of those is current;
- **good** otherwise.

Revoked and unknown both fail the revocation validation, as the Notary Project
specification says ("If the revocation status of any of the certificates is revoked or
cannot be determined (revocation unavailable), fail this step"): under ``strict`` (the
revocation check enforced) an unknown status refuses the signature; under ``log`` it is
a warning. The issuer's key usage need not allow CRL signing: a configured CRL can only
revoke, never vouch for a certificate that would not pass without it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from cryptography import x509

#: Most CRLs one certificate entry may hold (each PEM string may hold several).
CRLS_MAX: Final = 8
_PEM_CRL: Final = re.compile(r"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", re.DOTALL)


class RevocationError(Exception):
    """The revocation validation failed (revoked, or status unknown); the message says why."""


def load_crls(pems: Sequence[str]) -> tuple[x509.CertificateRevocationList, ...]:
    """The CRLs of PEM texts; ``ValueError`` naming what is not usable."""
    crls: list[x509.CertificateRevocationList] = []
    for index, pem in enumerate(pems):
        blocks = _PEM_CRL.findall(pem)
        if not blocks:
            raise ValueError(f"CRL {index} is not a PEM X509 CRL")
        for block in blocks:
            try:
                crl = x509.load_pem_x509_crl(block.encode("ascii"))
            except (ValueError, UnicodeEncodeError) as exc:
                raise ValueError(f"CRL {index} is not a PEM X509 CRL") from exc
            _check_usable(crl, index)
            crls.append(crl)
    if len(crls) > CRLS_MAX:
        raise ValueError(f"more than {CRLS_MAX} CRLs")
    return tuple(crls)


def _check_usable(crl: x509.CertificateRevocationList, index: int) -> None:
    try:
        crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    except x509.ExtensionNotFound:
        pass
    else:
        raise ValueError(f"CRL {index} is a delta CRL (only base CRLs are supported)")
    if crl.next_update_utc is None:
        raise ValueError(f"CRL {index} has no nextUpdate")


def check_revocation(
    chain: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    now: datetime,
) -> None:
    """Raise :class:`RevocationError` unless no certificate of ``chain`` is revoked or unknown."""
    if not crls:
        return
    # The root of a longer chain is not checked (notation: non-revokable); a chain of one
    # self-signed signing certificate is, against its own CRL.
    checked = len(chain) - 1 if len(chain) > 1 else 1
    for index in reversed(range(checked)):
        cert = chain[index]
        issuer = chain[index + 1] if index + 1 < len(chain) else cert
        candidates = [crl for crl in crls if crl.issuer == cert.issuer]
        if candidates:
            _check_one(cert, issuer, candidates, now)


def _check_one(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    candidates: list[x509.CertificateRevocationList],
    now: datetime,
) -> None:
    who = f"certificate {cert.subject.rfc4514_string()!r} (serial {cert.serial_number:x})"
    by = cert.issuer.rfc4514_string()
    signed = [crl for crl in candidates if _signed_by(crl, issuer)]
    if not signed:
        raise RevocationError(
            f"revocation status of {who} is unknown: the CRL of {by!r} is not signed by its issuer"
        )
    current = [c for c in signed if c.last_update_utc <= now < _next_update(c, now)]
    if not current:
        raise RevocationError(
            f"revocation status of {who} is unknown: the CRL of {by!r} is not current at "
            f"{now.isoformat()} (next update {_next_update(signed[0], now).isoformat()})"
        )
    for crl in current:
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None:
            raise RevocationError(
                f"{who} is revoked by the CRL of {by!r} "
                f"(since {entry.revocation_date_utc.isoformat()})"
            )


def _next_update(crl: x509.CertificateRevocationList, now: datetime) -> datetime:
    # A CRL without nextUpdate is refused when the policy is saved; here it is stale.
    return crl.next_update_utc or now


def _signed_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    if crl.issuer != issuer.subject:
        return False
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
