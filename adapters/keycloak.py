"""Keycloak as the :class:`core.identity_ports.OidcProvider`.

Talks to Keycloak with ``python-keycloak`` as Moorage's own confidential client (token
introspection, admin reads of users and groups). Every call blocks; callers run it in a
worker thread. A Keycloak that cannot be reached means "not authenticated", never a
silent pass.
"""

from __future__ import annotations

from typing import Any

from keycloak import KeycloakAdmin, KeycloakError, KeycloakOpenID

from adapters.jwks import JwksKeys
from core.identity_records import OidcUser
from core.identity_settings import OidcSettings
from core.oidc import ExternalTokenError, JwtVerifier


class KeycloakProvider:
    """Keycloak, reached as Moorage's own confidential client (``oidc.client_id``)."""

    def __init__(self, settings: OidcSettings) -> None:
        if settings.issuer is None:
            raise ValueError("oidc.issuer is not set")
        self.settings = settings
        self.issuer = settings.issuer.rstrip("/")
        self.server_url, _, self.realm = self.issuer.rpartition("/realms/")
        secret = settings.client_secret.get_secret_value() if settings.client_secret else None
        self._secret = secret
        keys = JwksKeys(
            self.issuer, jwks_url=f"{self.issuer}/protocol/openid-connect/certs", discovery_url=None
        )
        self._verifier = JwtVerifier(self.issuer, settings.audience, keys)

    def _openid(self, client_id: str, secret: str | None = None) -> KeycloakOpenID:
        return KeycloakOpenID(
            server_url=self.server_url,
            realm_name=self.realm,
            client_id=client_id,
            client_secret_key=secret,
            timeout=10,
        )

    def user_of(self, claims: dict[str, Any]) -> OidcUser:
        groups = claims.get(self.settings.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        group_set = frozenset(str(g) for g in groups)
        username = str(claims.get(self.settings.username_claim) or claims["sub"])
        return OidcUser(
            username=username,
            subject=str(claims["sub"]),
            groups=group_set,
            is_admin=self.settings.admin_group in group_set,
        )

    def verify(self, token: str, *, check_active: bool) -> OidcUser | None:
        """The user an access token stands for, if valid (and still active, if asked).

        Consistency: with ``check_active`` (and ``oidc.check_active``) Keycloak is asked
        on every call, and the groups are the ones its introspection answer holds *now*,
        not the copy signed into the token: a user disabled in Keycloak or removed from a
        group loses the matching rights at once, not when the token (valid for the
        realm's access token lifespan) expires. The groups mapper must be added to
        token introspection (Keycloak's default); without it the user holds no groups.
        """
        try:
            claims = self._verifier.verify(token)
        except ExternalTokenError:
            return None
        if check_active and self.settings.check_active:
            live = self.introspect(token)
            if live is None or str(live.get("sub", claims["sub"])) != str(claims["sub"]):
                return None
            groups_claim = self.settings.groups_claim
            claims = {**claims, groups_claim: live.get(groups_claim) or []}
        return self.user_of(claims)

    def introspect(self, token: str) -> dict[str, Any] | None:
        """Keycloak's current view of ``token`` (its introspection answer).

        ``None`` once the user is disabled, the session ended, or Keycloak cannot be asked.
        """
        try:
            answer = self._openid(self.settings.client_id, self._secret).introspect(token)
        except KeycloakError:
            return None
        return dict(answer) if isinstance(answer, dict) and answer.get("active") is True else None

    def client_credentials(self, client_id: str, secret: str) -> OidcUser | None:
        """Log a service account in with its client id and secret."""
        try:
            answer = self._openid(client_id, secret).token(grant_type="client_credentials")
        except KeycloakError:
            return None
        return self.verify(str(answer.get("access_token", "")), check_active=False)

    def _admin(self) -> KeycloakAdmin:
        """The admin API as Moorage's own confidential client (its service account)."""
        return KeycloakAdmin(
            server_url=self.server_url,
            realm_name=self.realm,
            user_realm_name=self.realm,
            client_id=self.settings.client_id,
            client_secret_key=self._secret,
            timeout=10,
        )

    def group_exists(self, path: str) -> bool:
        """Whether the realm has a group at ``path`` (``/parent/child``).

        ``False`` when Keycloak cannot be asked.
        """
        try:
            group = self._admin().get_group_by_path(path)
        except KeycloakError:
            return False
        return isinstance(group, dict) and group.get("path") == path

    def current_user(self, username: str) -> OidcUser | None:
        """The user's live state from the admin API: ``None`` if gone or disabled."""
        try:
            admin = self._admin()
            found = admin.get_users({"username": username, "exact": True})
            user = next((u for u in found if u.get("username") == username), None)
            if user is None or not user.get("enabled", False):
                return None
            groups = frozenset(str(g["path"]) for g in admin.get_user_groups(user["id"]))
        except KeycloakError:
            return None
        return OidcUser(username, str(user["id"]), groups, self.settings.admin_group in groups)

    def authorization_url(self, redirect_uri: str, state: str, nonce: str, challenge: str) -> str:
        return str(
            self._openid(self.settings.web_client_id).auth_url(
                redirect_uri=redirect_uri,
                scope="openid",
                state=state,
                nonce=nonce,
                code_challenge=challenge,
                code_challenge_method="S256",
            )
        )

    def exchange_code(self, code: str, redirect_uri: str, verifier: str) -> OidcUser | None:
        """Redeem an authorization code (with its PKCE verifier) for the user's identity."""
        try:
            answer = self._openid(self.settings.web_client_id).token(
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=verifier,
            )
        except KeycloakError:
            return None
        return self.verify(str(answer.get("access_token", "")), check_active=False)
