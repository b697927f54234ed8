"""Where a tenant's objects live on S3, and with which credentials they are reached.

A tenant id (a project's storage id) selects its place:

- a plain id (``uuid4().hex``): the installation's bucket and credentials, under
  ``<key_prefix>tenants/<tenant>/`` of the shared bucket, or at ``<key_prefix>`` of the
  bucket ``<bucket_prefix><tenant>`` with ``bucket_per_project``;
- ``<tag>-<random id>``, made by :meth:`TenantRouter.new_tenant_id` for a project listed
  in ``S3Settings.projects``: that entry's bucket, endpoint and credentials, under
  ``<entry key_prefix>tenants/<tenant>/``. The tag is derived from the project's name,
  so the id alone tells which credentials to use. An id whose tag names no configured
  project is refused: its objects are never looked for with other credentials.

Each project's client is made once, on first use, and shared by all threads.
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from storage.blobs import s3_client as ops
from storage.blobs.naming import check_tenant

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from core.settings import S3ProjectStorage, S3Settings

_TAGGED = re.compile(r"([0-9a-f]{16})-[0-9a-f]{32}")


class TenantCredentialsError(LookupError):
    """A tenant belongs to a project whose bucket and credentials are not configured."""


@dataclass(frozen=True, slots=True)
class Place:
    """A tenant's bucket and key prefix, and the client whose credentials reach them.

    ``project`` names the ``S3Settings.projects`` entry that owns the credentials,
    ``None`` for the installation's.
    """

    client: S3Client
    bucket: str
    base: str
    region: str
    project: str | None


@dataclass(frozen=True, slots=True)
class Area:
    """A bucket prefix holding tenants, for housekeeping over every tenant at once."""

    client: S3Client
    bucket: str
    prefix: str


def project_tag(project: str) -> str:
    """The tag that marks the tenant ids of project ``project``."""
    return hashlib.sha256(f"moorage-project:{project}".encode()).hexdigest()[:16]


class TenantRouter:
    """Maps tenant ids to places; one S3 client per set of credentials."""

    def __init__(self, settings: S3Settings, client: S3Client | None = None) -> None:
        self._settings = settings
        self._installation = client if client is not None else ops.make_client(settings)
        self._projects = {project_tag(name): name for name in settings.projects}
        self._clients: dict[str, S3Client] = {}
        self._lock = threading.Lock()

    @property
    def installation(self) -> S3Client:
        """The client with the installation's credentials."""
        return self._installation

    def new_tenant_id(self, project: str) -> str:
        """A fresh tenant id for ``project``, tagged if it has its own credentials."""
        random_id = uuid.uuid4().hex
        if project in self._settings.projects:
            return f"{project_tag(project)}-{random_id}"
        return random_id

    def place(self, tenant: str) -> Place:
        """Where ``tenant`` lives; ValueError for an invalid id."""
        check_tenant(tenant)
        tagged = _TAGGED.fullmatch(tenant)
        if tagged is not None:
            project = self._projects.get(tagged.group(1))
            if project is None:
                raise TenantCredentialsError(
                    f"tenant {tenant} belongs to a project without configured S3 credentials"
                )
            entry = self._settings.projects[project]
            return Place(
                self._project_client(project),
                entry.bucket,
                f"{entry.key_prefix}tenants/{tenant}/",
                entry.region or self._settings.region,
                project,
            )
        settings = self._settings
        if settings.bucket_per_project:
            bucket, base = f"{settings.bucket_prefix}{tenant}", settings.key_prefix
        else:
            bucket, base = settings.bucket, f"{settings.key_prefix}tenants/{tenant}/"
        return Place(self._installation, bucket, base, settings.region, None)

    def project_areas(self) -> list[Area]:
        """The tenant area of every configured project bucket, with its own client."""
        return [
            Area(self._project_client(name), entry.bucket, f"{entry.key_prefix}tenants/")
            for name, entry in self._settings.projects.items()
        ]

    def _project_client(self, project: str) -> S3Client:
        with self._lock:
            client = self._clients.get(project)
            if client is None:
                entry = self._settings.projects[project]
                client = ops.make_client(_client_settings(self._settings, entry))
                self._clients[project] = client
            return client


def _client_settings(settings: S3Settings, entry: S3ProjectStorage) -> S3Settings:
    """The installation's client settings with the project's endpoint and key."""
    return settings.model_copy(
        update={
            "endpoint_url": entry.endpoint_url or settings.endpoint_url,
            "region": entry.region or settings.region,
            "access_key_id": entry.access_key_id,
            "secret_access_key": entry.secret_access_key,
            "projects": {},
        }
    )
