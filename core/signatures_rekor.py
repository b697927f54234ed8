"""Checking a Sigstore bundle's transparency-log entry offline, with configured log keys.

A bundle's ``verificationMaterial.tlogEntries[0]`` (Rekor's format) holds the entry's
``canonicalizedBody`` (base64 JSON), ``logIndex``, ``integratedTime`` and ``logId.keyId``
(the SHA-256 of the log key's DER SubjectPublicKeyInfo), and proves the entry is in the
log in one or both of two ways:

- ``inclusionPromise.signedEntryTimestamp`` (the SET): the log key's signature over the
  canonical JSON ``{"body":..,"integratedTime":..,"logID":"<hex>","logIndex":..}`` (keys
  sorted, no spaces); it also vouches for ``integratedTime``;
- ``inclusionProof``: an RFC 6962/9162 Merkle audit path from the leaf hash of the body
  to ``rootHash``, and ``checkpoint.envelope``, a signed note (origin, tree size, base64
  root hash, then a blank line and ``— <name> <base64 key hint + signature>`` lines)
  whose size and root hash are the proof's, signed by the log key.

Every proof present must verify and at least one must be present (a keyless signature
also needs the SET: it alone signs the time, ``core.signatures_keyless``). :func:`check_body`
then checks the entry concerns the bundle's signature: the ``dsse``, ``intoto`` or
``hashedrekord`` body records the same signature, certificate and payload or digest.
Every refusal is a :class:`LogRefusedError` whose message is the reason.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from core.signatures import TrustKey

#: Bounds of what an entry may hold (a proof path of a 2^64-entry log is 64 hashes).
_PATH_MAX: Final = 64
_BODY_MAX: Final = 256 * 1024
_NOTE_MAX: Final = 8 * 1024
_SIG_PREFIX: Final = "\u2014 "


class LogRefusedError(Exception):
    """The transparency-log entry is not accepted; the message is the reason."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A verified log entry: where it is, when the log integrated it, what it records."""

    log_index: int
    integrated_time: int
    body: dict[str, Any]
    log_key: TrustKey
    #: Which proofs verified: ``set``, ``inclusion-proof``.
    proofs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the bundle says was logged: its signature and leaf certificate (DER).

    ``payload_sha256`` is the hex SHA-256 of a DSSE payload, ``digest`` the hex
    SHA-256 of a message signature's artifact (one of them is set).
    """

    signature: bytes
    certificate: bytes
    payload_sha256: str | None = None
    digest: str | None = None


def log_id(key: TrustKey) -> str:
    """The hex log id of a log key (the SHA-256 of its DER SubjectPublicKeyInfo)."""
    return key.fingerprint.removeprefix("sha256:")


def verify_entry(entry: Any, log_keys: Mapping[str, TrustKey]) -> LogEntry:
    """Check the entry's log key and proofs; ``log_keys`` maps hex log ids to keys."""
    if not isinstance(entry, dict):
        raise LogRefusedError("bundle has no transparency-log entry")
    key_id = entry.get("logId")
    hex_id = _b64(key_id.get("keyId") if isinstance(key_id, dict) else None, "logId.keyId").hex()
    key = log_keys.get(hex_id)
    if key is None:
        raise LogRefusedError(f"transparency-log key {hex_id} is not a configured log key")
    raw_body = entry.get("canonicalizedBody")
    body_bytes = _b64(raw_body, "canonicalizedBody")
    if len(body_bytes) > _BODY_MAX:
        raise LogRefusedError("log entry body is too large")
    index = _int(entry.get("logIndex"), "logIndex")
    integrated = _int(entry.get("integratedTime"), "integratedTime")
    proofs: list[str] = []
    promise = entry.get("inclusionPromise")
    if promise is not None:
        _check_set(promise, str(raw_body), integrated, hex_id, index, key)
        proofs.append("set")
    proof = entry.get("inclusionProof")
    if proof is not None:
        _check_inclusion(proof, body_bytes, key)
        proofs.append("inclusion-proof")
    if not proofs:
        raise LogRefusedError(
            "log entry has neither a signed entry timestamp nor an inclusion proof"
        )
    try:
        body = json.loads(body_bytes)
    except ValueError as exc:
        raise LogRefusedError("log entry body is not JSON") from exc
    if not isinstance(body, dict):
        raise LogRefusedError("log entry body is not a JSON object")
    kind_version = entry.get("kindVersion")
    if isinstance(kind_version, dict) and kind_version.get("kind") not in {None, body.get("kind")}:
        raise LogRefusedError(
            f"kindVersion {kind_version.get('kind')!r} is not the body's {body.get('kind')!r}"
        )
    return LogEntry(index, integrated, body, key, tuple(proofs))


