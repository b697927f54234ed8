"""The Litestar application factory: the composition of one API process."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.types import LifeSpanReceive, LifeSpanScope, LifeSpanSend, Receive, Scope, Send

from api.audit_middleware import AuditMiddleware, AuditRecorder
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
from api.pipeline import OCIPipeline, is_oci
from api.temporal import TemporalProbe
from api.write_guard import authenticated_writes
from core.manifests import ManifestRules
from core.pipeline import Hooks
from core.pulls import PullRecorder
from core.services.auth import AuthService, load_signing_keys
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


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def build_registry(settings: Settings) -> Registry:
    """Wire settings into services.

    The installation must be prepared (schema at head, a signing key, the admin
    account: ``cli.startup.prepare_installation``); this only reads it, so every API
    worker process can call it.
    """
    engines = create_engines(settings)
    metadata = SqlMetadata(engines)
    store = build_blob_store(settings)
    clock = SystemClock()
    projects = ProjectService(metadata, store)
    changes = ChangeRecorder(
        settings.control.gc_review_delay_seconds, settings.control.quota_warning_ratio, clock
    )
    keys = load_signing_keys(metadata)
    if not keys:
        raise RuntimeError("no token-signing key: run cli.startup.prepare_installation first")
    tokens = TokenService(
        keys,
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
            pulls=PullRecorder(
                SqlPullTimes(engines), settings.control.pull_time_granularity_seconds
            ),
            nowait=metadata if metadata.reads_nowait else None,
            rules=ManifestRules.from_pattern(settings.limits.nondistributable_urls),
        ),
        auth=(auth := AuthService(metadata, projects, tokens, settings.auth, clock)),
        identity=build_identity(settings, engines, projects, auth, clock),
        extras={"temporal_check": TemporalProbe(settings.temporal)},
    )


class MoorageApp(Litestar):
    """Litestar for ``/api/v1``, ``/auth`` and health; ``/v2`` enters through the pipeline.

    The pipeline (``api.pipeline``) runs every ``/v2`` request through the hook points and
    hands what its manifest fast path does not answer to Litestar's routing.
    """

    pipeline: OCIPipeline | None = None

    @property
    def shortcut(self) -> ManifestShortcuts | None:
        """The manifest fast path (``None`` when the app was built without it)."""
        return None if self.pipeline is None else self.pipeline.fast

    async def __call__(
        self,
        scope: Scope | LifeSpanScope,
        receive: Receive | LifeSpanReceive,
        send: Send | LifeSpanSend,
    ) -> None:
        pipeline = self.pipeline
        if pipeline is not None and is_oci(scope):
            await pipeline(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def framework(self, scope: Any, receive: Any, send: Any) -> None:
        """Litestar's own routing and middleware (the pipeline's full path)."""
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, *, shortcuts: bool = True, hooks: Hooks | None = None
) -> Litestar:
    """The whole HTTP application: OCI data plane, token service, management API, health.

    ``hooks`` are registered at the ``/v2`` pipeline's points (``core.pipeline``); the
    audit recorder always runs first at request end. ``shortcuts=False`` leaves out the
    manifest fast path (``api.manifest_shortcut``), so every request takes the full path;
    the answers, and what the hooks see, are the same either way.
    """
    registry = build_registry(settings)
    registry.hooks = (hooks or Hooks()).with_first_end(AuditRecorder(registry))
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
        guards=[authenticated_writes],
        middleware=[AuditMiddleware],
        on_shutdown=[partial(close_identity, registry)],
        state={"registry": registry},  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(title="Moorage", version="0.1.0", path="/api/v1/schema"),
        request_max_body_size=1024 * 1024,
        debug=False,
    )
    fast = ManifestShortcuts(registry) if shortcuts else None
    app.pipeline = OCIPipeline(registry, app.framework, fast)
    return app
