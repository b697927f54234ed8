"""The filesystem upload writer flushes large uploads in the background, losing no error."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from storage.blobs.filesystem import FilesystemUploadWriter

MIB = 1024 * 1024


def _upload(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.write_bytes(b"")
    return path


def test_large_writes_commit_whole(tmp_path: Path) -> None:
    path = _upload(tmp_path)
    writer = FilesystemUploadWriter(path, 0)
    pieces = [os.urandom(MIB) * 4 for _ in range(20)]  # 80 MiB: several background flushes
    for piece in pieces:
        writer.write(piece)
    assert writer.commit() == 80 * MIB
    assert path.read_bytes() == b"".join(pieces)


def test_a_failed_background_flush_fails_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_fd: int) -> None:
        raise OSError(errno.EIO, "write-back failed")

    monkeypatch.setattr(os, "fdatasync", broken)
    writer = FilesystemUploadWriter(_upload(tmp_path), 0)

    def upload() -> int:
        for _ in range(20):  # 80 MiB: the first background flush fails
            writer.write(b"x" * (4 * MIB))
        return writer.commit()

    with pytest.raises(OSError, match="write-back failed"):
        upload()
