"""Repository names, tags and references, checked against the distribution grammar.

A repository name is ``<project>/<path>``: the first component names the project
(the tenant), the rest the repository inside it. Names are validated before they reach
any store, so they can never escape a storage prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_PROJECT = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
PROJECT_NAME_PATTERN = _PROJECT.pattern
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
_WILDCARDS = re.compile(r"[*?]")
#: An OCI path that names a digest endpoint but did not match one (its argument holds a
#: ``/``): ``<name>/(blobs|manifests|referrers)/<algorithm>:<anything>``.
_DIGEST_ENDPOINT = re.compile(
    r"^/(?P<name>.+?)/(?:blobs|manifests|referrers)/(?P<digest>[a-z0-9]+(?:[+._-][a-z0-9]+)*:.*)$"
)
_V2 = "/v2/"
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
        """Parse ``text`` or raise ``NAME_INVALID`` (400).

        The whole name must match the distribution grammar (lower-case components joined
        by single slashes, at most 255 characters): ``p1//app``, ``p1/../p2/app``,
        ``p1/app/`` and upper-case names are refused, never normalised.
        """
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


def is_repository_name(text: str) -> bool:
    """Whether ``text`` is a valid ``<project>/<path>`` repository name."""
    try:
        RepositoryName.parse(text)
    except RegistryError:
        return False
    return True


def is_repository_pattern(pattern: str) -> bool:
    """Whether ``pattern`` is a repository name in which ``*`` and ``?`` may stand for parts.

    With every wildcard read as one letter the pattern must follow the name grammar, so a
    pattern never holds ``..``, an empty component, upper case or glob classes (``[...]``).
    """
    if not pattern or len(pattern) > NAME_MAX:
        return False
    return bool(_NAME.match(_WILDCARDS.sub("a", pattern)))


def sent_path(raw_path: bytes | None, prefix: str, routed: str) -> str:
    """The path after ``prefix`` exactly as the client sent it, percent-decoded.

    The web framework collapses repeated slashes before routing (``/v2/p1//app`` reaches
    a handler as ``/p1/app``); a name must be refused, not read as another repository's,
    so names are read from the raw path. ``routed`` (the framework's path after
    ``prefix``) is the answer when there is no raw path or it does not start with ``prefix``.
    """
    if raw_path is None:
        return routed
    # NOTE: some servers leave the query string on the raw path; a literal `?` is `%3F`.
    text = unquote(raw_path.decode("latin-1").partition("?")[0])
    return text[len(prefix) :] if text.startswith(prefix) else routed


def oci_path(raw_path: bytes | None, routed: str) -> str:
    """The path after ``/v2`` (from its ``/`` on) as sent: see :func:`sent_path`."""
    return sent_path(raw_path, _V2[:-1], routed) if _sent_under(raw_path, _V2) else routed


def _sent_under(raw_path: bytes | None, prefix: str) -> bool:
    return raw_path is not None and raw_path.startswith(prefix.encode())


def unknown_endpoint(path: str) -> RegistryError:
    """The error for a ``/v2`` path that matched no endpoint.

    A digest endpoint whose argument holds slashes (``blobs/sha256:../../etc/passwd``,
    sent raw or percent-encoded) is a malformed name (``NAME_INVALID``) or digest
    (``DIGEST_INVALID``, 400), not an unknown endpoint; anything else answers 404.
    """
    found = _DIGEST_ENDPOINT.match(path)
    if found is not None:
        try:
            RepositoryName.parse(found.group("name"))
            Digest.parse(found.group("digest"))
        except RegistryError as error:
            return error
    return RegistryError(OCIErrorCode.NAME_INVALID, "unknown endpoint", status=404)


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
