"""SQL of registry endpoints (``core.endpoints.EndpointStore``)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.endpoints import CredentialKind, EndpointRecord, EndpointType
from storage.db.endpoint_tables import RegistryEndpoint
from storage.db.engine import Engines
from storage.db.repos.base import table_of

_ENDPOINT = table_of(RegistryEndpoint)


def _record(row: Any) -> EndpointRecord:
    return EndpointRecord(
        id=row.id,
        name=row.name,
        url=row.url,
        type=EndpointType(row.type),
        credential=CredentialKind(row.credential),
        username=row.username,
        sealed_secret=row.sealed_secret,
        ca_bundle=row.ca_bundle,
        insecure=bool(row.insecure),
        realm_hosts=tuple(json.loads(row.realm_hosts or "[]")),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _values(record: EndpointRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "url": record.url,
        "type": record.type.value,
        "credential": record.credential.value,
        "username": record.username,
        "sealed_secret": record.sealed_secret,
        "ca_bundle": record.ca_bundle,
        "insecure": record.insecure,
        "realm_hosts": json.dumps(list(record.realm_hosts)),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


class SqlEndpoints:
    """Registry endpoints on the metadata database, one short transaction per call."""

    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    def add(self, record: EndpointRecord) -> EndpointRecord | None:
        try:
            with self._engines.writing() as connection, connection.begin():
                result = connection.execute(insert(_ENDPOINT).values(**_values(record)))
                new_id = result.inserted_primary_key
        except IntegrityError:
            return None
        return self.by_id(int(new_id[0])) if new_id else self.get(record.name)

    def get(self, name: str) -> EndpointRecord | None:
        with self._engines.read.connect() as connection:
            row = connection.execute(select(_ENDPOINT).where(_ENDPOINT.c.name == name)).first()
        return None if row is None else _record(row)

    def by_id(self, endpoint_id: int) -> EndpointRecord | None:
        with self._engines.read.connect() as connection:
            row = connection.execute(select(_ENDPOINT).where(_ENDPOINT.c.id == endpoint_id)).first()
        return None if row is None else _record(row)

    def list(self) -> list[EndpointRecord]:
        with self._engines.read.connect() as connection:
            rows = connection.execute(select(_ENDPOINT).order_by(_ENDPOINT.c.name)).all()
        return [_record(row) for row in rows]

    def replace(self, record: EndpointRecord) -> bool:
        values = _values(record)
        del values["created_at"]
        with self._engines.writing() as connection, connection.begin():
            result = connection.execute(
                update(_ENDPOINT).where(_ENDPOINT.c.id == record.id).values(**values)
            )
            return bool(result.rowcount)

    def delete(self, name: str) -> bool:
        with self._engines.writing() as connection, connection.begin():
            result = connection.execute(delete(_ENDPOINT).where(_ENDPOINT.c.name == name))
            return bool(result.rowcount)
