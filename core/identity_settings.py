"""Settings of identity providers, login protection and the audit log."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class OidcSettings(BaseModel):
    """The OIDC provider (Keycloak) whose users, groups and service accounts Moorage trusts."""

    #: Issuer URL, e.g. ``http://127.0.0.1:8080/realms/moorage``; unset disables OIDC.
    issuer: str | None = None
    #: The audience Moorage requires in access tokens (an audience mapper adds it).
    audience: str = "moorage"
    #: Moorage's own confidential client: token introspection and user lookups.
    client_id: str = "moorage"
    client_secret: SecretStr | None = None
    #: The public client of browser logins (authorization code + PKCE).
    web_client_id: str = "moorage-web"
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    #: Members of this group are system administrators.
    admin_group: str = "/moorage-admins"
    #: Groups ``<prefix><project>/<role>`` grant ``role`` in ``project``.
    group_prefix: str = "/moorage/"
    #: Check at every token issue that the user is still enabled (introspection).
    check_active: bool = True
    #: Lifetime of the personal access token a browser login issues.
    browser_token_hours: int = Field(default=12, ge=1, le=24 * 30)


class LoginLimitSettings(BaseModel):
    """Failed-login throttling, per username and client address (and per username at 5x)."""

    max_failures: int = Field(default=10, ge=1)
    window_seconds: int = Field(default=60, ge=1)


class AuditSettings(BaseModel):
    enabled: bool = True
    #: Fraction of successful pulls recorded (0 disables pull events, 1 keeps all).
    pull_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    #: ``host:port`` of a syslog receiver (UDP); unset: no forwarding.
    syslog_address: str | None = None
    #: Events buffered before the writer thread commits them in one transaction.
    batch_size: int = Field(default=200, ge=1)
    flush_interval_seconds: float = Field(default=0.2, gt=0)
