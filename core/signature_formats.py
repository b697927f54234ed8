"""Verifying one signature or attestation as cosign writes it, with a policy's keys.

Three formats, wherever they are stored (referrer or ``sha256-<hex>.sig``/``.att`` tag):

- **simple signing** (``application/vnd.dev.cosign.simplesigning.v1+json`` layers): the
  layer is the payload, its ``dev.cosignproject.cosign/signature`` annotation the base64
  signature over the payload's bytes;
- **DSSE** (``application/vnd.dsse.envelope.v1+json`` layers, ``cosign attest``): an
  envelope whose signatures sign PAE(payloadType, payload), the payload an in-toto
  Statement;
- **Sigstore bundle** (``application/vnd.dev.sigstore.bundle.v0.3+json``, cosign's new
  bundle format): a bundle holding such a DSSE envelope, signed with a policy key, or
  keyless (a Fulcio certificate and a transparency-log entry, checked offline against the
  policy's keyless trusted roots, ``core.signatures_keyless``), then holding a DSSE
  envelope or a message signature over the subject's digest.

The order of checks is fixed, so a refusal names the first thing wrong: size, then the
signature (nothing an unverified payload says is believed), then the JSON's depth and
shape, then what it binds: the subject digest, the repository (unless the policy allows
copies), the statement's predicate. Every refusal is a :class:`Finding` with
``verified=False`` and a precise ``reason``; nothing raises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from core.scan.jsondepth import nesting_depth
from core.signatures import TrustKey, pae, signers_of
from core.signatures_fulcio import KeylessRefusedError
from core.signatures_keyless import (
    CERTIFICATE_ANNOTATION,
    KeylessRoot,
    KeylessSigner,
    Signed,
    legacy_material,
    verify_bundle,
)
from core.signatures_notation import (
    COSE,
    JWS,
    Anchor,
    NotationRefusedError,
    verify_cose,
    verify_jws,
)

SIMPLE_SIGNING: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE: Final = "application/vnd.dsse.envelope.v1+json"
BUNDLE_PREFIX: Final = "application/vnd.dev.sigstore.bundle"
BUNDLE_V03: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
IN_TOTO: Final = "application/vnd.in-toto+json"
STATEMENT_TYPES: Final = frozenset(
    {"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"}
)
#: The predicate of a cosign v3 image signature (a DSSE bundle).
COSIGN_SIGN: Final = "https://sigstore.dev/cosign/sign/v1"
SLSA_V1: Final = "https://slsa.dev/provenance/v1"
SLSA_V02: Final = "https://slsa.dev/provenance/v0.2"
SIMPLE_SIGNING_TYPE: Final = "cosign container image signature"
_CRITICAL_KEYS: Final = {"identity", "image", "type"}


class Kind(StrEnum):
    SIGNATURE = "signature"
    ATTESTATION = "attestation"


class Format(StrEnum):
    SIMPLE_SIGNING = "simple-signing"
    DSSE = "dsse"
    BUNDLE = "sigstore-bundle"
    NOTATION = "notation"


@dataclass(frozen=True, slots=True)
class Entry:
    """One signature or attestation found for a subject (a layer of its manifest).

    ``blob`` is ``None`` when its declared ``size`` is over the limit (it is not read).
    """

    artifact_digest: str
    index: int
    location: str
    media_type: str
    size: int
    blob: bytes | None
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Target:
    """What an entry must be bound to: the subject's digest in its repository."""

    digest: str
    repository: str
    #: Whether the identity an entry names must be this repository (copies refused).
    bind_repository: bool = True
    #: The subject manifest's media type and size (what a notation payload names).
    media_type: str = ""
    size: int = 0


