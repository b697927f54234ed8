"""A project's trust policy: the JSON document, its checks, and the pull verdict.

The document (admin-as-code friendly: plain JSON, unknown fields refused)::

    {"enforce": true,
     "keys": [{"name": "ci", "public_key": "-----BEGIN PUBLIC KEY-----..."}],
     "signatures": {"required_signers": 1, "signers": ["ci"]},
     "attestations": [{"predicate_type": "https://slsa.dev/provenance/v1",
                       "signers": ["ci"], "builder_id": "https://ci.example/b",
                       "source": "git+https://git.example/app**"}],
     "bind_repository": true, "exempt_pushers": true}

- ``keys``: the public keys that count (cosign ``.pub`` PEM: ECDSA, RSA, Ed25519).
- ``certificates``: trust anchors of notation signatures (``{"name", "certificate": PEM,
  "trusted_identities": ["*" or "x509.subject: C=.., ST=.., O=.., CN=.."],
  "signature_verification": {"level": "strict", "override": {"revocation": "log"}},
  "crls": [PEM, ...]}``; levels and CRLs: ``core.notation_policy``,
  ``core.notation_revocation``).
- ``keyless``: trusted roots of keyless Sigstore bundles (``{"name", "certificate_chain":
  PEM Fulcio root and intermediates, "log_keys": [PEM transparency-log keys],
  "identities": [{"issuer" or "issuer_regexp", "subject" or "subject_regexp"}]}``,
  ``core.signatures_keyless``); each distinct identity it verifies is a distinct signer.
  A key, certificate or keyless name is a signer name.
- ``signatures.required_signers``: how many *distinct* signers (keys by fingerprint,
  keyless signers by identity) of ``signatures.signers`` (default: every key, certificate
  and keyless root) must have a verified signature (0: none).
- ``attestations``: each must be met by one verified attestation of that predicate type
  signed by one of its ``signers``, from ``builder_id`` (exact) and ``source`` (a
  ``core.patterns`` pattern matched against the provenance's sources) when given.
- ``bind_repository``: a signature naming another repository (a copy) does not count.
- ``enforce``: ``false`` records results but refuses no pull.
- ``exempt_pushers``: callers who may push to the repository pull regardless (they can
  replace the image anyway, and cosign must read an image to sign it).
- ``sign_pushes``: the registry signs every image or index pushed by tag into the project
  with the project's key, in cosign's and notation's formats
  (``core.services.push_signing``); add the exported key or certificate to ``keys`` or
  ``certificates`` for those signatures to count.

:func:`evaluate` decides from stored, verified results only (no crypto on a pull).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import InvalidInputError
from core.notation_policy import VerificationDocument, resolve
from core.notation_revocation import CRLS_MAX, load_crls
from core.patterns import matches
from core.signature_formats import Kind
from core.signatures import TrustKey, UnusableKeyError, load_key
from core.signatures_keyless import KeylessRoot, TrustedIdentity, identity_key, load_root
from core.signatures_notation import Anchor

KEYS_MAX: Final = 32
_NAME = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_NAME_RE: Final = re.compile(_NAME)


class KeyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_NAME)
    public_key: str = Field(min_length=1, max_length=16 * 1024)


class CertificateDocument(BaseModel):
    """A trust anchor for notation signatures: a CA (or self-signed) certificate."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_NAME)
    certificate: str = Field(min_length=1, max_length=64 * 1024)
    #: ``*`` or ``x509.subject: C=.., ST=.., O=.., CN=..`` entries the leaf must match.
    trusted_identities: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    #: Notation's verification level of this anchor's signatures (default ``strict``).
    signature_verification: VerificationDocument | None = None
    #: CRLs (PEM) of the chain's issuers, checked offline (``core.notation_revocation``).
    crls: list[Annotated[str, Field(min_length=1, max_length=256 * 1024)]] = Field(
        default_factory=list, max_length=CRLS_MAX
    )


