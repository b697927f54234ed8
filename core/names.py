"""Repository names, tags and references, checked against the distribution grammar.

A repository name is ``<project>/<path>``: the first component names the project
(the tenant), the rest the repository inside it. Names are validated before they reach
any store, so they can never escape a storage prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_PROJECT = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
NAME_MAX = 255
PROJECT_MAX = 63


@dataclass(frozen=True, slots=True)
class RepositoryName:
    """A validated ``<project>/<path>`` repository name."""

    project: str
    path: str

    def __str__(self) -> str:
        return f"{self.project}/{self.path}"

    @classmethod
    def parse(cls, text: str) -> RepositoryName:
        if len(text) > NAME_MAX or not _NAME.match(text):
            raise RegistryError(OCIErrorCode.NAME_INVALID, "invalid repository name").with_detail(
                {"name": text[:NAME_MAX]}
            )
        project, _, path = text.partition("/")
        if not path:
            raise RegistryError(
                OCIErrorCode.NAME_INVALID,
                "repository name must be <project>/<repository>",
            ).with_detail({"name": text})
        validate_project_name(project, error=OCIErrorCode.NAME_INVALID)
        return cls(project, path)


def validate_project_name(name: str, error: OCIErrorCode = OCIErrorCode.NAME_INVALID) -> str:
    if len(name) > PROJECT_MAX or not _PROJECT.match(name):
        raise RegistryError(error, "invalid project name").with_detail(
            {"project": name[:PROJECT_MAX]}
        )
    return name


def is_valid_tag(text: str) -> bool:
    return bool(_TAG.match(text))


def validate_tag(text: str) -> str:
    if not is_valid_tag(text):
        raise RegistryError(OCIErrorCode.MANIFEST_INVALID, "invalid tag").with_detail(
            {"tag": text[:128]}
        )
    return text


@dataclass(frozen=True, slots=True)
class Reference:
    """A manifest reference: exactly one of a tag or a digest."""

    tag: str | None = None
    digest: Digest | None = None

    def __str__(self) -> str:
        return str(self.digest) if self.digest is not None else str(self.tag)

    @classmethod
    def parse(cls, text: str) -> Reference:
        if ":" in text:
            return cls(digest=Digest.parse(text))
        return cls(tag=validate_tag(text))
