"""Local accounts.

Local accounts: administrators create, disable, reset and delete; users change their
own password (with the current one). New accounts are always plain users.
"""

from __future__ import annotations

from core.access import Identity, IdentityKind
from core.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from core.identity_ports import IdentityStore
from core.identity_records import LocalUser
from core.names import validate_project_name
from core.passwords import hash_password, verify_password
from core.services.auth import AuthService

MIN_PASSWORD, MAX_PASSWORD = 8, 256


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD or len(password) > MAX_PASSWORD:
        raise InvalidInputError(f"passwords are {MIN_PASSWORD} to 256 characters long")


class UserService:
    def __init__(self, store: IdentityStore, local: AuthService) -> None:
        self._store, self._local = store, local

    @staticmethod
    def _require_admin(caller: Identity) -> None:
        if not caller.is_admin:
            raise ForbiddenError("system administrator rights are required")

    def create(self, caller: Identity, username: str, password: str) -> LocalUser:
        self._require_admin(caller)
        validate_project_name(username)  # NOTE: the same safe alphabet as project names
        _check_password(password)
        if not self._store.add_user(username, hash_password(password)):
            raise ConflictError(f"user {username!r} already exists")
        return LocalUser(username, is_admin=False, disabled=False)

    def list(self, caller: Identity, last: str | None, limit: int) -> list[LocalUser]:
        self._require_admin(caller)
        return self._store.users(last, limit)

    def update(
        self,
        caller: Identity,
        username: str,
        *,
        password: str | None,
        current_password: str | None,
        disabled: bool | None,
    ) -> None:
        """Admins reset passwords and (dis)able accounts; a user changes only its own password."""
        own = caller.kind is IdentityKind.USER and caller.subject == username
        if not caller.is_admin:
            if not own or disabled is not None:
                raise NotFoundError(f"user {username!r} not found")
            user = self._local.user(username)
            stored = user.password_hash if user else ""
            if current_password is None or not verify_password(current_password, stored):
                raise ForbiddenError("the current password is wrong")
        if password is not None:
            _check_password(password)
        if caller.is_admin and own and disabled:
            raise ConflictError("administrators cannot disable themselves")
        hashed = hash_password(password) if password is not None else None
        if not self._store.update_user(username, password_hash=hashed, disabled=disabled):
            raise NotFoundError(f"user {username!r} not found")

    def delete(self, caller: Identity, username: str) -> None:
        self._require_admin(caller)
        if caller.subject == username:
            raise ConflictError("administrators cannot delete themselves")
        if not self._store.delete_user(username):
            raise NotFoundError(f"user {username!r} not found")
