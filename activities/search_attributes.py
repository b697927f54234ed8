"""Moorage's custom Temporal search attributes: one definition for every user.

The keys are registered on the Temporal server (the dev server's ``--search-attribute``
flags, or ``cli.search_attributes`` against a separate server) and set on the workflows
the outbox dispatcher starts, so an operator finds any run in the Temporal UI, e.g.
``MoorageRepository = "acme/app"``. This module holds only plain values: no I/O imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

#: The project's name, e.g. ``acme``.
PROJECT: Final = SearchAttributeKey.for_keyword("MoorageProject")
#: The full repository name, ``<project>/<path>``.
REPOSITORY: Final = SearchAttributeKey.for_keyword("MoorageRepository")
#: The manifest (or blob) digest the run concerns.
DIGEST: Final = SearchAttributeKey.for_keyword("MoorageDigest")

#: The replication policy a run belongs to (its name).
POLICY: Final = SearchAttributeKey.for_keyword("MoorageReplicationPolicy")

#: Every Moorage search attribute (all of the Keyword type).
ALL_KEYS: Final = (PROJECT, REPOSITORY, DIGEST, POLICY)


def dev_server_flags() -> list[str]:
    """The ``temporal server start-dev`` arguments that register :data:`ALL_KEYS`.

    The dev server accepts them again on a restart over a database that already holds
    them, so the flags are safe on every start.
    """
    flags: list[str] = []
    for key in ALL_KEYS:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags


def search_values(
    *,
    project: str | None = None,
    repository: str | None = None,
    digest: str | None = None,
    policy: str | None = None,
) -> dict[str, str]:
    """Attribute name to value for what is known; unknown (``None`` or empty) are left out."""
    values = {
        PROJECT.name: project,
        REPOSITORY.name: repository,
        DIGEST.name: digest,
        POLICY.name: policy,
    }
    return {name: value for name, value in values.items() if value}


def typed_search_attributes(values: Mapping[str, str]) -> TypedSearchAttributes:
    """Typed attributes from a :func:`search_values` mapping (unknown names are ignored)."""
    keys = {key.name: key for key in ALL_KEYS}
    return TypedSearchAttributes(
        [SearchAttributePair(keys[name], value) for name, value in values.items() if name in keys]
    )
