"""Digests, names, references, scopes and grants."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.access import ANONYMOUS, AuthMethod, Identity, Scope, grant, parse_scope
from core.digests import Digest
from core.errors import OCIErrorCode, RegistryError
from core.names import Reference, RepositoryName
from core.records import ProjectRecord

HEX = "a" * 64


def test_digest_parse_and_format() -> None:
    digest = Digest.parse(f"sha256:{HEX}")
    assert (digest.algorithm, digest.hex, str(digest)) == ("sha256", HEX, f"sha256:{HEX}")
    assert Digest.parse("sha512:" + "b" * 128).algorithm == "sha512"
    assert Digest.of(b"") == Digest.parse(
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize(
    "text",
    ["", "sha256", f"sha256:{HEX[:-1]}", f"sha256:{HEX.upper()}", f"md5:{HEX[:32]}", "sha256:../x"],
)
def test_digest_rejects(text: str) -> None:
    with pytest.raises(RegistryError) as caught:
        Digest.parse(text)
    assert caught.value.code is OCIErrorCode.DIGEST_INVALID
    assert caught.value.status == 400


def test_repository_names() -> None:
    name = RepositoryName.parse("team/app/api")
    assert (name.project, name.path, str(name)) == ("team", "app/api", "team/app/api")
    for bad in ("solo", "Team/app", "team//app", "team/../x", "team/app/", "a" * 300):
        with pytest.raises(RegistryError) as caught:
            RepositoryName.parse(bad)
        assert caught.value.code is OCIErrorCode.NAME_INVALID


def test_references() -> None:
    assert Reference.parse("v1.0").tag == "v1.0"
    assert Reference.parse(f"sha256:{HEX}").digest == Digest("sha256", HEX)
    with pytest.raises(RegistryError) as caught:
        Reference.parse("x" * 129)
    assert caught.value.code is OCIErrorCode.MANIFEST_INVALID


def test_parse_scope() -> None:
    scope = parse_scope("repository:host:5000/team/app:pull,push")
    assert scope == Scope("repository", "host:5000/team/app", frozenset({"pull", "push"}))
    assert parse_scope("repository(plugin):team/app:pull") == Scope(
        "repository", "team/app", frozenset({"pull"})
    )
    assert parse_scope("garbage") is None


def _project(public: bool) -> ProjectRecord:
    return ProjectRecord(1, "team", public, "s", datetime.now(UTC))


def test_grant_is_an_intersection() -> None:
    admin = Identity("admin", is_admin=True, method=AuthMethod.PASSWORD)
    wanted = [Scope("repository", "team/app", frozenset({"pull", "push", "bogus"}))]
    granted = grant(admin, wanted, lambda _: _project(False), create_on_push=False)
    assert granted == [Scope("repository", "team/app", frozenset({"pull", "push"}))]
    assert grant(ANONYMOUS, wanted, lambda _: _project(False), create_on_push=True) == []
    public = grant(ANONYMOUS, wanted, lambda _: _project(True), create_on_push=True)
    assert public == [Scope("repository", "team/app", frozenset({"pull"}))]


def test_grant_on_missing_project_needs_create_on_push() -> None:
    admin = Identity("admin", is_admin=True, method=AuthMethod.PASSWORD)
    wanted = [Scope("repository", "new/app", frozenset({"pull", "push"}))]
    assert grant(admin, wanted, lambda _: None, create_on_push=False) == []
    assert grant(admin, wanted, lambda _: None, create_on_push=True) == wanted
