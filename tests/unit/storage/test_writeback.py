"""An upload's bytes are queued for write-back as they are written, so commit waits less."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from storage.blobs import filesystem, writeback
from storage.blobs.filesystem import FilesystemUploadWriter

MIB = 1024 * 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_the_kernel_takes_a_files_range(tmp_path: Path) -> None:
    path = tmp_path / "data"
    with path.open("wb", buffering=0) as file:
        file.write(os.urandom(4 * MIB))
        assert writeback.start_writeback(file.fileno(), 0, 4 * MIB)
        assert writeback.start_writeback(file.fileno(), 4 * MIB, MIB)  # past the end: taken


def test_what_it_cannot_ask_is_false_not_an_error() -> None:
    read, write = os.pipe()
    try:
        assert not writeback.start_writeback(write, 0, MIB)  # a pipe has no pages to write
        assert not writeback.start_writeback(write, 0, 0)
        assert not writeback.start_writeback(write, -1, MIB)
    finally:
        os.close(read)
        os.close(write)


def test_each_write_queues_exactly_its_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[tuple[int, int]] = []

    def record(fd: int, offset: int, length: int) -> bool:
        assert os.fstat(fd).st_size == offset + length  # asked once the bytes are in the file
        queued.append((offset, length))
        return True

    monkeypatch.setattr(filesystem, "start_writeback", record)
    path = tmp_path / "data"
    path.write_bytes(b"12345")  # a session at offset 5 (an earlier chunk)
    writer = FilesystemUploadWriter(path, 5)
    pieces = [os.urandom(3 * MIB), os.urandom(17), os.urandom(MIB)]
    for piece in pieces:
        writer.write(piece)
    assert writer.commit() == 5 + 3 * MIB + 17 + MIB
    assert queued == [(5, 3 * MIB), (5 + 3 * MIB, 17), (5 + 3 * MIB + 17, MIB)]
    assert path.read_bytes() == b"12345" + b"".join(pieces)
