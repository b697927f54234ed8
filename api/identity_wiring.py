"""The identity, access-control and audit routes of the app and their shutdown step.

The services behind them are built by the composition root (``cli.composition``).
"""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from api.context import Registry
from api.controllers.audit import audit_log, project_audit_log
from api.controllers.members import MemberController
from api.controllers.oidc import oidc_callback, oidc_login
from api.controllers.personal_tokens import PersonalTokenController
from api.controllers.robots import ProjectRobotController, SystemRobotController
from api.controllers.trusted_issuers import TrustedIssuerController
from api.controllers.users import UserController

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
