"""Replicated deletions: a tag deleted at the source is deleted at the destination, nothing more.

The fake destinations behave as the two kinds of registry do: one deletes a tag alone
(Moorage, Harbor), the other (CNCF distribution, docker-registry) refuses a tag deletion
with ``UNSUPPORTED`` and, deleting by digest, removes every tag of that manifest.
"""

from __future__ import annotations

import pytest

from core.replication import TaskStatus
from core.replication_delete import TAG_SCAN_MAX, ArtifactDeleter
from core.upstream_ports import (
    ManifestHead,
    UpstreamNotFoundError,
    UpstreamRefusedError,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


class FakeRegistry:
    def __init__(
        self, tags: dict[str, str], *, tag_delete: bool, digest_delete: bool = True
    ) -> None:
        self.tags_of: dict[str, str] = dict(tags)
        self.manifests = set(tags.values())
        self.tag_delete = tag_delete
        self.digest_delete = digest_delete
        self.calls: list[str] = []

    async def head_manifest(self, repository: str, reference: str) -> ManifestHead:
        digest = reference if reference in self.manifests else self.tags_of.get(reference)
        if digest is None:
            raise UpstreamNotFoundError(f"{repository}:{reference}")
        return ManifestHead(digest, "application/vnd.oci.image.manifest.v1+json", 100)

    async def tags(self, repository: str) -> list[str]:
        assert repository == "app"
        return sorted(self.tags_of)

    async def delete_manifest(self, repository: str, reference: str) -> bool:
        assert repository == "app"
        self.calls.append(reference)
        if ":" not in reference:
            if not self.tag_delete:
                raise UpstreamRefusedError(
                    "the registry answered 405 UNSUPPORTED", status=405, code="UNSUPPORTED"
                )
            return self.tags_of.pop(reference, None) is not None
        if not self.digest_delete:
            raise UpstreamRefusedError(
                "the registry answered 405 UNSUPPORTED: The operation is unsupported.",
                status=405,
                code="UNSUPPORTED",
            )
        if reference not in self.manifests:
            return False
        self.manifests.discard(reference)
        self.tags_of = {t: d for t, d in self.tags_of.items() if d != reference}
        return True


async def test_a_registry_that_deletes_tags_loses_only_that_tag() -> None:
    registry = FakeRegistry({"v1": D1, "latest": D1}, tag_delete=True)
    result = await ArtifactDeleter(registry).delete("app", "v1", D1)
    assert (result.status, result.digest) == (TaskStatus.DELETED, D1)
    assert registry.tags_of == {"latest": D1}
    assert registry.calls == ["v1"]


async def test_by_digest_when_tags_cannot_be_deleted_and_no_other_tag_holds_it() -> None:
    registry = FakeRegistry({"v1": D1, "v2": D2}, tag_delete=False)
    result = await ArtifactDeleter(registry).delete("app", "v1", D1)
    assert (result.status, result.digest) == (TaskStatus.DELETED, D1)
    assert registry.tags_of == {"v2": D2}
    assert registry.calls == ["v1", D1]


async def test_a_manifest_another_tag_still_points_to_is_kept() -> None:
    registry = FakeRegistry({"v1": D1, "latest": D1, "v2": D2}, tag_delete=False)
    result = await ArtifactDeleter(registry).delete("app", "v1", D1)
    assert result.status is TaskStatus.SKIPPED
    assert "latest" in (result.error or "")
    assert "deletes by digest only" in (result.error or "")
    assert registry.tags_of == {"v1": D1, "latest": D1, "v2": D2}
    assert D1 not in registry.calls


async def test_more_tags_than_can_be_checked_keep_it() -> None:
    tags = {f"t{n}": D2 for n in range(TAG_SCAN_MAX + 1)}
    registry = FakeRegistry({"v1": D1, **tags}, tag_delete=False)
    result = await ArtifactDeleter(registry).delete("app", "v1", D1)
    assert result.status is TaskStatus.SKIPPED
    assert "too many to check" in (result.error or "")
    assert D1 in registry.manifests


async def test_tags_released_by_the_runner_do_not_keep_it() -> None:
    registry = FakeRegistry({"v1": D1, "latest": D1}, tag_delete=False)
    deleter = ArtifactDeleter(registry)
    first = await deleter.delete("app", "v1", D1, lambda tag: tag == "latest")
    second = await deleter.delete("app", "latest", D1, lambda tag: tag == "v1")
    assert first.status is TaskStatus.DELETED
    assert (second.status, second.error) == (TaskStatus.SKIPPED, "not at the destination")
    assert registry.tags_of == {}
    assert registry.manifests == set()


async def test_a_tag_changed_at_the_destination_is_kept() -> None:
    registry = FakeRegistry({"v1": D2}, tag_delete=True)
    result = await ArtifactDeleter(registry).delete("app", "v1", D1)
    assert result.status is TaskStatus.SKIPPED
    assert "not the deleted" in (result.error or "")
    assert registry.calls == []


async def test_a_tag_that_is_not_there_is_skipped() -> None:
    registry = FakeRegistry({"v2": D2}, tag_delete=False)
    result = await ArtifactDeleter(registry).delete("app", "v1", D1)
    assert (result.status, result.error) == (TaskStatus.SKIPPED, "not at the destination")
    assert registry.calls == []


async def test_a_deletion_by_digest_deletes_that_digest() -> None:
    registry = FakeRegistry({"v1": D1, "latest": D1}, tag_delete=False)
    result = await ArtifactDeleter(registry).delete("app", D1, D1)
    assert result.status is TaskStatus.DELETED
    assert registry.manifests == set()
    gone = await ArtifactDeleter(registry).delete("app", D1, D1)
    assert gone.status is TaskStatus.SKIPPED


async def test_deletion_disabled_at_the_destination_is_its_oci_error() -> None:
    registry = FakeRegistry({"v1": D1}, tag_delete=False, digest_delete=False)
    with pytest.raises(UpstreamRefusedError) as refused:
        await ArtifactDeleter(registry).delete("app", "v1", D1)
    assert refused.value.code == "UNSUPPORTED"
    assert "The operation is unsupported." in str(refused.value)
    assert registry.tags_of == {"v1": D1}


async def test_a_tag_deletion_refused_for_another_reason_is_not_done_by_digest() -> None:
    class Denying(FakeRegistry):
        async def delete_manifest(self, repository: str, reference: str) -> bool:
            self.calls.append(f"{repository}:{reference}")
            raise UpstreamRefusedError("denied", status=403, code="DENIED")

    registry = Denying({"v1": D1}, tag_delete=True)
    with pytest.raises(UpstreamRefusedError):
        await ArtifactDeleter(registry).delete("app", "v1", D1)
    assert registry.calls == ["app:v1"]
