"""What the request handlers work with: the services of one running app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import Request

from core.pipeline import Hooks
from core.ports import BlobStore, Metadata
from core.services.auth import AuthService
from core.services.identity_services import IdentityServices
from core.services.manifests import ManifestService
from core.services.projects import ProjectService
from core.services.repositories import RepositoryService
from core.services.uploads import UploadService
from core.settings import Settings


@dataclass
class Registry:
    """The services an app instance serves; built once per app by the composition root.

    ``cli.composition.Composition.registry`` builds it (``create_app`` asks for it);
    ``build_app`` sets its ``hooks``.
    """

    settings: Settings
    metadata: Metadata
    store: BlobStore
    projects: ProjectService
    repositories: RepositoryService
    uploads: UploadService
    manifests: ManifestService
    auth: AuthService
    extras: dict[str, Any] = field(default_factory=dict)
    #: Identity, access control and audit (always set by the composition root).
    identity: IdentityServices | None = None
    #: What every ``/v2`` request passes (``core.pipeline``); set by ``create_app``.
    hooks: Hooks = field(default_factory=Hooks)


def registry_of(request: Request[Any, Any, Any]) -> Registry:
    registry: Registry = request.app.state["registry"]
    return registry


def identity_of(registry: Registry) -> IdentityServices:
    """The registry's identity services (built by the composition root)."""
    if registry.identity is None:
        raise RuntimeError("the registry was built without identity services")
    return registry.identity
