"""The snapshot format: gzip-compressed JSON lines, one table row per line.

Each line is ``{"t": <table>, "r": {<column>: <value>}}``; tables come in dependency order
(parents first) and each table's rows in primary-key order. Values are JSON scalars, or
tagged objects for what JSON lacks: ``{"$dt": <ISO 8601>}`` (a timestamp, with its offset
when it has one), ``{"$b": <base64>}`` (bytes), ``{"$j": <value>}`` (a JSON column's
document). Nothing in it depends on the database that wrote it.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import IO, Any


def encode_value(value: object) -> object:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict | list):
        return {"$j": value}
    return value


def decode_value(value: object) -> object:
    if isinstance(value, dict):
        if "$dt" in value:
            return datetime.fromisoformat(str(value["$dt"]))
        if "$b" in value:
            return base64.b64decode(str(value["$b"]))
        if "$j" in value:
            return value["$j"]
    return value


class SnapshotWriter:
    """Writes rows to a binary file as the snapshot format."""

    def __init__(self, out: IO[bytes]) -> None:
        self._gzip = gzip.GzipFile(fileobj=out, mode="wb", mtime=0)

    def row(self, table: str, values: Mapping[str, object]) -> None:
        encoded = {name: encode_value(value) for name, value in values.items()}
        line = json.dumps({"t": table, "r": encoded}, separators=(",", ":"))
        self._gzip.write(line.encode() + b"\n")

    def close(self) -> None:
        self._gzip.close()


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def read_rows(chunks: Iterable[bytes]) -> Iterator[tuple[str, dict[str, object]]]:
    """``(table, row)`` of every line of a snapshot, values decoded."""
    raw = io.BufferedReader(_ChunkReader(chunks), buffer_size=1024 * 1024)
    with gzip.GzipFile(fileobj=raw, mode="rb") as lines:
        for line in lines:
            item = json.loads(line)
            yield item["t"], {name: decode_value(v) for name, v in item["r"].items()}