@dataclass(frozen=True, slots=True)
class Limits:
    envelope_max_bytes: int
    json_max_depth: int


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one entry for one signer (``signer`` ``None``: nobody verified).

    ``facts`` holds what the verified content says (``identity``, ``builder_id``,
    ``sources``) for the policy to check, and for a notation signature the failed
    validations its verification level only logs (``warnings``).
    """

    artifact_digest: str
    index: int
    location: str
    kind: Kind
    format: Format
    predicate_type: str | None
    signer: str | None
    fingerprint: str | None
    verified: bool
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)


class _Refused(Exception):  # noqa: N818 - a refusal, not an error of the code
    def __init__(self, reason: str, kind: Kind, predicate_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.kind, self.predicate_type = reason, kind, predicate_type


def entry_format(media_type: str) -> Format | None:
    """The format of a layer of this media type (``None``: not a signature)."""
    if media_type == SIMPLE_SIGNING:
        return Format.SIMPLE_SIGNING
    if media_type == DSSE_ENVELOPE:
        return Format.DSSE
    if media_type.startswith(BUNDLE_PREFIX):
        return Format.BUNDLE
    if media_type in {JWS, COSE}:
        return Format.NOTATION
    return None


def verify_entry(
    entry: Entry,
    target: Target,
    keys: list[TrustKey],
    limits: Limits,
    anchors: Sequence[Anchor] = (),
    keyless: Sequence[KeylessRoot] = (),
) -> list[Finding]:
    """Verify ``entry`` for ``target`` with the policy's keys, certificates, keyless roots.

    One finding per verifying signer.

    Never raises on bad input: a refused entry gives one unverified finding whose
    ``reason`` says what failed first.
    """
    fmt = entry_format(entry.media_type)
    kind = Kind.SIGNATURE if fmt in {Format.SIMPLE_SIGNING, Format.NOTATION} else Kind.ATTESTATION
    if fmt is None:
        return [_refusal(entry, Format.DSSE, _Refused("not a signature format", kind))]
    try:
        blob = _bounded(entry, limits)
        if fmt is Format.SIMPLE_SIGNING:
            return _simple_signing(entry, blob, target, keys, limits, keyless)
        if fmt is Format.NOTATION:
            return _notation(entry, blob, target, anchors, limits)
        envelope = _json(blob, limits, "envelope")
        if fmt is Format.BUNDLE:
            material = _bundle_material(envelope)
            if "publicKey" not in material:
                return _keyless(entry, envelope, material, target, keyless, limits)
            envelope = _bundle_envelope(envelope)
        return _dsse(entry, fmt, envelope, target, keys, limits, keyless)
    except _Refused as refused:
        return [_refusal(entry, fmt, refused)]


def _notation(
    entry: Entry, blob: bytes, target: Target, anchors: Sequence[Anchor], limits: Limits
) -> list[Finding]:
    kind = Kind.SIGNATURE
    descriptor = {"digest": target.digest, "mediaType": target.media_type, "size": target.size}
    try:
        if entry.media_type == COSE:
            signed = verify_cose(blob, anchors, descriptor)
        else:
            signed = verify_jws(_json(blob, limits, "envelope", kind), anchors, descriptor)
    except NotationRefusedError as exc:
        raise _Refused(str(exc), kind) from exc
    anchor = signed.anchor
    facts: dict[str, Any] = {"identity": signed.leaf_subject}
    if signed.warnings:
        # Validations the anchor's verification level only logs (``core.notation_policy``).
        facts["warnings"] = list(signed.warnings)
    return [
        Finding(
            entry.artifact_digest,
            entry.index,
            entry.location,
            kind,
            Format.NOTATION,
            None,
            anchor.name,
            anchor.fingerprint,
            True,
            "verified",
            facts,
        )
    ]


def _refusal(entry: Entry, fmt: Format, refused: _Refused) -> Finding:
    return Finding(
        entry.artifact_digest, entry.index, entry.location, refused.kind, fmt,
        refused.predicate_type, None, None, False, refused.reason,
    )  # fmt: skip


def _bounded(entry: Entry, limits: Limits) -> bytes:
    size = entry.size if entry.blob is None else max(entry.size, len(entry.blob))
    if entry.blob is None or size > limits.envelope_max_bytes:
        raise _Refused(
            f"envelope of {size} bytes exceeds the limit of {limits.envelope_max_bytes} bytes",
            Kind.SIGNATURE if entry.media_type == SIMPLE_SIGNING else Kind.ATTESTATION,
        )
    return entry.blob


def _json(data: bytes, limits: Limits, what: str, kind: Kind = Kind.ATTESTATION) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused(f"{what} is not UTF-8", kind) from exc
    if nesting_depth(text, limits.json_max_depth) > limits.json_max_depth:
        raise _Refused(f"{what} nests JSON deeper than {limits.json_max_depth} levels", kind)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _Refused(f"{what} is not JSON", kind) from exc


def _b64(text: object, what: str, kind: Kind) -> bytes:
    if not isinstance(text, str) or not text:
        raise _Refused(f"{what} is missing", kind)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        try:
            return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError) as exc:
            raise _Refused(f"{what} is not base64", kind) from exc


def _no_signer(keys: list[TrustKey], kind: Kind, predicate_type: str | None = None) -> _Refused:
    if not keys:
        return _Refused("no key of the trust policy to verify with", kind, predicate_type)
    names = ", ".join(k.name for k in keys)
    return _Refused(
        f"signature does not verify with any policy key ({names})", kind, predicate_type
    )


def _repository_of(reference: str) -> str:
    """The repository path of a reference (``host[:port]/path[:tag]`` -> ``path``)."""
    name = reference.split("@", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        name = rest
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name = name[:colon]
    return name


def _bound_to(identity: str, target: Target, kind: Kind, pred: str | None = None) -> None:
    if target.bind_repository and identity and _repository_of(identity) != target.repository:
        raise _Refused(
            f"signed for repository {_repository_of(identity)!r}, not {target.repository!r} "
            "(copied from elsewhere)",
            kind,
            pred,
        )


def _simple_signing(
    entry: Entry,
    payload: bytes,
    target: Target,
    keys: list[TrustKey],
    limits: Limits,
    keyless: Sequence[KeylessRoot] = (),
) -> list[Finding]:
    kind = Kind.SIGNATURE
    signature = _b64(entry.annotations.get(SIGNATURE_ANNOTATION), "signature annotation", kind)
    signers = _named(signers_of(keys, signature, payload))
    if not signers and CERTIFICATE_ANNOTATION in entry.annotations:
        signed = Signed(payload, hashlib.sha256(payload).digest())
        signers = _tag_keyless(entry, signature, signed, keyless, kind)
    if not signers:
        raise _no_signer(keys, kind)
    document = _json(payload, limits, "payload", kind)
    critical = _critical(document)
    identity = _field(critical.get("identity"), "docker-reference", "critical.identity")
    digest = _field(critical.get("image"), "docker-manifest-digest", "critical.image")
    if critical.get("type") != SIMPLE_SIGNING_TYPE:
        raise _Refused(f"critical.type is {critical.get('type')!r}, not a cosign signature", kind)
    if digest != target.digest:
        raise _Refused(f"signature is over {digest}, not the subject {target.digest}", kind)
    _bound_to(identity, target, kind)
    facts: dict[str, Any] = {"identity": identity}
    optional = document.get("optional")
    if isinstance(optional, dict):
        facts["annotations"] = {str(k): str(v)[:256] for k, v in list(optional.items())[:32]}
    return [
        Finding(
            entry.artifact_digest,
            entry.index,
            entry.location,
            kind,
            Format.SIMPLE_SIGNING,
            None,
            name,
            fingerprint,
            True,
            "verified",
            facts | extra,
        )
        for name, fingerprint, extra in signers
    ]


#: A verified signer: its policy name, fingerprint and facts of its own (keyless identity).
_Signer = tuple[str, str, dict[str, Any]]


def _named(keys: list[TrustKey]) -> list[_Signer]:
    return [(key.name, key.fingerprint, {}) for key in keys]


def _tag_keyless(
    entry: Entry, signature: bytes, signed: Signed, roots: Sequence[KeylessRoot], kind: Kind
) -> list[_Signer]:
    """The keyless signers of a tag-mode layer (cosign's certificate annotations)."""
    try:
        material = legacy_material(entry.annotations)
    except KeylessRefusedError as exc:
        raise _Refused(str(exc), kind) from exc
    found = _keyless_signers(material, signature, signed, roots, kind, need_proof=False)
    return [(s.root.name, s.fingerprint, s.facts()) for s in found]


def _critical(document: Any) -> dict[str, Any]:
    kind = Kind.SIGNATURE
    if not isinstance(document, dict) or not isinstance(document.get("critical"), dict):
        raise _Refused("payload has no critical section", kind)
    unknown = sorted(set(document) - {"critical", "optional"})
    if unknown:
        raise _Refused(f"unknown payload field {unknown[0]!r}", kind)
    critical: dict[str, Any] = document["critical"]
    extra = sorted(set(critical) - _CRITICAL_KEYS)
    if extra:
        raise _Refused(f"unknown critical field critical.{extra[0]}", kind)
    return critical


def _field(section: Any, name: str, where: str) -> str:
    """``section[name]`` looked up case-insensitively; unknown keys are refused."""
    kind = Kind.SIGNATURE
    if not isinstance(section, dict):
        raise _Refused(f"{where} is missing", kind)
    value: Any = None
    for key, item in section.items():
        if key.lower() != name:
            raise _Refused(f"unknown critical field {where}.{key}", kind)
        value = item
    if not isinstance(value, str):
        raise _Refused(f"{where}.{name} is missing", kind)
    return value


def _bundle_material(bundle: Any) -> dict[str, Any]:
    kind = Kind.ATTESTATION
    if not isinstance(bundle, dict) or not str(bundle.get("mediaType", "")).startswith(
        BUNDLE_PREFIX
    ):
        raise _Refused("not a Sigstore bundle", kind)
    material = bundle.get("verificationMaterial")
    if not isinstance(material, dict):
        raise _Refused("bundle has no verificationMaterial", kind)
    return material


def _bundle_envelope(bundle: dict[str, Any]) -> dict[str, Any]:
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise _Refused(
            "bundle holds no DSSE envelope (message signatures need a certificate)",
            Kind.ATTESTATION,
        )
    return envelope


def _keyless(
    entry: Entry,
    bundle: dict[str, Any],
    material: dict[str, Any],
    target: Target,
    roots: Sequence[KeylessRoot],
    limits: Limits,
) -> list[Finding]:
    """A keyless bundle: a DSSE envelope, or a message signature over the subject."""
    # NOTE: bundles need an inclusion proof from v0.2 on (v0.1: the SET may stand alone).
    need_proof = not str(bundle.get("mediaType")).endswith(";version=0.1")
    if isinstance(bundle.get("dsseEnvelope"), dict):
        kind, predicate_type, facts, signers = _keyless_dsse(
            bundle["dsseEnvelope"], material, target, roots, limits, need_proof
        )
    else:
        kind, predicate_type, facts = Kind.SIGNATURE, None, {}
        signers = _keyless_message(
            bundle.get("messageSignature"), material, target, roots, need_proof
        )
    return [
        Finding(
            entry.artifact_digest,
            entry.index,
            entry.location,
            kind,
            Format.BUNDLE,
            predicate_type,
            signer.root.name,
            signer.fingerprint,
            True,
            "verified",
            facts | signer.facts(),
        )
        for signer in signers
    ]


def _keyless_dsse(
    envelope: dict[str, Any],
    material: dict[str, Any],
    target: Target,
    roots: Sequence[KeylessRoot],
    limits: Limits,
    need_proof: bool,
) -> tuple[Kind, str, dict[str, Any], list[KeylessSigner]]:
    kind = Kind.ATTESTATION
    payload_type, payload, signatures = _envelope_parts(envelope)
    if len(signatures) != 1:
        raise _Refused("a keyless DSSE envelope must hold exactly one signature", kind)
    item = signatures[0]
    sig = _b64(item.get("sig") if isinstance(item, dict) else None, "envelope signature", kind)
    signed = Signed(pae(payload_type, payload), None, hashlib.sha256(payload).hexdigest())
    signers = _keyless_signers(material, sig, signed, roots, kind, need_proof=need_proof)
    if payload_type != IN_TOTO:
        raise _Refused(f"payloadType {payload_type!r} is not an in-toto statement", kind)
    predicate_type, facts = _statement(_json(payload, limits, "statement"), target)
    kind = Kind.SIGNATURE if predicate_type == COSIGN_SIGN else kind
    return kind, predicate_type, facts, signers


def _keyless_message(
    message: Any,
    material: dict[str, Any],
    target: Target,
    roots: Sequence[KeylessRoot],
    need_proof: bool,
) -> list[KeylessSigner]:
    kind = Kind.SIGNATURE
    if not isinstance(message, dict):
        raise _Refused("bundle holds neither a DSSE envelope nor a message signature", kind)
    digest_section = message.get("messageDigest")
    digest_section = digest_section if isinstance(digest_section, dict) else {}
    if digest_section.get("algorithm") != "SHA2_256":
        raise _Refused("message signature's digest is not SHA2_256", kind)
    digest = _b64(digest_section.get("digest"), "message digest", kind)
    sig = _b64(message.get("signature"), "message signature", kind)
    signed = Signed(None, digest)
    signers = _keyless_signers(material, sig, signed, roots, kind, need_proof=need_proof)
    if "sha256:" + digest.hex() != target.digest:
        raise _Refused(
            f"signature is over sha256:{digest.hex()}, not the subject {target.digest}", kind
        )
    return signers


def _keyless_signers(
    material: dict[str, Any],
    signature: bytes,
    signed: Signed,
    roots: Sequence[KeylessRoot],
    kind: Kind,
    *,
    need_proof: bool,
) -> list[KeylessSigner]:
    try:
        return verify_bundle(material, signature, signed, roots, need_proof=need_proof)
    except KeylessRefusedError as exc:
        raise _Refused(str(exc), kind) from exc


def _envelope_parts(envelope: Any) -> tuple[str, bytes, list[Any]]:
    kind = Kind.ATTESTATION
    if not isinstance(envelope, dict):
        raise _Refused("envelope is not a JSON object", kind)
    payload_type = envelope.get("payloadType")
    payload = _b64(envelope.get("payload"), "envelope payload", kind)
    signatures = envelope.get("signatures")
    if not isinstance(payload_type, str) or not isinstance(signatures, list) or not signatures:
        raise _Refused("envelope lacks payloadType or signatures", kind)
    return payload_type, payload, signatures


def _dsse(
    entry: Entry,
    fmt: Format,
    envelope: Any,
    target: Target,
    keys: list[TrustKey],
    limits: Limits,
    keyless: Sequence[KeylessRoot] = (),
) -> list[Finding]:
    kind = Kind.ATTESTATION
    payload_type, payload, signatures = _envelope_parts(envelope)
    signed = pae(payload_type, payload)
    by_key: dict[str, TrustKey] = {}
    sigs = [
        _b64(item.get("sig") if isinstance(item, dict) else None, "envelope signature", kind)
        for item in signatures[:16]
    ]
    for sig in sigs:
        by_key |= {k.fingerprint: k for k in signers_of(keys, sig, signed)}
    signers = _named(list(by_key.values()))
    if not signers and CERTIFICATE_ANNOTATION in entry.annotations and len(sigs) == 1:
        what = Signed(signed, None, hashlib.sha256(payload).hexdigest())
        signers = _tag_keyless(entry, sigs[0], what, keyless, kind)
    if not signers:
        raise _no_signer(keys, kind)
    if payload_type != IN_TOTO:
        raise _Refused(f"payloadType {payload_type!r} is not an in-toto statement", kind)
    statement = _json(payload, limits, "statement")
    predicate_type, facts = _statement(statement, target)
    if predicate_type == COSIGN_SIGN:
        kind = Kind.SIGNATURE
    return [
        Finding(
            entry.artifact_digest,
            entry.index,
            entry.location,
            kind,
            fmt,
            predicate_type,
            name,
            fingerprint,
            True,
            "verified",
            facts | extra,
        )
        for name, fingerprint, extra in signers
    ]


def _statement(statement: Any, target: Target) -> tuple[str, dict[str, Any]]:
    kind = Kind.ATTESTATION
    if not isinstance(statement, dict) or statement.get("_type") not in STATEMENT_TYPES:
        raise _Refused("payload is not an in-toto Statement", kind)
    predicate_type = statement.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise _Refused("statement has no predicateType", kind)
    subjects = statement.get("subject")
    named = [s for s in subjects if isinstance(s, dict)] if isinstance(subjects, list) else []
    want = target.digest.partition(":")[2]
    match = [
        s for s in named if isinstance(s.get("digest"), dict) and s["digest"].get("sha256") == want
    ]
    if not match:
        found = sorted(
            {
                f"sha256:{s['digest'].get('sha256')}"
                for s in named
                if isinstance(s.get("digest"), dict)
            }
        )
        raise _Refused(
            f"statement is over {', '.join(found) or 'nothing'}, not the subject {target.digest}",
            kind,
            predicate_type,
        )
    identity = str(match[0].get("name") or "")
    _bound_to(identity, target, kind, predicate_type)
    facts: dict[str, Any] = {"identity": identity}
    predicate = statement.get("predicate")
    if predicate_type in {SLSA_V1, SLSA_V02}:
        facts |= _provenance(predicate, predicate_type)
    return predicate_type, facts


def _provenance(predicate: Any, predicate_type: str) -> dict[str, Any]:
    kind = Kind.ATTESTATION
    if not isinstance(predicate, dict):
        raise _Refused("SLSA provenance has no predicate", kind, predicate_type)
    if predicate_type == SLSA_V1:
        run = predicate.get("runDetails")
        builder = run.get("builder") if isinstance(run, dict) else None
        definition = predicate.get("buildDefinition")
        definition = definition if isinstance(definition, dict) else {}
        sources = _sources(definition.get("externalParameters"))
        for dependency in definition.get("resolvedDependencies") or []:
            if isinstance(dependency, dict) and isinstance(dependency.get("uri"), str):
                sources.append(dependency["uri"])
        where = "runDetails.builder.id"
    else:
        builder = predicate.get("builder")
        invocation = predicate.get("invocation")
        source = invocation.get("configSource") if isinstance(invocation, dict) else None
        sources = _sources({"source": source})
        where = "builder.id"
    builder_id = builder.get("id") if isinstance(builder, dict) else None
    if not isinstance(builder_id, str) or not builder_id:
        raise _Refused(f"SLSA provenance has no {where}", kind, predicate_type)
    return {"builder_id": builder_id, "sources": sources[:32]}


def _sources(parameters: Any) -> list[str]:
    if not isinstance(parameters, dict):
        return []
    found: list[str] = []
    for name in ("source", "repository", "workflow"):
        value = parameters.get(name)
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            found.extend(value[k] for k in ("uri", "repository") if isinstance(value.get(k), str))
    return found
