"""Read one layer's tar stream into a :class:`LayerTree`, keeping what analyzers need.

The tar is read sequentially straight from the decompressing stream (forward seeks pass
over the bodies nobody reads); nothing is extracted. For each regular file an
:class:`Interest` decides what to keep: its bytes (package databases and metadata,
bounded), or what a stream-time parser takes from it (Go build info from ELF files,
packages of Java archives, the rpm database), so large files never stay in memory.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core.scan.errors import ScanFailedError
from core.scan.fsview import FileView, LayerTree, Node, NodeKind, split_path
from core.scan.streams import Budget, LayerStream


class Reader(Protocol):
    """A sequential byte reader (a tar member)."""

    def read(self, size: int = -1, /) -> bytes: ...


#: A parser run on a file while its layer streams: (path, reader, size) -> facts.
StreamParser = Callable[[str, Reader, int], tuple[Any, ...]]


@dataclass(frozen=True)
class Interest:
    """What the analyzers want from the files of a layer."""

    #: True when a file's bytes must be kept (metadata, databases read at the end).
    keep: Callable[[str], bool]
    #: A parser for a file by its path, run while streaming (``None``: not interested).
    parser_for: Callable[[str], StreamParser | None]
    #: Parser for files whose first bytes are ``sniff_magic`` (ELF binaries).
    sniff_magic: bytes
    sniff_parser: StreamParser


@dataclass
class KeptBytes:
    """How many content bytes of the image are held in memory."""

    left: int

    def take(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise ScanFailedError("package metadata exceeds max_kept_bytes")


class _Peeked:
    """A member reader whose first bytes were already read for sniffing."""

    def __init__(self, head: bytes, rest: Reader) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            if len(data) < size:
                data += self._rest.read(size - len(data))
            return data
        return self._rest.read(size)


def read_layer(
    stream: LayerStream,
    index: int,
    view: FileView,
    interest: Interest,
    budget: Budget,
    kept: KeptBytes,
    max_file_bytes: int,
) -> LayerTree:
    """Read layer ``index`` into a tree (hard links resolve against the view below too)."""
    tree = LayerTree(index)
    try:
        # NOTE: "r:" reads the stream as a file: passing over a body is one forward seek
        with tarfile.open(fileobj=stream, mode="r:") as archive:
            for member in archive:
                budget.spend_entry()
                _add_member(archive, member, tree, view, interest, kept, max_file_bytes)
    except ScanFailedError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ScanFailedError(f"layer {index + 1} is not a valid tar archive: {exc}") from exc
    stream.drain()
    return tree


def _add_member(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    tree: LayerTree,
    view: FileView,
    interest: Interest,
    kept: KeptBytes,
    max_file_bytes: int,
) -> None:
    parts = split_path(member.name)
    path = "/".join(parts)
    layer = tree.layer
    if member.isdir():
        tree.add(parts, Node(NodeKind.DIR, layer))
    elif member.issym():
        tree.add(parts, Node(NodeKind.SYMLINK, layer, target=member.linkname))
    elif member.islnk():
        tree.add(parts, _hard_link(member, tree, view))
    elif member.isreg():
        tree.add(parts, _regular(archive, member, path, layer, interest, kept, max_file_bytes))
    else:
        tree.add(parts, Node(NodeKind.OTHER, layer))


def _hard_link(member: tarfile.TarInfo, tree: LayerTree, view: FileView) -> Node:
    target = member.linkname
    if target.startswith("/"):
        raise ScanFailedError(f"hard link {member.name!r} points to an absolute path {target!r}")
    parts = split_path(target, "hard link target")
    node = tree.lookup(parts) or view.lookup(parts)
    if node is None or node.kind is not NodeKind.FILE:
        return Node(NodeKind.FILE, tree.layer)
    return Node(NodeKind.FILE, tree.layer, content=node.content, parsed=node.parsed)


def _regular(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    path: str,
    layer: int,
    interest: Interest,
    kept: KeptBytes,
    max_file_bytes: int,
) -> Node:
    if member.size == 0:
        return Node(NodeKind.FILE, layer, content=b"" if interest.keep(path) else None)
    source = archive.extractfile(member)
    if source is None:
        return Node(NodeKind.FILE, layer)
    if interest.keep(path):
        if member.size > max_file_bytes:
            raise ScanFailedError(f"/{path} is larger than max_file_bytes")
        kept.take(member.size)
        return Node(NodeKind.FILE, layer, content=source.read())
    parser = interest.parser_for(path)
    if parser is None:
        head = source.read(len(interest.sniff_magic))
        if head != interest.sniff_magic:
            return Node(NodeKind.FILE, layer)
        parser = interest.sniff_parser
        return Node(NodeKind.FILE, layer, parsed=parser(path, _Peeked(head, source), member.size))
    return Node(NodeKind.FILE, layer, parsed=parser(path, source, member.size))
