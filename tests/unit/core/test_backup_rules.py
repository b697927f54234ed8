"""Backup rules: sealing, the snapshot format, pruning, the audit chain and the revision check."""

from __future__ import annotations

import io
import os
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from core.audit import GENESIS, AuditEvent, chain_hash
from core.backup import (
    BackupManifest,
    RestoreRefusedError,
    SnapshotFacts,
    check_revision,
    to_prune,
    verify_audit_chain,
)
from core.backup_crypto import FRAME, AesGcmCodec, BackupCorruptError, PlainCodec
from core.backup_format import SnapshotWriter, read_rows

KEY = bytes(range(32))


def _seal(data: bytes, name: str = "blobs/k/sha256/x") -> bytes:
    return b"".join(
        AesGcmCodec(KEY).seal(name, [data[i : i + 1000] for i in range(0, len(data), 1000)])
    )


@pytest.mark.parametrize("size", [0, 1, FRAME - 1, FRAME, FRAME + 1, 2 * FRAME + 17])
def test_sealed_objects_open_to_their_plaintext(size: int) -> None:
    data = os.urandom(size)
    sealed = _seal(data)
    assert size < 16 or data not in sealed  # NOTE: short data may occur by chance
    opened = b"".join(AesGcmCodec(KEY).open("blobs/k/sha256/x", [sealed[:7], sealed[7:]]))
    assert opened == data


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:-1],  # truncated
        lambda b: b[:20] + bytes([b[20] ^ 1]) + b[21:],  # a flipped bit
        lambda b: b[: len(b) - 30],  # the last frame dropped partly
    ],
)
def test_damaged_objects_do_not_open(damage: object) -> None:
    sealed = _seal(os.urandom(FRAME + 100))
    with pytest.raises(BackupCorruptError):
        b"".join(AesGcmCodec(KEY).open("blobs/k/sha256/x", [damage(sealed)]))  # type: ignore[operator]


def test_an_object_does_not_open_under_another_name_or_key() -> None:
    sealed = _seal(b"payload")
    with pytest.raises(BackupCorruptError):
        b"".join(AesGcmCodec(KEY).open("blobs/k/sha256/y", [sealed]))
    with pytest.raises(BackupCorruptError):
        b"".join(AesGcmCodec(bytes(32)).open("blobs/k/sha256/x", [sealed]))
    assert AesGcmCodec(KEY).key_id != AesGcmCodec(bytes(32)).key_id != PlainCodec.key_id


def test_the_snapshot_format_keeps_types() -> None:
    out = io.BytesIO()
    writer = SnapshotWriter(out)
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    row = {"id": 1, "at": moment, "naive": moment.replace(tzinfo=None), "raw": b"\x00\xff"}
    writer.row("t", row | {"doc": {"a": [1]}, "none": None, "flag": True})
    writer.close()
    [(table, back)] = list(read_rows([out.getvalue()]))
    assert table == "t"
    assert back == row | {"doc": {"a": [1]}, "none": None, "flag": True}


def _manifest(backup_id: str, created: str, project: str | None = None) -> BackupManifest:
    facts = SnapshotFacts("0013_backups", "sqlite", [], [], {}, None)
    return BackupManifest(backup_id, created, created, project, "plain", facts)


def test_prune_keeps_the_newest_per_scope() -> None:
    backups = [_manifest(f"b{i}", f"2026-01-0{i}T00:00:00") for i in range(1, 6)]
    backups += [_manifest("p1", "2026-01-01T00:00:00", "proj")]
    assert sorted(b.id for b in to_prune(backups, 2)) == ["b1", "b2", "b3"]


def test_a_restore_into_another_schema_revision_is_refused() -> None:
    backup = _manifest("b", "2026-01-01T00:00:00")
    check_revision(backup, "0013_backups")
    with pytest.raises(RestoreRefusedError, match="schema revision 0013_backups"):
        check_revision(backup, "0014_other")


def _event(n: int) -> AuditEvent:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    return AuditEvent(
        moment,
        f"r{n}",
        "admin",
        "user",
        "basic",
        "ping",
        "registry",
        None,
        "success",
        200,
        "127.0.0.1",
        "t",
    )


def test_the_audit_chain_check_finds_edits_and_missing_events() -> None:
    events, prev = [], GENESIS
    for n in range(1, 4):
        digest = chain_hash(prev, _event(n))
        events.append((n, _event(n), prev, digest))
        prev = digest
    assert verify_audit_chain(events, None, (3, prev)) is None
    edited = [
        *events[:1],
        (2, replace(_event(2), actor="mallory"), events[1][2], events[1][3]),
        events[2],
    ]
    assert verify_audit_chain(edited, None, (3, prev)) == "audit event 2 was modified"
    assert verify_audit_chain(events[:2], None, (3, prev)) == "the newest audit events are missing"
    assert verify_audit_chain(events[1:], (1, events[0][3]), (3, prev)) is None
