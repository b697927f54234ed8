"""The orphan sweep walks a tenant's listing a chunk at a time, one transaction per chunk.

Fakes stand in for the database and the store so that the test sees what each
transaction was given; the real backends run the same sweep in ``tests/api/test_gc.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from typing import Any, cast

from core.backup_ports import BackupHolds
from core.control_records import GcRunRecord
from core.digests import Digest
from core.ports import BlobStore, Metadata
from core.services import gc_progress
from core.services.changes import ChangeRecorder
from core.services.gc import GarbageCollector

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
GRACE = timedelta(hours=1)
CHUNK = 3
PROJECT, TENANT = 7, "tenant-a"


def _digests(name: str, count: int) -> list[str]:
    return [str(Digest.of(f"{name}{i}".encode())) for i in range(count)]


@dataclasses.dataclass
class _World:
    """What the fake database and store hold, and what the sweep asked of them."""

    objects: dict[str, int]
    rows: set[str]
    tombstones: set[str]
    reviews: set[str] = dataclasses.field(default_factory=set)
    sightings: dict[str, datetime] = dataclasses.field(default_factory=dict)
    refused: set[str] = dataclasses.field(default_factory=set)
    listed: int = 0
    transactions: int = 0
    #: Objects listed when each transaction began.
    listed_at_begin: list[int] = dataclasses.field(default_factory=list)
    largest_question: int = 0
    delete_requests: list[int] = dataclasses.field(default_factory=list)
    run: GcRunRecord | None = None

    def asked(self, digests: Sequence[str]) -> None:
        self.largest_question = max(self.largest_question, len(digests))


class _Collector:
    def __init__(self, world: _World) -> None:
        self._w = world

    def tenants(self) -> list[tuple[int, str]]:
        return [(PROJECT, TENANT)]

    def blob_sizes(self, _project: int, digests: list[str]) -> dict[str, int]:
        self._w.asked(digests)
        return {d: self._w.objects[d] for d in digests if d in self._w.rows}

    def tombstoned_blobs(self, _tenant: str, digests: list[str]) -> set[str]:
        self._w.asked(digests)
        return {d for d in digests if d in self._w.tombstones}

    def see_orphan(self, _tenant: str, digest: str, now: datetime) -> datetime:
        return self._w.sightings.setdefault(digest, now)

    def forget_orphans(self, _tenant: str, digests: list[str]) -> None:
        self._w.asked(digests)
        for digest in digests:
            self._w.sightings.pop(digest, None)


class _Blobs:
    def __init__(self, world: _World) -> None:
        self._w = world

    def in_project(self, _project: int, digest: str) -> object | None:
        return digest if digest in self._w.rows else None


class _Reviews:
    def __init__(self, world: _World) -> None:
        self._w = world

    def blob_review_state(self, _project: int, digest: str) -> str | None:
        return "review" if digest in self._w.reviews else None


class _Runs:
    def __init__(self, world: _World) -> None:
        self._w = world

    def get_for_update(self, _run_id: str) -> GcRunRecord | None:
        return self._w.run

    def finish(self, _run_id: str, state: str, report: str, _now: datetime) -> None:
        assert self._w.run is not None
        self._w.run = dataclasses.replace(self._w.run, state=state, report=report)


class _Session:
    def __init__(self, world: _World) -> None:
        self.collector = _Collector(world)
        self.blobs = _Blobs(world)
        self.reviews = _Reviews(world)
        self.runs = _Runs(world)

    def commit(self) -> None:
        return None


class _Metadata:
    def __init__(self, world: _World) -> None:
        self._w = world

    @contextmanager
    def read(self) -> Iterator[_Session]:
        yield _Session(self._w)

    @contextmanager
    def write(self) -> Iterator[_Session]:
        self._w.transactions += 1
        self._w.listed_at_begin.append(self._w.listed)
        yield _Session(self._w)


class _Store:
    def __init__(self, world: _World) -> None:
        self._w = world

    def list_blobs(self, _tenant: str) -> Iterator[Digest]:
        for digest in list(self._w.objects):
            self._w.listed += 1
            yield Digest.parse(digest)

    def stat_blob(self, _tenant: str, digest: Digest) -> int | None:
        return self._w.objects.get(str(digest))

    def delete_blobs(self, _tenant: str, digests: Sequence[Digest]) -> dict[Digest, str]:
        self._w.delete_requests.append(len(digests))
        refused = {d: "refused" for d in digests if str(d) in self._w.refused}
        for digest in digests:
            if digest not in refused:
                self._w.objects.pop(str(digest), None)
        return refused


class _Holds:
    def __init__(self, held: bool) -> None:
        self._held = held

    def held(self) -> bool:
        return self._held


def _collector(world: _World, *, held: bool = False) -> GarbageCollector:
    return GarbageCollector(
        cast(Metadata, _Metadata(world)),
        cast(BlobStore, _Store(world)),
        cast(ChangeRecorder, object()),
        cast(BackupHolds, _Holds(held)),
        sweep_chunk=CHUNK,
    )


def _world() -> tuple[_World, dict[str, list[str]]]:
    kinds = {
        "live": _digests("live", 7),
        "tombstoned": _digests("tomb", 2),
        "old": _digests("old", 5),
        "young": _digests("young", 1),
        "claimed": _digests("claimed", 1),
    }
    # NOTE: listed round-robin, so every chunk mixes kinds and the kept ones are apart
    order = [d for group in zip_longest(*kinds.values()) for d in group if d is not None]
    objects = {d: 100 + i for i, d in enumerate(order)}
    world = _World(objects=objects, rows=set(kinds["live"]), tombstones=set(kinds["tombstoned"]))
    world.reviews.update(kinds["claimed"])
    for digest in kinds["old"] + kinds["claimed"]:
        world.sightings[digest] = NOW - 2 * GRACE
    world.sightings[kinds["young"][0]] = NOW - GRACE / 2
    return world, kinds


def test_orphans_past_grace_go_a_chunk_at_a_time_and_the_rest_stays() -> None:
    world, kinds = _world()
    sizes = sum(world.objects[d] for d in kinds["old"])
    total = len(world.objects)

    report = _collector(world).sweep_orphans(NOW, GRACE, dry_run=False)

    kept = kinds["live"] + kinds["tombstoned"] + kinds["young"] + kinds["claimed"]
    assert set(world.objects) == set(kept)
    assert not set(kinds["old"]) & set(world.sightings)  # deleted: forgotten
    assert set(kinds["young"] + kinds["claimed"]) <= set(world.sightings)
    assert (report.reviewed, report.deleted, report.kept) == (7, 5, 2)
    assert report.bytes_freed == sizes
    assert {item["digest"] for item in report.items} == set(kinds["old"])
    # NOTE: bounded: no transaction began after more than its chunks were listed
    chunks = -(-total // CHUNK)
    assert world.transactions == chunks
    assert world.listed_at_begin == [min(CHUNK * n, total) for n in range(1, chunks + 1)]
    assert world.largest_question <= CHUNK
    assert world.delete_requests
    assert max(world.delete_requests) <= CHUNK


def test_young_and_claimed_orphans_are_remembered_not_deleted() -> None:
    world, kinds = _world()
    _collector(world).sweep_orphans(NOW, GRACE, dry_run=False)
    assert set(kinds["young"] + kinds["claimed"]) <= set(world.objects)
    assert world.sightings[kinds["young"][0]] == NOW - GRACE / 2  # first sighting kept


def test_a_backup_hold_keeps_every_orphan() -> None:
    world, _ = _world()
    before = set(world.objects)
    report = _collector(world, held=True).sweep_orphans(NOW, GRACE, dry_run=False)
    assert set(world.objects) == before
    assert (report.deleted, report.kept) == (0, 7)
    assert world.delete_requests == []


def test_a_refused_delete_is_kept_and_tried_again_next_sweep() -> None:
    world, kinds = _world()
    refused = kinds["old"][0]
    world.refused.add(refused)
    report = _collector(world).sweep_orphans(NOW, GRACE, dry_run=False)
    assert refused in world.objects
    assert world.sightings[refused] == NOW - 2 * GRACE
    assert {"digest": refused, "action": "keep"}.items() <= _item(report.items, refused).items()
    world.refused.clear()
    again = _collector(world).sweep_orphans(NOW, GRACE, dry_run=False)
    assert refused not in world.objects
    assert again.deleted == 1


def test_a_dry_run_reports_every_orphan_and_changes_nothing() -> None:
    world, kinds = _world()
    before, seen = dict(world.objects), dict(world.sightings)
    report = _collector(world).sweep_orphans(NOW, GRACE, dry_run=True)
    assert (world.objects, world.sightings) == (before, seen)
    orphans = kinds["old"] + kinds["young"] + kinds["claimed"]
    assert {item["digest"] for item in report.items} == set(orphans)
    assert report.deleted == len(orphans)


def test_a_run_counts_the_kept_orphans_of_all_chunks_once_per_tenant() -> None:
    world, _ = _world()
    world.run = GcRunRecord("run", "running", False, False, None, None, NOW, None)
    _collector(world).sweep_orphans(NOW, GRACE, dry_run=False, run_id="run")
    _collector(world).sweep_orphans(NOW, GRACE, dry_run=False, run_id="run")  # a retry
    counted = gc_progress.summary(world.run, gc_progress.ORPHANS)
    assert (counted["reviewed"], counted["deleted"], counted["kept"]) == (7, 5, 2)


def _item(items: list[dict[str, Any]], digest: str) -> dict[str, Any]:
    (item,) = [item for item in items if item["digest"] == digest]
    return item
