"""A pull's lookup: one read for the repository and the manifest, without waiting where
the database allows it, and on a worker thread when a read would have to wait."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import sqlalchemy

from cli.composition import compose
from core.errors import OCIErrorCode, RegistryError
from core.names import Reference, RepositoryName
from core.records import ManifestRecord
from core.services.manifests import ManifestService
from core.services.repositories import RepositoryService
from core.settings import Settings
from storage.db.engine import Engines
from tests.api.busy_reader import busy
from tests.api.oci import OCIClient


@dataclass
class Reads:
    """The services of a pull's lookups, on their own engines."""

    engines: Engines
    manifests: ManifestService
    repositories: RepositoryService


@pytest.fixture
def reads(app_settings: Settings) -> Iterator[Reads]:
    root = compose(app_settings)
    yield Reads(root.engines, root.manifests, root.repositories)
    root.close()


def test_lookup_without_waiting_and_its_fallback(reads: Reads, oci: OCIClient, repo: str) -> None:
    pushed = oci.push_image(repo, "v1")
    manifests, reader = reads.manifests, reads.engines.nowait_read
    name, tag = RepositoryName.parse(repo), Reference.parse("v1")
    assert manifests.read(name, tag).digest == pushed.digest
    if reader is None:
        # NOTE: PostgreSQL reads cross the network: they always run on worker threads.
        assert manifests.read_nowait(name, tag) is None
        return
    found = manifests.read_nowait(name, tag)
    assert found is not None
    assert found.payload == pushed.payload
    with busy(reader):
        # Every connection of the loop reader is busy: it declines instead of waiting.
        assert manifests.read_nowait(name, tag) is None
        assert manifests.read(name, tag).digest == pushed.digest


@pytest.mark.parametrize("reference", ["v1", "missing"])
def test_lookup_errors_name_the_missing_part(
    reads: Reads, oci: OCIClient, repo: str, reference: str
) -> None:
    oci.push_image(repo, "v1")
    manifests = reads.manifests
    other = RepositoryName.parse(f"{repo}-absent")
    lookups: list[Callable[[RepositoryName, Reference], ManifestRecord | None]] = [manifests.read]
    if reads.engines.nowait_read is not None:
        lookups.append(manifests.read_nowait)
    for lookup in lookups:
        with pytest.raises(RegistryError) as unknown_name:
            lookup(other, Reference.parse(reference))
        assert unknown_name.value.code == OCIErrorCode.NAME_UNKNOWN
        if reference == "missing":
            with pytest.raises(RegistryError) as unknown_manifest:
                lookup(RepositoryName.parse(repo), Reference.parse(reference))
            assert unknown_manifest.value.code == OCIErrorCode.MANIFEST_UNKNOWN
        else:
            found = lookup(RepositoryName.parse(repo), Reference.parse(reference))
            assert found is not None
            assert found.media_type


def test_both_lookups_return_the_same_record(reads: Reads, oci: OCIClient, repo: str) -> None:
    pushed = oci.push_image(repo, "v1")
    pulled = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with reads.engines.write.begin() as c:
        c.execute(
            sqlalchemy.text("UPDATE manifest SET pulled_at = :t WHERE digest = :d"),
            {"t": pulled, "d": pushed.digest},
        )
    name = RepositoryName.parse(repo)
    for reference in (Reference.parse("v1"), Reference.parse(pushed.digest)):
        found = reads.manifests.read(name, reference)
        assert found.pulled_at == pulled
        if reads.engines.nowait_read is not None:
            assert reads.manifests.read_nowait(name, reference) == found


def test_repository_lookup_without_waiting(reads: Reads, oci: OCIClient, repo: str) -> None:
    oci.push_image(repo, "v1")
    repositories = reads.repositories
    name = RepositoryName.parse(repo)
    found = repositories.find(name)
    assert found is not None
    if reads.engines.nowait_read is None:
        assert repositories.find_nowait(name) is None  # PostgreSQL: worker threads only
        return
    assert repositories.find_nowait(name) == found
    assert repositories.find_nowait(RepositoryName.parse(f"{repo}-absent")) is None


def test_tag_digests_of_a_repository_in_one_read(reads: Reads, oci: OCIClient, repo: str) -> None:
    """Replication planning's read of a repository's tags: what a ``HEAD`` of each answers."""
    first = oci.push_image(repo, "v1")
    second = oci.push_image(repo, "v2")
    assert oci.put_manifest(repo, "also-v1", first.payload).status_code == 201
    oci.push_image(f"{repo}-other", "v3")
    manifests = reads.manifests
    wanted = ["v1", "v2", "also-v1", "v3", "missing", "Not:A-Tag", first.digest]
    assert manifests.tag_digests(repo, wanted) == {
        "v1": first.digest,
        "v2": second.digest,
        "also-v1": first.digest,
    }
    name = RepositoryName.parse(repo)
    for tag, digest in manifests.tag_digests(repo, wanted).items():
        assert manifests.read(name, Reference.parse(tag)).digest == digest
    # A tag moved to another manifest answers the new digest; a deleted tag none.
    assert oci.put_manifest(repo, "v1", second.payload).status_code == 201
    deleted = oci.request("DELETE", f"/v2/{repo}/manifests/{first.digest}", repo)
    assert deleted.status_code == 202, deleted.text
    assert manifests.tag_digests(repo, ["v1", "v2", "also-v1"]) == {
        "v1": second.digest,
        "v2": second.digest,
    }
    assert manifests.tag_digests(f"{repo}-absent", ["v1"]) == {}
    assert manifests.tag_digests("Not A Name", ["v1"]) == {}
    assert manifests.tag_digests(repo, []) == {}
