"""The Litestar application factory: the composition of one API process."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import partial

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.types import LifeSpanReceive, LifeSpanScope, LifeSpanSend, Receive, Scope, Send

from api.audit_middleware import AuditMiddleware
from api.context import Registry
from api.controllers.gc import GcController
from api.controllers.health import healthz, readyz
from api.controllers.oci import catalog, dispatch, ping
from api.controllers.policies import PolicyController
from api.controllers.projects import ProjectController
from api.controllers.repositories import RepositoryController
from api.controllers.tokens import jwks, oauth_token, token
from api.errors import EXCEPTION_HANDLERS
from api.identity_wiring import IDENTITY_ROUTES, build_identity, close_identity
from api.manifest_shortcut import ManifestShortcuts
from api.temporal import TemporalProbe
from core.manifests import ManifestRules
from core.passwords import generate_password
from core.pulls import PullRecorder
from core.services.auth import AuthService, bootstrap_admin, load_signing_keys
from core.services.changes import ChangeRecorder
from core.services.manifests import ManifestService
from core.services.projects import ProjectService
from core.services.repositories import RepositoryService
from core.services.uploads import UploadService
from core.settings import Settings
from core.tokens import TokenService
from storage.blobs import build_blob_store
from storage.db.engine import create_engines
from storage.db.metadata import SqlMetadata
from storage.db.pull_times import SqlPullTimes

_log = logging.getLogger("moorage.api")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def build_registry(settings: Settings) -> Registry:
    """Wire settings into services. The schema must already be migrated."""
    engines = create_engines(settings)
    metadata = SqlMetadata(engines)
    store = build_blob_store(settings)
    clock = SystemClock()
    projects = ProjectService(metadata, store)
    changes = ChangeRecorder(
        settings.control.gc_review_delay_seconds, settings.control.quota_warning_ratio
    )
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
        loader=partial(load_signing_keys, metadata),
    )
    return Registry(
        settings=settings,
        metadata=metadata,
        store=store,
        projects=projects,
        repositories=RepositoryService(
            metadata, projects, changes, nowait=metadata if metadata.reads_nowait else None
        ),
        uploads=UploadService(metadata, store, clock, settings.limits, changes),
        manifests=ManifestService(
            metadata,
            changes,
            PullRecorder(SqlPullTimes(engines), settings.control.pull_time_granularity_seconds),
            nowait=metadata if metadata.reads_nowait else None,
            rules=ManifestRules.from_pattern(settings.limits.nondistributable_urls),
        ),
        auth=(auth := AuthService(metadata, projects, tokens, settings.auth, clock)),
        identity=build_identity(settings, engines, projects, auth, clock),
        extras={"temporal_check": TemporalProbe(settings.temporal)},
    )


def _admin_missing(metadata: SqlMetadata, settings: Settings) -> bool:
    with metadata.read() as session:
        return session.user(settings.auth.admin_username) is None


class MoorageApp(Litestar):
    """Litestar with the manifest shortcuts in front of its routing."""

    shortcut: ManifestShortcuts | None = None

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        shortcut = self.shortcut
        if shortcut is not None and scope["type"] == "http":  # type: ignore[comparison-overlap]
            going_on = await shortcut.answer(scope, receive, send)
            if going_on is None:
                return
            receive = going_on
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, shortcuts: bool = True) -> Litestar:
    """The whole HTTP application: OCI data plane, token service, management API, health.

    ``shortcuts=False`` leaves out the manifest shortcuts (``api.manifest_shortcut``),
    so every request takes the full path; the answers are the same either way.
    """
    registry = build_registry(settings)
    app = MoorageApp(
        route_handlers=[
            ping,
            catalog,
            dispatch,
            token,
            oauth_token,
            jwks,
            ProjectController,
            *IDENTITY_ROUTES,
            GcController,
            PolicyController,
            RepositoryController,
            healthz,
            readyz,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[AuditMiddleware],
        on_shutdown=[partial(close_identity, registry)],
        state={"registry": registry},  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(title="Moorage", version="0.1.0", path="/api/v1/schema"),
        request_max_body_size=1024 * 1024,
        debug=False,
    )
    if shortcuts:
        app.shortcut = ManifestShortcuts(registry)
    return app
