"""Fixtures of the blob store contract suite: a moto S3 server and the backends."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.contract.backends import (
    KINDS,
    Backend,
    FilesystemBackend,
    S3Backend,
    S3CredentialsBackend,
)
from tests.services.s3 import EnforcingS3Server, S3Server, start_enforcing_moto, start_moto

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def enforcing_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnforcingS3Server]:
    """A moto server that checks every request against IAM users and their policies."""
    server = start_enforcing_moto(tmp_path_factory.mktemp("moto-iam"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind: str = request.param
    if kind == "filesystem":
        made: Backend = FilesystemBackend(tmp_path / "blobs")
    elif kind == "s3-project-credentials":
        made = S3CredentialsBackend(request.getfixturevalue("enforcing_s3"))
    else:
        server: S3Server = request.getfixturevalue("moto_s3")
        made = S3Backend(server, per_project=kind == "s3-bucket-per-project")
    yield made
    made.close()


@pytest.fixture
def new_tenant(backend: Backend) -> Iterator[Callable[[], str]]:
    """Make tenants with unique ids; on teardown delete each and check nothing is left."""
    made: list[str] = []

    def make() -> str:
        tenant = backend.new_tenant_id()
        backend.store.create_tenant(tenant)
        made.append(tenant)
        return tenant

    yield make
    for tenant in made:
        backend.store.delete_tenant(tenant)
        assert backend.raw_entries(tenant) == set(), f"{tenant} not empty after delete_tenant"
        assert not backend.tenant_present(tenant)
