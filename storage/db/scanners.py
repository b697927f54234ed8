"""SQL of scanner registrations (``core.scanners.ScannerStore``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.scanners import Scanner, ScannerAuth
from storage.db.engine import Engines
from storage.db.repos.base import table_of
from storage.db.scanner_tables import ScannerRegistrationRow

_SCANNER = table_of(ScannerRegistrationRow)


def _record(row: Any) -> Scanner:
    return Scanner(
        id=row.id,
        name=row.name,
        description=row.description,
        url=row.url,
        auth=ScannerAuth(row.auth),
        sealed_credential=row.sealed_credential,
        skip_tls_verify=bool(row.skip_tls_verify),
        disabled=bool(row.disabled),
        is_default=bool(row.is_default),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _values(record: Scanner) -> dict[str, Any]:
    return {
        "name": record.name,
        "description": record.description,
        "url": record.url,
        "auth": record.auth.value,
        "sealed_credential": record.sealed_credential,
        "skip_tls_verify": record.skip_tls_verify,
        "disabled": record.disabled,
        "is_default": record.is_default,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


def _clear_default(connection: Connection, keep: str | None) -> None:
    query = update(_SCANNER).where(_SCANNER.c.is_default.is_(True))
    if keep is not None:
        query = query.where(_SCANNER.c.name != keep)
    connection.execute(query.values(is_default=False))


class SqlScanners:
    """Scanner registrations on the metadata database, one short transaction per call."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    def add(self, record: Scanner) -> Scanner | None:
        try:
            with self._engines.writing() as connection, connection.begin():
                if record.is_default:
                    _clear_default(connection, None)
                connection.execute(insert(_SCANNER).values(**_values(record)))
        except IntegrityError:
            return None
        return self.get(record.name)

    def get(self, name: str) -> Scanner | None:
        with self._engines.read.connect() as connection:
            row = connection.execute(select(_SCANNER).where(_SCANNER.c.name == name)).first()
        return None if row is None else _record(row)

    def list(self) -> list[Scanner]:
        with self._engines.read.connect() as connection:
            rows = connection.execute(select(_SCANNER).order_by(_SCANNER.c.name)).all()
        return [_record(row) for row in rows]

    def replace(self, record: Scanner) -> bool:
        values = _values(record)
        del values["created_at"]
        with self._engines.writing() as connection, connection.begin():
            if record.is_default:
                _clear_default(connection, record.name)
            result = connection.execute(
                update(_SCANNER).where(_SCANNER.c.id == record.id).values(**values)
            )
            return bool(result.rowcount)

    def delete(self, name: str) -> bool:
        with self._engines.writing() as connection, connection.begin():
            result = connection.execute(delete(_SCANNER).where(_SCANNER.c.name == name))
            return bool(result.rowcount)

    def set_default(self, name: str | None) -> bool:
        with self._engines.writing() as connection, connection.begin():
            _clear_default(connection, name)
            if name is None:
                return True
            result = connection.execute(
                update(_SCANNER).where(_SCANNER.c.name == name).values(is_default=True)
            )
            return bool(result.rowcount)