def _check_set(
    promise: Any, body: str, integrated: int, hex_id: str, index: int, key: TrustKey
) -> None:
    raw = promise.get("signedEntryTimestamp") if isinstance(promise, dict) else None
    signature = _b64(raw, "signedEntryTimestamp")
    canonical = json.dumps(
        {"body": body, "integratedTime": integrated, "logID": hex_id, "logIndex": index},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    if not key.verifies(signature, canonical):
        raise LogRefusedError(f"signed entry timestamp does not verify with log key {hex_id[:16]}")


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256 of 0x00 and the entry."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256 of 0x01 and both children."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """The root an audit path leads to (RFC 9162 2.1.3.2); ``None`` if it cannot be one."""
    if index < 0 or index >= size:
        return None
    fn, sn, result = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    return result if sn == 0 else None


def _check_inclusion(proof: Any, body: bytes, key: TrustKey) -> None:
    if not isinstance(proof, dict):
        raise LogRefusedError("inclusionProof is not an object")
    index = _int(proof.get("logIndex"), "inclusionProof.logIndex")
    size = _int(proof.get("treeSize"), "inclusionProof.treeSize")
    root = _b64(proof.get("rootHash"), "inclusionProof.rootHash")
    hashes = proof.get("hashes")
    if not isinstance(hashes, list) or len(hashes) > _PATH_MAX:
        raise LogRefusedError("inclusionProof.hashes is missing")
    path = [_b64(h, "inclusionProof.hashes") for h in hashes]
    # NOTE: the proof's index, not the entry's: on a sharded log the entry's logIndex
    # counts across shards while the proof's counts within its tree.
    computed = root_from_path(leaf_hash(body), index, size, path)
    if computed is None or computed != root:
        raise LogRefusedError("inclusion proof does not lead from the entry to its root hash")
    checkpoint = proof.get("checkpoint")
    note = checkpoint.get("envelope") if isinstance(checkpoint, dict) else None
    if not isinstance(note, str) or not note:
        raise LogRefusedError("inclusion proof has no checkpoint")
    noted_size, noted_root = check_checkpoint(note, key)
    if noted_size != size or noted_root != root:
        raise LogRefusedError("checkpoint is of another tree than the inclusion proof")


def check_checkpoint(note: str, key: TrustKey) -> tuple[int, bytes]:
    """The tree size and root hash of a signed note signed by ``key``."""
    if len(note) > _NOTE_MAX or "\n\n" not in note:
        raise LogRefusedError("checkpoint is not a signed note")
    text, _, signatures = note.partition("\n\n")
    text += "\n"
    lines = text.split("\n")
    if len(lines) < 4:  # noqa: PLR2004 - origin, size, root, the final empty string
        raise LogRefusedError("checkpoint lacks its origin, tree size or root hash")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise LogRefusedError("checkpoint lacks its origin, tree size or root hash") from exc
    hint = bytes.fromhex(log_id(key))[:4]
    for line in signatures.split("\n")[:16]:
        if not line.startswith(_SIG_PREFIX):
            continue
        _name, _, encoded = line[len(_SIG_PREFIX) :].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            continue
        if raw[:4] == hint and key.verifies(raw[4:], text.encode()):
            return size, root
    raise LogRefusedError("checkpoint is not signed by the log key")


def check_body(entry: LogEntry, recorded: Recorded) -> None:
    """Whether the log entry records this signature, certificate and payload or digest."""
    kind = entry.body.get("kind")
    spec = entry.body.get("spec")
    if not isinstance(spec, dict):
        raise LogRefusedError("log entry body has no spec")
    if kind == "dsse":
        _dsse_body(spec, recorded)
    elif kind == "intoto":
        _intoto_body(spec, recorded)
    elif kind == "hashedrekord":
        _hashedrekord_body(spec, recorded)
    else:
        raise LogRefusedError(f"log entry of kind {kind!r} is not supported")


def _dsse_body(spec: dict[str, Any], recorded: Recorded) -> None:
    if recorded.payload_sha256 is None:
        raise LogRefusedError("log entry records a DSSE envelope, not a message signature")
    if _hash_value(spec.get("payloadHash")) != recorded.payload_sha256:
        raise LogRefusedError("log entry records another payload")
    signatures = spec.get("signatures")
    pairs = [
        (s.get("signature"), s.get("verifier"))
        for s in (signatures if isinstance(signatures, list) else [])[:16]
        if isinstance(s, dict)
    ]
    _match_pairs(pairs, recorded, double=False)


def _intoto_body(spec: dict[str, Any], recorded: Recorded) -> None:
    if recorded.payload_sha256 is None:
        raise LogRefusedError("log entry records an in-toto envelope, not a message signature")
    content = spec.get("content")
    content = content if isinstance(content, dict) else {}
    if _hash_value(content.get("payloadHash")) != recorded.payload_sha256:
        raise LogRefusedError("log entry records another payload")
    envelope = content.get("envelope")
    if envelope is None and "publicKey" in spec:
        # NOTE: intoto 0.0.1 keeps no signature in its canonical body: the payload hash
        # and the (ephemeral) certificate bind it.
        if _certificate_der(spec.get("publicKey")) != recorded.certificate:
            raise LogRefusedError("log entry records another certificate")
        return
    signatures = envelope.get("signatures") if isinstance(envelope, dict) else None
    pairs = [
        (s.get("sig"), s.get("publicKey"))
        for s in (signatures if isinstance(signatures, list) else [])[:16]
        if isinstance(s, dict)
    ]
    _match_pairs(pairs, recorded, double=True)


def _hashedrekord_body(spec: dict[str, Any], recorded: Recorded) -> None:
    if recorded.digest is None:
        raise LogRefusedError("log entry records a message signature, not a DSSE envelope")
    data = spec.get("data")
    if _hash_value(data.get("hash") if isinstance(data, dict) else None) != recorded.digest:
        raise LogRefusedError("log entry records a signature over another digest")
    signature = spec.get("signature")
    signature = signature if isinstance(signature, dict) else {}
    public = signature.get("publicKey")
    content = public.get("content") if isinstance(public, dict) else None
    _match_pairs([(signature.get("content"), content)], recorded, double=False)


def _match_pairs(pairs: list[tuple[Any, Any]], recorded: Recorded, *, double: bool) -> None:
    same_signature = False
    for signature, verifier in pairs:
        if recorded.signature not in _decodings(signature, double=double):
            continue
        same_signature = True
        if _certificate_der(verifier) == recorded.certificate:
            return
    if same_signature:
        raise LogRefusedError("log entry records the signature with another certificate")
    raise LogRefusedError("log entry records another signature")


def _decodings(value: Any, *, double: bool) -> list[bytes]:
    """``value`` base64-decoded (and, for in-toto entries, decoded again if it can be)."""
    try:
        once = base64.b64decode(str(value), validate=True)
    except (ValueError, binascii.Error):
        return []
    found = [once]
    if double:
        with contextlib.suppress(ValueError, binascii.Error):
            found.append(base64.b64decode(once, validate=True))
    return found


def _certificate_der(value: Any) -> bytes | None:
    """A body's verifier (base64 of a PEM or DER certificate) as DER."""
    try:
        raw = base64.b64decode(str(value), validate=True)
        if raw.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(raw)
        else:
            cert = x509.load_der_x509_certificate(raw)
    except (ValueError, binascii.Error):
        return None
    return cert.public_bytes(serialization.Encoding.DER)


def _hash_value(section: Any) -> str | None:
    if not isinstance(section, dict) or section.get("algorithm") != "sha256":
        return None
    value = section.get("value")
    return value.lower() if isinstance(value, str) else None


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise LogRefusedError(f"log entry {what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise LogRefusedError(f"log entry {what} is not base64") from exc


def _int(value: Any, what: str) -> int:
    """An int64 as protobuf JSON writes it (a string) or as a number."""
    if isinstance(value, bool):
        raise LogRefusedError(f"log entry {what} is not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isdigit() and len(value) <= 19:  # noqa: PLR2004
        number = int(value)
    else:
        raise LogRefusedError(f"log entry {what} is missing or not an integer")
    if number < 0:
        raise LogRefusedError(f"log entry {what} is negative")
    return number
