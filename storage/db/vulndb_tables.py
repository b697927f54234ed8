"""Tables of the offline vulnerability data (OSV records) and its import state.

``vuln_record`` holds each record once (its JSON document); ``vuln_affected`` one row
per ``affected[]`` entry, indexed by (ecosystem, name) for matching; ``vuln_source``
what each ecosystem's last import saw, for incremental updates.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel


class VulnRecord(SQLModel, table=True):
    __tablename__ = "vuln_record"
    id: str = Field(primary_key=True, max_length=128)
    modified: datetime
    #: The ecosystem export the record was imported from.
    source: str = Field(max_length=64, index=True)
    #: JSON list of aliases and upstream ids (CVE-...), for allowlists and joins.
    aliases: str
    #: The record's OSV JSON document.
    document: str


class VulnAffected(SQLModel, table=True):
    __tablename__ = "vuln_affected"
    __table_args__ = (Index("ix_vuln_affected_lookup", "ecosystem", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(max_length=128, index=True)
    #: The full ecosystem string (``Debian:12``) and its base (``Debian``).
    ecosystem: str = Field(max_length=128)
    ecosystem_base: str = Field(max_length=64)
    #: The package name as queried (PyPI names PEP 503-normalised).
    name: str = Field(max_length=512)
    #: JSON of the ``affected[]`` entry.
    affected: str


class VulnSource(SQLModel, table=True):
    __tablename__ = "vuln_source"
    ecosystem: str = Field(primary_key=True, max_length=64)
    location: str = Field(max_length=2048)
    #: Newest ``modified`` time of the records imported (incremental updates start there).
    newest_modified: datetime | None = None
    imported_at: datetime | None = None
    checked_at: datetime | None = None
    records: int = 0
