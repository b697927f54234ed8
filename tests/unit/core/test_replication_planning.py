"""Planning a pull: which tags are found in place, with one store read per repository."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, cast

from core.replication import (
    Direction,
    PlannedTask,
    ReplicationPolicy,
    TaskOperation,
    TriggerKind,
)
from core.replication_run import LISTED_TAGS_SECONDS, ReplicationRunner
from core.replication_settings import ReplicationSettings
from core.upstream_ports import ManifestHead, UpstreamNotFoundError
from tests.unit.core.replication_fixtures import NOW, replication_policy

if TYPE_CHECKING:
    from core.replication import ReplicationStore
    from core.replication_copy import ReplicaRegistry
    from core.replication_run import ReplicaClients


def policy(direction: Direction = Direction.PULL, referrers: bool = False) -> ReplicationPolicy:
    return replication_policy(
        direction=direction,
        endpoint="upstream",
        repositories="team/**",
        referrers=referrers,
        prefix="mirror",
        trigger=TriggerKind.MANUAL,
        override=False,
    )


class Registry:
    """A registry's repositories and tags (``tag -> digest``), answering what planning asks."""

    def __init__(self, repositories: dict[str, dict[str, str]]) -> None:
        self.repositories = repositories
        self.heads: list[tuple[str, str]] = []

    async def catalog(self) -> list[str]:
        return list(self.repositories)

    async def tags(self, repository: str) -> list[str]:
        return list(self.repositories.get(repository, {}))

    async def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        self.heads.append((repository, reference))
        await asyncio.sleep(0)
        digest = self.repositories.get(repository, {}).get(reference)
        if digest is None:
            raise UpstreamNotFoundError(f"{repository}:{reference}")
        return ManifestHead(digest, "application/vnd.oci.image.manifest.v1+json", 100)

    async def referrers(
        self, repository: str, digest: str, tags: frozenset[str] | None = None
    ) -> list[dict[str, Any]]:
        del repository, digest, tags  # no referrers API: cosign tags are looked up in `tags`
        return []


class Clients:
    def __init__(self, local: Registry, remote: Registry) -> None:
        self._local, self._remote = local, remote

    def local(self) -> ReplicaRegistry:
        return cast("ReplicaRegistry", self._local)

    def remote(self, endpoint: str) -> ReplicaRegistry:
        assert endpoint == "upstream"
        return cast("ReplicaRegistry", self._remote)


class Store:
    """This installation's tags, read as ``ManifestService.tag_digests`` reads them."""

    def __init__(self, repositories: dict[str, dict[str, str]]) -> None:
        self.repositories = repositories
        self.reads: list[tuple[str, list[str]]] = []
        self.loop_thread = threading.get_ident()

    def tag_digests(self, repository: str, tags: Collection[str]) -> dict[str, str]:
        assert threading.get_ident() != self.loop_thread, "a store read blocks the event loop"
        self.reads.append((repository, sorted(tags)))
        here = self.repositories.get(repository, {})
        return {tag: here[tag] for tag in tags if tag in here}


SOURCE = {
    "team/a": {"v1": "sha256:a1", "v2": "sha256:a2", "v3": "sha256:a3"},
    "team/b": {"latest": "sha256:b1"},
    "other/c": {"v1": "sha256:c1"},
}
LOCAL = {
    # v1 in place, v2 points elsewhere, v3 missing
    "mirror/team/a": {"v1": "sha256:a1", "v2": "sha256:old", "extra": "sha256:x"},
    "mirror/team/b": {"latest": "sha256:b1"},
}


def runner(
    store: Store, local: Registry, remote: Registry, monotonic: Callable[[], float] = time.monotonic
) -> ReplicationRunner:
    return ReplicationRunner(
        cast("ReplicationStore", object()),
        cast("ReplicaClients", Clients(local, remote)),
        ReplicationSettings(),
        4 * 1024 * 1024,
        lambda: NOW,
        local_digests=store.tag_digests,
        monotonic=monotonic,
    )


def in_place(planned: list[PlannedTask]) -> dict[tuple[str, str], str | None]:
    """``(destination, tag) -> digest`` of the tasks found in place (``None``: to copy)."""
    return {(t.destination, t.reference): t.digest if t.in_place else None for t in planned}


async def test_a_pull_reads_each_destination_repository_once() -> None:
    store, local, remote = Store(LOCAL), Registry(LOCAL), Registry(SOURCE)
    planned = await runner(store, local, remote)._list(policy())
    assert in_place(planned) == {
        ("mirror/team/a", "v1"): "sha256:a1",
        ("mirror/team/a", "v2"): None,
        ("mirror/team/a", "v3"): None,
        ("mirror/team/b", "latest"): "sha256:b1",
    }
    assert all(t.operation is TaskOperation.COPY for t in planned)
    assert [(t.source, t.reference) for t in planned] == [
        ("team/a", "v1"),
        ("team/a", "v2"),
        ("team/a", "v3"),
        ("team/b", "latest"),
    ]
    # One read per destination repository, for exactly its planned tags; no HEAD here.
    assert sorted(store.reads) == [
        ("mirror/team/a", ["v1", "v2", "v3"]),
        ("mirror/team/b", ["latest"]),
    ]
    assert local.heads == []
    assert sorted(remote.heads) == [
        ("team/a", "v1"),
        ("team/a", "v2"),
        ("team/a", "v3"),
        ("team/b", "latest"),
    ]


async def test_a_push_asks_the_destination_and_never_the_store() -> None:
    store = Store({})
    # Pushing: this installation is the source, the endpoint the destination.
    local, remote = Registry(SOURCE), Registry(LOCAL)
    planned = await runner(store, local, remote)._list(policy(Direction.PUSH))
    assert in_place(planned) == {
        ("mirror/team/a", "v1"): "sha256:a1",
        ("mirror/team/a", "v2"): None,
        ("mirror/team/a", "v3"): None,
        ("mirror/team/b", "latest"): "sha256:b1",
    }
    assert store.reads == []
    assert ("mirror/team/b", "latest") in remote.heads


async def test_a_repository_with_referrers_at_the_source_is_not_in_place() -> None:
    store, local = Store(LOCAL), Registry(LOCAL)
    signed = {**SOURCE, "team/b": {"latest": "sha256:b1", "sha256-b1.sig": "sha256:s"}}
    planned = await runner(store, local, Registry(signed))._list(policy(referrers=True))
    found = in_place(planned)
    assert found[("mirror/team/b", "latest")] is None  # its signature is checked by the copy
    assert found[("mirror/team/a", "v1")] == "sha256:a1"


async def test_a_plans_tag_lists_serve_its_copies_for_a_minute_only() -> None:
    now = [1000.0]
    store, local, remote = Store(LOCAL), Registry(LOCAL), Registry(SOURCE)
    planner = runner(store, local, remote, lambda: now[0])
    await planner._list(policy())
    listed = planner._listed
    assert listed.fresh("pull:upstream", "team/a") == frozenset(SOURCE["team/a"])
    assert listed.fresh("pull:upstream", "team/b") == frozenset(SOURCE["team/b"])
    assert listed.fresh("pull:upstream", "other/c") is None  # not selected, not listed
    assert listed.fresh("push:upstream", "team/a") is None  # another side's lists
    now[0] += LISTED_TAGS_SECONDS
    assert listed.fresh("pull:upstream", "team/a") == frozenset(SOURCE["team/a"])
    now[0] += 0.5
    assert listed.fresh("pull:upstream", "team/a") is None  # older: the copy asks
