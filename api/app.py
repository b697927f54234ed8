"""The Litestar application factory: the composition of one API process."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from litestar import Litestar
from litestar.openapi import OpenAPIConfig

from api.context import Registry
from api.controllers.health import healthz, readyz
from api.controllers.oci import catalog, dispatch, ping
from api.controllers.projects import ProjectController
from api.controllers.tokens import jwks, oauth_token, token
from api.errors import EXCEPTION_HANDLERS
from api.temporal import TemporalProbe
from core.passwords import generate_password
from core.services.auth import AuthService, bootstrap_admin, load_signing_keys
from core.services.manifests import ManifestService
from core.services.projects import ProjectService
from core.services.repositories import RepositoryService
from core.services.uploads import UploadService
from core.settings import Settings
from core.tokens import TokenService
from storage.blobs import build_blob_store
from storage.db.engine import create_engines
from storage.db.metadata import SqlMetadata

_log = logging.getLogger("moorage.api")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def build_registry(settings: Settings) -> Registry:
    """Wire settings into services. The schema must already be migrated."""
    metadata = SqlMetadata(create_engines(settings))
    store = build_blob_store(settings)
    clock = SystemClock()
    projects = ProjectService(metadata, store)
    password = settings.auth.admin_password
    if password is not None:
        bootstrap_admin(metadata, settings.auth, password.get_secret_value())
    elif _admin_missing(metadata, settings):
        generated = generate_password()
        bootstrap_admin(metadata, settings.auth, generated)
        _log.warning("created user %r with password %s", settings.auth.admin_username, generated)
    tokens = TokenService(
        load_signing_keys(metadata),
        issuer=settings.auth.issuer,
        audience=settings.auth.service,
        ttl=settings.auth.token_ttl_seconds,
    )
    return Registry(
        settings=settings,
        metadata=metadata,
        store=store,
        projects=projects,
        repositories=RepositoryService(metadata, projects),
        uploads=UploadService(metadata, store, clock, settings.limits),
        manifests=ManifestService(metadata),
        auth=AuthService(metadata, projects, tokens, settings.auth, clock),
        extras={"temporal_check": TemporalProbe(settings.temporal)},
    )


def _admin_missing(metadata: SqlMetadata, settings: Settings) -> bool:
    with metadata.read() as session:
        return session.user(settings.auth.admin_username) is None


def create_app(settings: Settings) -> Litestar:
    """The whole HTTP application: OCI data plane, token service, management API, health."""
    registry = build_registry(settings)
    return Litestar(
        route_handlers=[
            ping,
            catalog,
            dispatch,
            token,
            oauth_token,
            jwks,
            ProjectController,
            healthz,
            readyz,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        state={"registry": registry},  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(title="Moorage", version="0.1.0", path="/api/v1/schema"),
        request_max_body_size=1024 * 1024,
        debug=False,
    )
