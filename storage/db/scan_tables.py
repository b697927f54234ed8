"""Tables of image scanning: package inventories, reports, allowlists and scan policies.

``scan_inventory`` keeps what the analyzer found per (project, image manifest digest), so
a re-match after a vulnerability data update reads no layer. ``scan_report`` holds the
latest report per (project, artifact digest). Every row hangs off its project and goes
with it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel


class ScanInventoryRow(SQLModel, table=True):
    __tablename__ = "scan_inventory"
    __table_args__ = (UniqueConstraint("project_id", "digest"),)
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE")
    digest: str = Field(max_length=256)
    platform: str | None = Field(default=None, max_length=128)
    #: JSON of the OS release, if one was found.
    os: str | None = None
    #: JSON list of packages (``core.scan_records.package_to_json``).
    packages: str
    failure: str | None = None
    created_at: datetime


class ScanReportRow(SQLModel, table=True):
    __tablename__ = "scan_report"
    __table_args__ = (
        UniqueConstraint("project_id", "digest"),
        Index("ix_scan_report_repository", "project_id", "repository"),
    )
    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", ondelete="CASCADE")
    repository: str = Field(max_length=255)
    digest: str = Field(max_length=256)
    status: str = Field(max_length=16)
    reason: str | None = None
    scanner: str = Field(max_length=64)
    started_at: datetime
    finished_at: datetime | None = None
    data_updated_at: datetime | None = None
    #: Rank of the worst severity found (-1: none), for the severity filter.
    worst: int = -1
    #: JSON lists of the findings and the platforms.
    findings: str
    platforms: str


class ScanAllowlistRow(SQLModel, table=True):
    __tablename__ = "scan_allowlist"
    id: int | None = Field(default=None, primary_key=True)
    #: ``None``: the system allowlist.
    project_id: int | None = Field(
        default=None, foreign_key="project.id", index=True, ondelete="CASCADE"
    )
    vulnerability_id: str = Field(max_length=128)
    expires_at: datetime | None = None
    comment: str = Field(default="", max_length=1024)


class ScanPolicyRow(SQLModel, table=True):
    __tablename__ = "scan_policy"
    project_id: int = Field(foreign_key="project.id", primary_key=True, ondelete="CASCADE")
    scan_on_push: bool = True
    prevent_severity: str | None = Field(default=None, max_length=16)
    refuse_unscanned: bool = False


class ScannerApiScanRow(SQLModel, table=True):
    """A scan requested through the served scanner API (``core.scanner_api``).

    Not tied to a project: the artifact lives in the requester's registry. The pull
    authorization is stored sealed and cleared when the scan ends.
    """

    __tablename__ = "scanner_api_scan"
    id: str = Field(primary_key=True, max_length=64)
    registry_url: str = Field(max_length=2048)
    repository: str = Field(max_length=255)
    digest: str = Field(max_length=256)
    mime_type: str = Field(max_length=255)
    status: str = Field(max_length=16)
    #: The sealed ``Authorization`` value (empty once the scan ended).
    authorization: str = ""
    insecure: bool = False
    created_at: datetime = Field(index=True)
    finished_at: datetime | None = None
    reason: str | None = None
    data_updated_at: datetime | None = None
    #: JSON lists of the findings and the platforms.
    findings: str = "[]"
    platforms: str = "[]"
    #: JSON of the enabled capabilities (``{"types": [...], "sbom_media_types": [...]}``;
    #: ``{}``: all) and of each analyzed image's packages (for the SBOM reports).
    capabilities: str = Field(default="{}", sa_column_kwargs={"server_default": "{}"})
    inventories: str = Field(default="[]", sa_column_kwargs={"server_default": "[]"})