class KeylessIdentityDocument(BaseModel):
    """A trusted keyless identity: OIDC issuer and subject, each exact or a pattern.

    A pattern (Python ``re`` syntax) must match the whole value, as cosign's
    ``--certificate-identity-regexp`` and ``--certificate-oidc-issuer-regexp``.
    """

    model_config = ConfigDict(extra="forbid")
    issuer: str | None = Field(default=None, min_length=1, max_length=1024)
    issuer_regexp: str | None = Field(default=None, min_length=1, max_length=1024)
    subject: str | None = Field(default=None, min_length=1, max_length=1024)
    subject_regexp: str | None = Field(default=None, min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _one_of_each(self) -> KeylessIdentityDocument:
        for exact, pattern, what in (
            (self.issuer, self.issuer_regexp, "issuer"),
            (self.subject, self.subject_regexp, "subject"),
        ):
            if (exact is None) == (pattern is None):
                raise ValueError(f"give exactly one of {what} and {what}_regexp")
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{what}_regexp is not a regular expression: {exc}") from exc
        return self

    def trusted(self) -> TrustedIdentity:
        issuer = self.issuer if self.issuer is not None else re.compile(str(self.issuer_regexp))
        subject = self.subject if self.subject is not None else re.compile(str(self.subject_regexp))
        return TrustedIdentity(issuer, subject)

    def exact(self) -> bool:
        return self.issuer_regexp is None and self.subject_regexp is None


class KeylessDocument(BaseModel):
    """A keyless trusted root: a Fulcio CA, transparency-log keys, trusted identities."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=_NAME)
    #: PEM certificates: the self-signed root and any intermediates.
    certificate_chain: str = Field(min_length=1, max_length=64 * 1024)
    #: PEM public keys of the transparency log (Rekor's: its log id is the key's SHA-256).
    log_keys: list[str] = Field(min_length=1, max_length=8)
    identities: list[KeylessIdentityDocument] = Field(min_length=1, max_length=KEYS_MAX)

    def load(self) -> KeylessRoot:
        text = json.dumps([i.model_dump(mode="json") for i in self.identities], sort_keys=True)
        return load_root(
            self.name,
            self.certificate_chain,
            self.log_keys,
            [i.trusted() for i in self.identities],
            text,
        )

    def most_signers(self) -> int:
        """How many distinct identities this root can verify (patterns: any number)."""
        if all(i.exact() for i in self.identities):
            return len({(i.issuer, i.subject) for i in self.identities})
        return KEYS_MAX


class SignatureRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    required_signers: int = Field(default=1, ge=0, le=KEYS_MAX)
    signers: list[str] | None = Field(default=None, max_length=KEYS_MAX)


class AttestationRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    predicate_type: str = Field(min_length=1, max_length=512)
    signers: list[str] | None = Field(default=None, max_length=KEYS_MAX)
    builder_id: str | None = Field(default=None, max_length=1024)
    source: str | None = Field(default=None, max_length=1024)

    def describe(self) -> str:
        parts = [self.predicate_type]
        if self.builder_id:
            parts.append(f"builder {self.builder_id}")
        if self.source:
            parts.append(f"source {self.source}")
        return ", ".join(parts)


class PolicyDocument(BaseModel):
    """A trust policy as stored and exchanged (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    enforce: bool = True
    keys: list[KeyDocument] = Field(default_factory=list, max_length=KEYS_MAX)
    certificates: list[CertificateDocument] = Field(default_factory=list, max_length=KEYS_MAX)
    keyless: list[KeylessDocument] = Field(default_factory=list, max_length=KEYS_MAX)
    signatures: SignatureRule = Field(default_factory=SignatureRule)
    attestations: list[AttestationRule] = Field(default_factory=list, max_length=16)
    bind_repository: bool = True
    exempt_pushers: bool = True
    sign_pushes: bool = False


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """A checked policy of one project, its keys loaded, at one revision."""

    project_id: int
    project: str
    revision: int
    document: PolicyDocument
    keys: tuple[TrustKey, ...]
    anchors: tuple[Anchor, ...] = ()
    keyless: tuple[KeylessRoot, ...] = ()

    def fingerprints(self, names: list[str] | None) -> frozenset[str]:
        """Fingerprints of the named keys and certificates (``None``: every one)."""
        signers = [(k.name, k.fingerprint) for k in self.keys]
        signers += [(a.name, a.fingerprint) for a in self.anchors]
        return frozenset(f for name, f in signers if names is None or name in names)

    def allows(self, fingerprint: str, names: list[str] | None) -> bool:
        """Whether a verified signer's fingerprint is of a named key, certificate or root."""
        if fingerprint in self.fingerprints(names):
            return True
        return any(
            root.owns(fingerprint) for root in self.keyless if names is None or root.name in names
        )

    def signer_names(self) -> list[str]:
        names = [k.name for k in self.keys] + [a.name for a in self.anchors]
        return names + [r.name for r in self.keyless]


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A verified signer of an image, as the pull gate reads it back."""

    kind: str
    fingerprint: str
    predicate_type: str | None
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    #: The requirement that failed (``None`` when allowed).
    failed: str | None = None


ALLOWED: Final = Verdict(allowed=True)


def parse_document(data: Any) -> PolicyDocument:
    """The document ``data`` checked; raises ``InvalidInputError`` naming the field."""
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or None
        raise InvalidInputError(f"{where}: {error['msg']}", field=where) from exc
    names = [k.name for k in document.keys] + [c.name for c in document.certificates]
    names += [r.name for r in document.keyless]
    if len(set(names)) != len(names):
        raise InvalidInputError(
            "keys: two keys, certificates or keyless roots share a name", field="keys"
        )
    _check_keyless(document.keyless)
    for index, cert in enumerate(document.certificates):
        try:
            load_anchor(cert.name, cert.certificate, cert.trusted_identities)
        except ValueError as exc:
            raise InvalidInputError(str(exc), field=f"certificates.{index}.certificate") from exc
        try:
            load_crls(cert.crls)
        except ValueError as exc:
            raise InvalidInputError(str(exc), field=f"certificates.{index}.crls") from exc
    for index, key in enumerate(document.keys):
        try:
            load_key(key.name, key.public_key)
        except UnusableKeyError as exc:
            raise InvalidInputError(str(exc), field=f"keys.{index}.public_key") from exc
    _check_signers(document.signatures.signers, set(names), "signatures.signers")
    for index, rule in enumerate(document.attestations):
        _check_signers(rule.signers, set(names), f"attestations.{index}.signers")
    wanted = document.signatures.required_signers
    chosen = document.signatures.signers or names
    widths = {r.name: r.most_signers() for r in document.keyless}
    among = sum(widths.get(name, 1) for name in chosen)
    if wanted > among:
        raise InvalidInputError(
            f"signatures.required_signers: {wanted} signers required but only {among} keys",
            field="signatures.required_signers",
        )
    return document


def _check_keyless(roots: list[KeylessDocument]) -> None:
    for index, root in enumerate(roots):
        try:
            root.load()
        except ValueError as exc:
            raise InvalidInputError(str(exc), field=f"keyless.{index}") from exc


def _check_signers(signers: list[str] | None, known: set[str], where: str) -> None:
    for name in signers or []:
        if name not in known:
            raise InvalidInputError(f"{where}: no key named {name!r}", field=where)


def compile_policy(project_id: int, project: str, revision: int, data: Any) -> TrustPolicy:
    """A stored document with its keys loaded (it was checked when saved)."""
    document = parse_document(data)
    keys = tuple(load_key(k.name, k.public_key) for k in document.keys)
    anchors = tuple(anchor_of(c) for c in document.certificates)
    keyless = tuple(r.load() for r in document.keyless)
    return TrustPolicy(project_id, project, revision, document, keys, anchors, keyless)


def anchor_of(entry: CertificateDocument) -> Anchor:
    """A checked certificate entry as a trust anchor, with its level and CRLs."""
    anchor = load_anchor(entry.name, entry.certificate, entry.trusted_identities)
    verification = resolve(entry.signature_verification)
    return replace(anchor, verification=verification, crls=load_crls(entry.crls))


def load_anchor(name: str, pem: str, identities: list[str]) -> Anchor:
    """A policy certificate as a notation trust anchor; ``ValueError`` if it is not one."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"certificate {name!r} is not a PEM certificate") from exc
    der = cert.public_bytes(serialization.Encoding.DER)
    fingerprint = "x509:sha256:" + hashlib.sha256(der).hexdigest()
    return Anchor(name, fingerprint, der, tuple(identities))


def evaluate(policy: TrustPolicy, results: Iterable[StoredResult]) -> Verdict:
    """Whether the verified ``results`` of an image meet ``policy``, else what failed."""
    verified = list(results)
    rule = policy.document.signatures
    if rule.required_signers:
        # NOTE: a stored kind is text; as the enum member it compares by identity. A
        # keyless signer counts by its identity (``core.signatures_keyless``).
        signers = {
            identity_key(r.fingerprint)
            for r in verified
            if Kind(r.kind) is Kind.SIGNATURE and policy.allows(r.fingerprint, rule.signers)
        }
        if len(signers) < rule.required_signers:
            names = ", ".join(rule.signers or policy.signer_names())
            return Verdict(
                allowed=False,
                failed=(
                    f"signatures: {len(signers)} of {rule.required_signers} required distinct "
                    f"signers verified (trusted: {names})"
                ),
            )
    for attestation in policy.document.attestations:
        if not any(_meets(policy, attestation, r) for r in verified):
            return Verdict(
                allowed=False,
                failed=f"attestation required: {attestation.describe()} (none verified)",
            )
    return ALLOWED


def _meets(policy: TrustPolicy, rule: AttestationRule, result: StoredResult) -> bool:
    if result.predicate_type != rule.predicate_type:
        return False
    if not policy.allows(result.fingerprint, rule.signers):
        return False
    if rule.builder_id is not None and result.facts.get("builder_id") != rule.builder_id:
        return False
    if rule.source is not None:
        sources = result.facts.get("sources") or []
        return any(isinstance(s, str) and matches(rule.source, s) for s in sources)
    return True
