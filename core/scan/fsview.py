"""The merged filesystem view of an image's layers (OCI whiteouts, symlinks, loops).

Layers are applied base first. Each layer is first read into its own tree, with its
whiteouts (``.wh.<name>``) and opaque directories (``.wh..wh..opq``) collected apart; then
the whiteouts delete from the lower layers only, and the layer's entries are laid over
the result. A later deletion therefore wins, and a layer's own entries are never hidden
by its own markers. Only files an analyzer asked for keep their content (see
``core.scan.layers``); every other entry is a name and a kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core.scan.errors import ScanFailedError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_MAX_DEPTH = 512


class NodeKind(StrEnum):
    DIR = "dir"
    FILE = "file"
    SYMLINK = "symlink"
    OTHER = "other"


@dataclass(eq=False)
class Node:
    """One entry of the view; ``parsed`` holds what an analyzer took from the file."""

    kind: NodeKind
    layer: int
    target: str = ""
    content: bytes | None = None
    parsed: tuple[Any, ...] = ()
    children: dict[str, Node] = field(default_factory=dict)


def split_path(name: str, what: str = "entry") -> list[str]:
    """The components of a tar member name, refusing names that leave the root."""
    parts = [part for part in name.split("/") if part not in {"", "."}]
    if ".." in parts:
        raise ScanFailedError(f"{what} {name!r} leaves the image root (a '..' component)")
    if len(parts) > _MAX_DEPTH:
        raise ScanFailedError(f"{what} {name[:80]!r}... is nested too deeply")
    return parts


def new_dir(layer: int) -> Node:
    return Node(NodeKind.DIR, layer)


class LayerTree:
    """One layer's own entries and deletion markers, before it is applied."""

    def __init__(self, layer: int) -> None:
        self.layer = layer
        self.root = new_dir(layer)
        self.whiteouts: list[list[str]] = []
        self.opaques: list[list[str]] = []

    def add(self, parts: list[str], node: Node) -> None:
        if not parts:
            return  # NOTE: an entry for the root itself changes nothing we track
        name = parts[-1]
        if name == OPAQUE:
            self.opaques.append(parts[:-1])
            return
        if name.startswith(WHITEOUT):
            self.whiteouts.append([*parts[:-1], name[len(WHITEOUT) :]])
            return
        parent = self._dir(parts[:-1])
        existing = parent.children.get(name)
        if existing is not None and existing.kind is NodeKind.DIR and node.kind is NodeKind.DIR:
            return  # NOTE: a repeated directory entry keeps what is already below it
        parent.children[name] = node

    def lookup(self, parts: list[str]) -> Node | None:
        return _walk(self.root, parts)

    def _dir(self, parts: list[str]) -> Node:
        current = self.root
        for part in parts:
            child = current.children.get(part)
            if child is None or child.kind is not NodeKind.DIR:
                child = new_dir(self.layer)
                current.children[part] = child
            current = child
        return current


def _walk(root: Node, parts: list[str]) -> Node | None:
    current: Node | None = root
    for part in parts:
        if current is None or current.kind is not NodeKind.DIR:
            return None
        current = current.children.get(part)
    return current


class FileView:
    """The accumulated view of the layers applied so far."""

    def __init__(self, max_symlink_hops: int) -> None:
        self.root = new_dir(-1)
        self._max_hops = max_symlink_hops

    def apply(self, layer: LayerTree) -> None:
        """Apply a layer: its opaque directories and whiteouts first, then its entries."""
        for parts in layer.opaques:
            target = _walk(self.root, parts)
            if target is not None and target.kind is NodeKind.DIR:
                target.children = {}
        for parts in layer.whiteouts:
            parent = _walk(self.root, parts[:-1])
            if parent is not None and parent.kind is NodeKind.DIR:
                parent.children.pop(parts[-1], None)
        stack = [(self.root, layer.root)]
        while stack:
            lower, upper = stack.pop()
            for name, node in upper.children.items():
                below = lower.children.get(name)
                if node.kind is NodeKind.DIR and below is not None and below.kind is NodeKind.DIR:
                    stack.append((below, node))
                else:
                    lower.children[name] = node

    def lookup(self, parts: list[str]) -> Node | None:
        """The node at ``parts`` without following any symbolic link."""
        return _walk(self.root, parts)

    def resolve(self, path: str, follow_final: bool = True) -> tuple[str, Node] | None:
        """Resolve ``path`` inside the view, following symlinks (absolute ones from its root).

        Returns the real path and node, or ``None`` when something on the way is missing.
        A chain of more than ``max_symlink_hops`` links is a loop and fails the analysis.
        """
        pending = split_path(path, "path")[::-1]
        trail: list[tuple[str, Node]] = []
        hops = 0
        while pending:
            part = pending.pop()
            if part == "..":
                if trail:
                    trail.pop()
                continue
            current = trail[-1][1] if trail else self.root
            child = current.children.get(part) if current.kind is NodeKind.DIR else None
            if child is None:
                return None
            if child.kind is NodeKind.SYMLINK and (pending or follow_final):
                hops += 1
                if hops > self._max_hops:
                    raise ScanFailedError(f"symbolic link loop while resolving /{path}")
                target = child.target
                if target.startswith("/"):
                    trail = []
                link_parts = [p for p in target.split("/") if p not in {"", "."}]
                pending.extend(reversed(link_parts))
                continue
            trail.append((part, child))
        node = trail[-1][1] if trail else self.root
        return "/".join(name for name, _ in trail), node

    def walk(self) -> Iterator[tuple[str, Node]]:
        """Every entry as (path, node), parents before children."""
        stack: list[tuple[str, Node]] = [("", self.root)]
        while stack:
            prefix, node = stack.pop()
            for name, child in node.children.items():
                path = f"{prefix}/{name}" if prefix else name
                yield path, child
                if child.kind is NodeKind.DIR:
                    stack.append((path, child))

    def check_links(self) -> None:
        """Fail when any symbolic link of the view is part of a loop."""
        for path, node in self.walk():
            if node.kind is NodeKind.SYMLINK:
                self.resolve(path)
