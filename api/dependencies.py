"""What management API handlers receive by parameter name (Litestar dependency injection).

Registered once for the whole app (``create_app`` passes :data:`DEPENDENCIES`); a
handler names the parameter and gets the value, instead of reaching into ``app.state``:

- ``registry`` (:class:`api.context.Registry`): the app's services, from ``app.state``.
- ``identity_services`` (:class:`IdentityServices`): accounts, access control, audit.
- ``caller`` (:class:`core.access.Identity`): who is calling. Anonymous without
  credentials (guard the handler with ``api.guards.signed_in`` to refuse those with
  ``401``); bad credentials ``401``, throttled ``429``. Credentials are checked once per
  request, whichever of guards and handler asks first.
- ``page`` (:class:`api.pagination.PageParams`): the ``limit`` and ``last`` query
  parameters of a list, checked against ``settings.limits.page_max``.
- ``repository_access``, ``project_policies``, ``gc_runs``, ``run_control``: the
  services of the repositories, policies and run controllers.
- ``backups``, ``backup_runs``: the backup service and its workflows' starter.

Adopting it in a new controller: declare the parameter with Litestar's explicit marker,
``caller: NamedDependency[Identity]`` (``from litestar.di import NamedDependency``; an
unmarked dependency parameter is deprecated and the test suite turns that warning into an
error), and, when a new service is needed, add its provider here (one line in
:data:`DEPENDENCIES`). The names above are taken app-wide: do not reuse them for query or
path parameters. Providers only read; they never start work of their own.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from litestar import Request
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from api.backup_runs import BackupRuns
from api.context import Registry, identity_of, registry_of
from api.pagination import PageParams
from api.principal import api_caller
from api.run_control import RunControl, run_control_of
from core.access import Identity
from core.backup_service import BackupService
from core.services.gc_runs import GcRunService
from core.services.identity_services import IdentityServices
from core.services.policies import PolicyService, ProjectPolicies
from core.services.repository_access import RepositoryAccess


def provide_registry(request: Request[Any, Any, Any]) -> Registry:
    """The registry ``create_app`` keeps in ``app.state``."""
    return registry_of(request)


def provide_identity_services(registry: NamedDependency[Registry]) -> IdentityServices:
    return identity_of(registry)


async def provide_caller(
    request: Request[Any, Any, Any], registry: NamedDependency[Registry]
) -> Identity:
    return await api_caller(request, registry)


def provide_page(
    registry: NamedDependency[Registry],
    limit: Annotated[
        int | None, QueryParameter(description="Page size, 1 to the server's page maximum.")
    ] = None,
    last: Annotated[
        str | None, QueryParameter(description="Cursor: the `next` of the previous page.")
    ] = None,
) -> PageParams:
    return PageParams.of(limit, last, registry.settings.limits.page_max)


def provide_repository_access(registry: NamedDependency[Registry]) -> RepositoryAccess:
    identity = identity_of(registry)
    return RepositoryAccess(
        identity.access, identity.store, registry.repositories, registry.manifests
    )


def provide_gc_runs(registry: NamedDependency[Registry]) -> GcRunService:
    return GcRunService(registry.metadata)


def provide_project_policies(
    registry: NamedDependency[Registry], gc_runs: NamedDependency[GcRunService]
) -> ProjectPolicies:
    return ProjectPolicies(PolicyService(registry.metadata), gc_runs, identity_of(registry).access)


def provide_run_control(registry: NamedDependency[Registry]) -> RunControl:
    return run_control_of(registry)


def provide_backups(registry: NamedDependency[Registry]) -> BackupService:
    return cast("BackupService", registry.extras["backups"])


def provide_backup_runs(registry: NamedDependency[Registry]) -> BackupRuns:
    return cast("BackupRuns", registry.extras["backup_runs"])


#: Every provider, by the parameter name handlers use.
DEPENDENCIES: dict[str, Provide] = {
    "registry": Provide(provide_registry, sync_to_thread=False),
    "identity_services": Provide(provide_identity_services, sync_to_thread=False),
    "caller": Provide(provide_caller),
    "page": Provide(provide_page, sync_to_thread=False),
    "repository_access": Provide(provide_repository_access, sync_to_thread=False),
    "gc_runs": Provide(provide_gc_runs, sync_to_thread=False),
    "project_policies": Provide(provide_project_policies, sync_to_thread=False),
    "run_control": Provide(provide_run_control, sync_to_thread=False),
    "backups": Provide(provide_backups, sync_to_thread=False),
    "backup_runs": Provide(provide_backup_runs, sync_to_thread=False),
}
