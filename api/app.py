"""The Litestar application factory.

The services the app serves come from the composition root (``cli.composition``):
:func:`create_app` builds one from the settings, :func:`build_app` takes a registry built
by a root the caller holds (``moorage dev`` shares its root with the worker).
"""

from __future__ import annotations

from functools import partial
from typing import Any, TypedDict, Unpack, cast

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.types import LifeSpanReceive, LifeSpanScope, LifeSpanSend, Receive, Scope, Send

from api.audit_middleware import AuditMiddleware, AuditRecorder
from api.context import Registry
from api.controllers.backups import BackupController
from api.controllers.gc import GcController
from api.controllers.health import healthz, readyz
from api.controllers.metrics import metrics
from api.controllers.oci import catalog, dispatch, ping
from api.controllers.policies import PolicyController
from api.controllers.preheat import (
    P2pInstanceController,
    PreheatExecutionController,
    PreheatPolicyController,
)
from api.controllers.projects import ProjectController
from api.controllers.promotion_rules import PromotionRuleController
from api.controllers.promotions import (
    PromotionController,
    SigningKeyController,
    SigningKeysController,
)
from api.controllers.registries import ProjectProxyController, RegistryController
from api.controllers.replication import (
    ReplicationExecutionController,
    ReplicationPolicyController,
)
from api.controllers.repositories import RepositoryController
from api.controllers.scanner_adapter import ScannerAdapterController
from api.controllers.scanners import ProjectScannerController, ScannerController
from api.controllers.scans import ProjectScanController, SystemScanController
from api.controllers.systeminfo import systeminfo
from api.controllers.tokens import jwks, oauth_token, token
from api.controllers.trust import TrustController
from api.controllers.webhooks import ProjectWebhookController, SystemWebhookController
from api.dependencies import DEPENDENCIES
from api.download_wiring import close_downloads, start_downloads
from api.errors import EXCEPTION_HANDLERS
from api.identity_wiring import IDENTITY_ROUTES, close_identity
from api.manifest_shortcut import ManifestShortcuts
from api.observe import AccessLines, ObserveMiddleware, build_observer
from api.pipeline import OCIPipeline, is_oci
from api.proxy_wiring import close_proxy, start_proxy, with_proxy
from api.receive_limits import bounded_receive, has_body
from api.scan_wiring import start_scan_gate, stop_scan_gate, with_scan_hooks
from api.trust_wiring import with_trust_hooks
from api.webhook_wiring import with_webhook_hooks
from api.write_guard import authenticated_writes
from cli.composition import compose
from core.pipeline import Hooks
from core.request_spans import RequestSpanSink
from core.settings import Settings
from core.version import moorage_version


def build_registry(settings: Settings) -> Registry:
    """The registry of ``settings``, built by a new composition root (``cli.composition``).

    The installation must be prepared (``cli.startup.prepare_installation``).
    """
    return compose(settings).registry()


