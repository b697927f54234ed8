"""Replicating a deletion to a destination registry (a push policy with ``deletions``).

What a user expects: deleting ``app:v1`` at the source removes ``app:v1`` at the
destination, and nothing the source did not delete. Registries differ in what they
allow: Moorage, Harbor and CNCF distribution v3 delete a tag alone; distribution 2.8
(Debian's ``docker-registry``) deletes only by digest (a tag gets ``400 DIGEST_INVALID``),
and deleting a manifest by digest removes every tag that points to it. So a deletion by
tag:

1. resolves the tag at the destination (``HEAD`` with every manifest type accepted,
   its ``Docker-Content-Digest``); a tag that is not there is ``skipped``;
2. keeps a destination tag that points to another digest than the one deleted at the
   source (it was changed at the destination: ``skipped``, with both digests named);
3. deletes the tag (``DELETE .../manifests/<tag>``); a destination that cannot delete a
   tag alone (it answers ``UNSUPPORTED``, ``DIGEST_INVALID``, ``405``, or ``404`` for a
   tag it just resolved) gets the manifest deleted by digest instead, but only when no
   other tag there that keeps it points to that digest (the tags are listed and
   resolved); otherwise the task is ``skipped`` and names the tags that keep it.

Which other tags keep a manifest (the runner decides, ``released``): not those this
execution deletes as well, and not those the policy selects that the source no longer
has (their own deletion was replicated earlier and had to be skipped for this very
reason), so deleting ``v1`` then ``latest`` at the source removes both at the
destination. A tag the policy does not select (pushed at the destination, outside the
policy's filters) keeps it, as does one the source still has.

A deletion by digest (the source deleted a manifest) deletes that digest. A refusal
(deletion disabled, immutable, denied) fails the task with the destination's OCI error;
nothing is ever deleted by digest when the tag deletion was refused for another reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, Protocol

from core.replication import TaskResult, TaskStatus
from core.upstream_ports import ManifestHead, UpstreamError, UpstreamNotFoundError

#: OCI error codes (and the status) of a registry that cannot delete a tag alone.
TAG_DELETE_UNSUPPORTED: Final = frozenset({"UNSUPPORTED", "DIGEST_INVALID"})
_METHOD_NOT_ALLOWED: Final = 405
#: Destination tags resolved at most to find the ones sharing a digest.
TAG_SCAN_MAX: Final = 1000
_SCAN_PARALLELISM: Final = 16


class DeletionTarget(Protocol):
    """The distribution API calls a deletion makes (``adapters.upstream_registry``)."""

    async def head_manifest(self, repository: str, reference: str) -> ManifestHead: ...
    async def tags(self, repository: str) -> list[str]: ...
    async def delete_manifest(self, repository: str, reference: str) -> bool: ...


def is_digest(reference: str) -> bool:
    """Whether a manifest reference is a digest (``algorithm:hex``) rather than a tag."""
    return ":" in reference


def _unsupported(exc: UpstreamError) -> bool:
    return exc.code in TAG_DELETE_UNSUPPORTED or exc.status == _METHOD_NOT_ALLOWED


def _short(digest: str) -> str:
    return digest[:19]


class ArtifactDeleter:
    """Deletes one task's artifact at ``destination`` (see the module's rules)."""

    def __init__(self, destination: DeletionTarget) -> None:
        self._dst = destination

    async def delete(
        self,
        repository: str,
        reference: str,
        deleted: str | None = None,
        released: Callable[[str], bool] = lambda _tag: False,
    ) -> TaskResult:
        """Delete ``repository:reference`` at the destination.

        Args:
            repository: The destination repository.
            reference: The deleted tag (or digest).
            deleted: The digest the reference had at the source (``None``: unknown).
            released: Whether another destination tag does *not* keep the manifest
                (a tag this execution deletes too, or one the source no longer has).
        """
        if is_digest(reference):
            return await self._by_digest(repository, reference)
        present = await self._resolve(repository, reference)
        if present is None:
            return TaskResult(TaskStatus.SKIPPED, deleted, error="not at the destination")
        if deleted and present != deleted:
            return TaskResult(
                TaskStatus.SKIPPED,
                present,
                error=(
                    f"kept: the destination's {reference} is {_short(present)}, "
                    f"not the deleted {_short(deleted)}"
                ),
            )
        return await self._tag(repository, reference, present, released)

    async def _tag(
        self, repository: str, reference: str, present: str, released: Callable[[str], bool]
    ) -> TaskResult:
        """Delete the tag alone, or its manifest by digest where only that is possible."""
        try:
            if await self._dst.delete_manifest(repository, reference):
                return TaskResult(TaskStatus.DELETED, present)
        except UpstreamError as exc:
            if not _unsupported(exc):
                raise
        else:
            # NOTE: a 404 for a tag just resolved: a registry that looks tags up as digests
            if await self._resolve(repository, reference) is None:
                return TaskResult(TaskStatus.SKIPPED, present, error="not at the destination")
        holders = await self._holders(repository, present, reference, released)
        if holders:
            named = ", ".join(sorted(holders)[:5])
            return TaskResult(
                TaskStatus.SKIPPED,
                present,
                error=(
                    f"kept: the destination deletes by digest only and {named} "
                    f"still point(s) to {_short(present)}"
                ),
            )
        return await self._by_digest(repository, present)

    async def _resolve(self, repository: str, reference: str) -> str | None:
        try:
            return (await self._dst.head_manifest(repository, reference)).digest
        except UpstreamNotFoundError:
            return None

    async def _by_digest(self, repository: str, digest: str) -> TaskResult:
        if await self._dst.delete_manifest(repository, digest):
            return TaskResult(TaskStatus.DELETED, digest)
        return TaskResult(TaskStatus.SKIPPED, digest, error="not at the destination")

    async def _holders(
        self, repository: str, digest: str, reference: str, released: Callable[[str], bool]
    ) -> list[str]:
        """The destination's other tags that point to ``digest`` and keep it.

        More tags than :data:`TAG_SCAN_MAX` count as holders (nothing is deleted unseen).
        """
        others = [
            tag
            for tag in await self._dst.tags(repository)
            if tag != reference and not released(tag)
        ]
        if len(others) > TAG_SCAN_MAX:
            return [f"one of {len(others)} tags (too many to check)"]
        gate = asyncio.Semaphore(_SCAN_PARALLELISM)

        async def points_there(tag: str) -> bool:
            async with gate:
                return await self._resolve(repository, tag) == digest

        found = await asyncio.gather(*(points_there(tag) for tag in others))
        return [tag for tag, there in zip(others, found, strict=True) if there]
