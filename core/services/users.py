"""Local accounts.

Local accounts: administrators create, disable, reset, describe (email, full name) and
delete; users read their own account and change their own password (with the current
one, checked like a login: failures count towards the login limit). New accounts are
always plain users. Refusals name the request field they concern.
"""

from __future__ import annotations

import re

from core.access import Identity, IdentityKind
from core.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    RegistryError,
)
from core.identity_ports import IdentityStore
from core.identity_records import LocalUser, UserProfile
from core.login_limit import LoginLimiter
from core.names import validate_project_name
from core.passwords import hash_password, verify_password
from core.services.access_control import require_system_admin
from core.services.auth import AuthService

MIN_PASSWORD, MAX_PASSWORD = 8, 256
EMAIL_MAX, FULL_NAME_MAX = 254, 255
# NOTE: deliberately loose (one @, a dot in the domain, no spaces): mail servers decide.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_password(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD or len(password) > MAX_PASSWORD:
        raise InvalidInputError(
            f"passwords are {MIN_PASSWORD} to {MAX_PASSWORD} characters long", field=field
        )


def _check_username(username: str) -> None:
    try:
        validate_project_name(username)  # NOTE: the same safe alphabet as project names
    except RegistryError as exc:
        raise InvalidInputError(
            "usernames are lower-case letters and digits with single . _ - between them, "
            "at most 63 characters",
            field="username",
        ) from exc


def check_profile(profile: UserProfile) -> UserProfile:
    """``profile`` if its values are acceptable; else ``InvalidInputError`` naming the field."""
    email = profile.get("email")
    if email is not None and (len(email) > EMAIL_MAX or not _EMAIL.match(email)):
        raise InvalidInputError(
            f"an email address is local-part@domain, at most {EMAIL_MAX} characters",
            field="email",
        )
    full_name = profile.get("full_name")
    if full_name is not None and (
        not full_name.strip() or len(full_name) > FULL_NAME_MAX or _CONTROL.search(full_name)
    ):
        raise InvalidInputError(
            f"a full name is 1 to {FULL_NAME_MAX} printable characters", field="full_name"
        )
    return profile


class UserService:
    def __init__(
        self, store: IdentityStore, local: AuthService, limiter: LoginLimiter | None = None
    ) -> None:
        self._store, self._local, self._limiter = store, local, limiter

    @staticmethod
    def _require_admin(caller: Identity) -> None:
        require_system_admin(caller)

    def create(
        self, caller: Identity, username: str, password: str, profile: UserProfile | None = None
    ) -> LocalUser:
        self._require_admin(caller)
        _check_username(username)
        _check_password(password)
        profile = check_profile(profile or {})
        if not self._store.add_user(username, hash_password(password), profile):
            raise ConflictError(f"user {username!r} already exists")
        return LocalUser(
            username,
            is_admin=False,
            disabled=False,
            email=profile.get("email"),
            full_name=profile.get("full_name"),
        )

    def list(self, caller: Identity, last: str | None, limit: int) -> list[LocalUser]:
        self._require_admin(caller)
        return self._store.users(last, limit)

    def get(self, caller: Identity, username: str) -> LocalUser:
        """An account as administrators (any) or its own user (only itself) may read it."""
        own = caller.kind is IdentityKind.USER and caller.subject == username
        user = self._store.user(username) if caller.is_admin or own else None
        if user is None:
            raise NotFoundError(f"user {username!r} not found")
        return user

    def update(
        self,
        caller: Identity,
        username: str,
        *,
        password: str | None,
        current_password: str | None,
        disabled: bool | None,
        profile: UserProfile | None = None,
    ) -> None:
        """Admins reset passwords, (dis)able and describe accounts.

        A user changes only its own password, with the current one (as
        :meth:`change_own_password` does, under the login limit).
        """
        own = caller.kind is IdentityKind.USER and caller.subject == username
        if not caller.is_admin:
            if not own or disabled is not None:
                raise NotFoundError(f"user {username!r} not found")
            if profile:
                raise ForbiddenError(
                    "administrators set email and full name", field=next(iter(profile))
                )
            if password is None:
                raise InvalidInputError("name the new password", field="password")
            self.change_own_password(caller, current_password or "", password, field="password")
            return
        if password is not None:
            _check_password(password)
        if caller.is_admin and own and disabled:
            raise ConflictError("administrators cannot disable themselves")
        hashed = hash_password(password) if password is not None else None
        changed = self._store.update_user(
            username, password_hash=hashed, disabled=disabled, profile=check_profile(profile or {})
        )
        if not changed:
            raise NotFoundError(f"user {username!r} not found")

    def change_own_password(
        self, caller: Identity, current: str, new_password: str, field: str = "new_password"
    ) -> None:
        """Set the caller's own password, given its current one.

        Wrong current passwords are failed logins: they count under the login limit's
        policy on a key of their own (``password-change:<user>``) that the caller's
        successful logins do not clear, and once it is locked every attempt answers
        ``429`` until the window ends, the right password included.
        """
        if caller.kind is not IdentityKind.USER or caller.anonymous:
            raise ForbiddenError("only local accounts have a password here")
        key = f"password-change:{caller.subject}"
        if self._limiter is not None:
            self._limiter.check(key)
        user = self._local.user(caller.subject)
        if user is None or not verify_password(current, user.password_hash):
            if self._limiter is not None:
                self._limiter.failed(key)
            raise ForbiddenError("the current password is wrong", field="current_password")
        _check_password(new_password, field=field)
        if not self._store.update_user(caller.subject, password_hash=hash_password(new_password)):
            raise NotFoundError(f"user {caller.subject!r} not found")
        if self._limiter is not None:
            self._limiter.succeeded(key)

    def delete(self, caller: Identity, username: str) -> None:
        self._require_admin(caller)
        if caller.subject == username:
            raise ConflictError("administrators cannot delete themselves")
        if not self._store.delete_user(username):
            raise NotFoundError(f"user {username!r} not found")