class MoorageApp(Litestar):
    """Litestar for ``/api/v1``, ``/auth`` and health; ``/v2`` enters through the pipeline.

    The pipeline (``api.pipeline``) runs every ``/v2`` request through the hook points and
    hands what its manifest fast path does not answer to Litestar's routing.
    """

    pipeline: OCIPipeline | None = None
    #: Whether :func:`build_app` bound a registry to this app (it serves one, once).
    bound: bool = False
    #: Longest wait for the next piece of a request body (``api.receive_limits``).
    body_timeout: float | None = None

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
        if self.body_timeout is not None and has_body(scope):
            receive = bounded_receive(cast("Receive", receive), self.body_timeout)
        pipeline = self.pipeline
        if pipeline is not None and is_oci(scope):
            await pipeline(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def framework(self, scope: Any, receive: Any, send: Any) -> None:
        """Litestar's own routing and middleware (the pipeline's full path)."""
        await super().__call__(scope, receive, send)


class AppOptions(TypedDict, total=False):
    """The keyword arguments of :func:`create_app`, as :func:`build_app` takes them."""

    shortcuts: bool
    hooks: Hooks | None
    access_lines: AccessLines | None
    request_spans: RequestSpanSink | None
    framework: MoorageApp | None


def create_app(settings: Settings, **options: Unpack[AppOptions]) -> Litestar:
    """The whole HTTP application of ``settings``, on a composition root of its own.

    What an API server worker process serves (``cli.asgi``); the composition lives as long
    as the process. See :func:`build_app` for the keyword arguments.
    """
    # NOTE: a bound framework is refused before a registry is composed for it
    options["framework"] = _unbound(options.get("framework"))
    return build_app(build_registry(settings), **options)


def build_framework() -> MoorageApp:
    """The app's routes, handlers, guards and middleware, bound to no registry yet.

    Nothing in it depends on the settings or the installation. Building it (Litestar
    registering about 300 route handlers: their signatures, type hints and parameter
    models) is most of the CPU a server worker spends building its app, so a process that
    forks the server's workers builds it once before forking (``cli.asgi``), and each
    worker binds its own registry to its copy with :func:`build_app`. A framework can be
    bound once: :func:`build_app` refuses one that already serves a registry.
    """
    return MoorageApp(
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
            BackupController,
            PolicyController,
            RepositoryController,
            RegistryController,
            ProjectProxyController,
            ReplicationPolicyController,
            ReplicationExecutionController,
            ProjectWebhookController,
            SystemWebhookController,
            TrustController,
            ProjectScanController,
            SystemScanController,
            ScannerAdapterController,
            ScannerController,
            ProjectScannerController,
            PromotionController,
            PromotionRuleController,
            SigningKeyController,
            SigningKeysController,
            P2pInstanceController,
            PreheatPolicyController,
            PreheatExecutionController,
            healthz,
            readyz,
            systeminfo,
            metrics,
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        guards=[authenticated_writes],
        dependencies=DEPENDENCIES,
        middleware=[AuditMiddleware, ObserveMiddleware],
        openapi_config=OpenAPIConfig(
            title="Moorage", version=moorage_version(), path="/api/v1/schema"
        ),
        request_max_body_size=1024 * 1024,
        debug=False,
        logging_config=None,  # NOTE: the process configured logging (``cli.logs``)
    )


def _unbound(framework: MoorageApp | None) -> MoorageApp:
    """``framework`` if it serves no registry yet (``None``: a new one); else ``ValueError``."""
    if framework is None:
        return build_framework()
    if framework.bound:
        raise ValueError("this framework already serves a registry; build a new one")
    return framework


def build_app(
    registry: Registry,
    *,
    shortcuts: bool = True,
    hooks: Hooks | None = None,
    access_lines: AccessLines | None = None,
    request_spans: RequestSpanSink | None = None,
    framework: MoorageApp | None = None,
) -> Litestar:
    """The whole HTTP application: OCI data plane, token service, management API, health.

    ``registry`` comes from the composition root (``cli.composition.Composition.registry``).
    ``hooks`` are registered at the ``/v2`` pipeline's points (``core.pipeline``); the
    audit recorder always runs first at request end. ``shortcuts=False`` leaves out the
    manifest fast path (``api.manifest_shortcut``), so every request takes the full path;
    the answers, and what the hooks see, are the same either way. ``access_lines`` writes
    the access log when it is on (default: through :mod:`logging`; ``cli.access_lines``).
    ``request_spans`` takes the sampled requests' spans when tracing is on (``cli.tracing``;
    without one, requests are not traced). ``framework`` is one :func:`build_framework`
    built earlier and not bound yet (default: a new one).
    """
    app = _unbound(framework)
    app.bound = True
    observer = build_observer(registry.settings.observability, access_lines, request_spans)
    if observer.metrics is not None:
        observer.metrics.upload_hash_resumable.set(1 if registry.uploads.hashes.resumable else 0)
        registry.uploads.hashes.measure(observer.metrics)
    proxied = with_proxy(registry, hooks or Hooks())
    trusted = with_trust_hooks(registry, proxied)
    scanned = with_scan_hooks(registry, with_webhook_hooks(registry, trusted))
    observed = observer.around(scanned)
    registry.hooks = observed.with_first_end(AuditRecorder(registry))
    app.state["registry"] = registry
    app.state["observer"] = observer
    app.on_startup.extend(
        [
            partial(start_proxy, registry),
            partial(start_downloads, registry),
            partial(start_scan_gate, registry),
        ]
    )
    app.on_shutdown.extend(
        [
            partial(close_identity, registry),
            partial(close_proxy, registry),
            partial(close_downloads, registry),
            partial(stop_scan_gate, registry),
            registry.manifests.close_reads,
            observer.close,
        ]
    )
    fast = ManifestShortcuts(registry) if shortcuts else None
    app.pipeline = OCIPipeline(registry, app.framework, fast)
    app.body_timeout = registry.settings.server.body_timeout_seconds
    return app
