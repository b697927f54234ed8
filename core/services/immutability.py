"""Enforcement of tag immutability inside the write transaction that changes a tag."""

from __future__ import annotations

from core.errors import OCIErrorCode, RegistryError
from core.policies import ImmutabilityPolicy
from core.ports import UnitOfWork
from core.records import RepositoryRecord

IMMUTABILITY: str = "immutability"


def check_mutable(session: UnitOfWork, repository: RepositoryRecord, tags: list[str]) -> None:
    """Raise ``DENIED`` (403) naming the rule if any of ``tags`` is immutable."""
    if not tags:
        return
    policy = ImmutabilityPolicy.load(session.policies.get(repository.project_id, IMMUTABILITY))
    for tag in tags:
        index = policy.rule_for(repository.name, tag)
        if index is not None:
            rule = policy.rules[index]
            raise RegistryError(
                OCIErrorCode.DENIED,
                f"tag {tag!r} is immutable: immutability rule {index + 1} "
                f"(repository {rule.repository.decoration} {rule.repository.pattern!r}, "
                f"tag {rule.tag.decoration} {rule.tag.pattern!r})",
            ).with_detail({"tag": tag, "rule": index + 1})
