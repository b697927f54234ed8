"""Builds the identity, access-control and audit services on the SQL stores and adapters."""

from __future__ import annotations

from datetime import timedelta

from litestar.types import ControllerRouterHandler

from adapters.jwks import JwksKeys
from adapters.keycloak import KeycloakProvider
from api.context import Registry
from api.controllers.audit import audit_log, project_audit_log
from api.controllers.members import MemberController
from api.controllers.oidc import oidc_callback, oidc_login
from api.controllers.personal_tokens import PersonalTokenController
from api.controllers.robots import ProjectRobotController, SystemRobotController
from api.controllers.trusted_issuers import TrustedIssuerController
from api.controllers.users import UserController
from core.login_limit import LoginLimiter, LoginPolicy
from core.ports import Clock
from core.services.access_control import AccessControl
from core.services.audit_log import AuditLog
from core.services.auth import AuthService
from core.services.authenticator import Authenticator
from core.services.browser_login import BrowserLogin
from core.services.identity_services import IdentityServices
from core.services.members import KnownIdentities, MemberService
from core.services.personal_tokens import PersonalTokenService
from core.services.project_access import ProjectAccess
from core.services.projects import ProjectService
from core.services.robots import RobotService
from core.services.trusted_issuers import TrustedIssuers
from core.services.users import UserService
from core.settings import Settings
from storage.db.audit import SqlAuditStore
from storage.db.engine import Engines
from storage.db.identity import SqlIdentityStore
from storage.db.login_attempts import SqlLoginAttemptStore
from storage.db.metadata import SqlMetadata


def build_identity(
    settings: Settings, engines: Engines, projects: ProjectService, local: AuthService, clock: Clock
) -> IdentityServices:
    store = SqlIdentityStore(SqlMetadata(engines))
    access = AccessControl(store, projects, settings.oidc.group_prefix)
    issuers = TrustedIssuers(store, JwksKeys)
    keycloak = KeycloakProvider(settings.oidc) if settings.oidc.issuer else None
    policy = LoginPolicy(
        settings.login_limit.max_failures, timedelta(seconds=settings.login_limit.window_seconds)
    )
    limiter = LoginLimiter(SqlLoginAttemptStore(engines), policy, clock)
    tokens = PersonalTokenService(store, clock)
    return IdentityServices(
        store=store,
        authenticator=Authenticator(local, store, issuers, keycloak, limiter, clock),
        access=access,
        users=UserService(store, local, limiter),
        members=MemberService(store, access, KnownIdentities(local, keycloak)),
        projects=ProjectAccess(projects, access, store),
        robots=RobotService(store, access),
        tokens=tokens,
        issuers=issuers,
        audit=AuditLog(SqlAuditStore(engines), settings.audit),
        limiter=limiter,
        browser_login=BrowserLogin(
            keycloak, store, tokens, clock, token_hours=settings.oidc.browser_token_hours
        ),
    )


IDENTITY_ROUTES: list[ControllerRouterHandler] = [
    UserController,
    PersonalTokenController,
    MemberController,
    ProjectRobotController,
    SystemRobotController,
    TrustedIssuerController,
    audit_log,
    project_audit_log,
    oidc_login,
    oidc_callback,
]


def close_identity(registry: Registry) -> None:
    """Flush the audit log at shutdown."""
    if registry.identity is not None:
        registry.identity.audit.close()
