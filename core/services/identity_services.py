"""The identity, access-control and audit services of one running app."""

from __future__ import annotations

from dataclasses import dataclass

from core.identity_ports import IdentityStore
from core.login_limit import LoginLimiter
from core.services.access_control import AccessControl
from core.services.audit_log import AuditLog
from core.services.authenticator import Authenticator
from core.services.browser_login import BrowserLogin
from core.services.members import MemberService
from core.services.personal_tokens import PersonalTokenService
from core.services.project_access import ProjectAccess
from core.services.robots import RobotService
from core.services.trusted_issuers import TrustedIssuers
from core.services.users import UserService


@dataclass
class IdentityServices:
    store: IdentityStore
    authenticator: Authenticator
    access: AccessControl
    users: UserService
    members: MemberService
    projects: ProjectAccess
    robots: RobotService
    tokens: PersonalTokenService
    issuers: TrustedIssuers
    audit: AuditLog
    limiter: LoginLimiter
    browser_login: BrowserLogin
