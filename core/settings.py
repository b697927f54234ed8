"""Moorage configuration: one settings object built once at start and passed down.

Values come from (highest precedence first) explicit keyword arguments and environment
variables with the ``MOORAGE_`` prefix (nested with ``__``, e.g. ``MOORAGE_S3__BUCKET``).
Processes load them with ``adapters.config_file.load_settings``, which adds the optional
YAML file named by ``MOORAGE_CONFIG`` below both; nothing here reads files.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.backup_settings import BackupSettings
from core.control_settings import ControlSettings
from core.database_settings import DatabaseSettings
from core.download_settings import DownloadSettings
from core.errors import RegistryError
from core.identity_settings import AuditSettings, LoginLimitSettings, OidcSettings
from core.names import validate_project_name
from core.observability_settings import ObservabilitySettings
from core.preheat_settings import PreheatSettings
from core.proxy_settings import ProxySettings
from core.replication_settings import ReplicationSettings
from core.scan_settings import ScanSettings
from core.scanner_api_settings import ScannerApiSettings
from core.server_settings import ServerSettings
from core.temporal_settings import TemporalTlsSettings
from core.trust_settings import TrustSettings
from core.webhook_settings import WebhookSettings


class StorageBackend(StrEnum):
    FILESYSTEM = "filesystem"
    S3 = "s3"


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class S3ProjectStorage(BaseModel):
    """One project's own bucket and the credentials that reach it (and nothing else).

    The operator creates the bucket and an access key whose policy allows only that
    bucket. Endpoint and region default to the installation's.
    """

    model_config = ConfigDict(extra="forbid")

    bucket: str
    access_key_id: str
    secret_access_key: SecretStr
    endpoint_url: str | None = None
    region: str | None = None
    #: Prefix inside the project's bucket under which its objects live.
    key_prefix: str = ""


class S3Settings(BaseModel):
    """Where and how blobs are stored on an S3-compatible service.

    By default every project lives in the installation's bucket (``bucket``, under a
    per-project key prefix) or, with ``bucket_per_project``, in a bucket of its own,
    all reached with the installation credentials.

    ``projects`` maps project names to a bucket *and credentials* of their own
    (:class:`S3ProjectStorage`), so that one project's key cannot read another's
    objects. Set it in the ``MOORAGE_CONFIG`` YAML file (``s3: {projects: {p1: {bucket:
    ..., access_key_id: ..., secret_access_key: ...}}}``; keep the file readable by the
    service account only) or as JSON in ``MOORAGE_S3__PROJECTS``. An entry applies to
    a project created while it is configured: the project's objects then go to
    ``<entry key_prefix>tenants/<storage id>/`` in the entry's bucket and every request
    for them is signed with the entry's key. Projects created before the entry keep
    their storage. Removing the entry of an existing project makes its blobs
    unavailable; the installation credentials are never used in its place.
    """

    endpoint_url: str | None = None
    region: str = "us-east-1"
    bucket: str = "moorage"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    #: Give every project its own bucket named ``<bucket_prefix><project id>``.
    bucket_per_project: bool = False
    bucket_prefix: str = "moorage-"
    #: Prefix inside the (shared) bucket under which all tenants live.
    key_prefix: str = ""
    #: Answer blob GET with a redirect to a presigned URL instead of streaming.
    redirect_pulls: bool = False
    presign_seconds: int = 300
    multipart_threshold: int = 64 * 1024 * 1024
    multipart_chunksize: int = 16 * 1024 * 1024
    #: Project name -> the project's own bucket and credentials (see the class doc).
    projects: dict[str, S3ProjectStorage] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_projects(self) -> S3Settings:
        """Every project bucket is a valid name, distinct, and none of the installation's."""
        seen: dict[str, str] = {}
        for name, entry in self.projects.items():
            try:
                validate_project_name(name)
            except RegistryError:
                raise ValueError(f"s3.projects: invalid project name {name!r}") from None
            if _BUCKET_NAME.fullmatch(entry.bucket) is None:
                raise ValueError(f"s3.projects.{name}: invalid bucket name {entry.bucket!r}")
            if entry.bucket in seen:
                raise ValueError(
                    f"s3.projects: {name} and {seen[entry.bucket]} share bucket {entry.bucket}"
                )
            if entry.bucket == self.bucket or (
                self.bucket_per_project and entry.bucket.startswith(self.bucket_prefix)
            ):
                raise ValueError(
                    f"s3.projects.{name}: bucket {entry.bucket} belongs to the installation"
                )
            seen[entry.bucket] = name
        return self


class TemporalSettings(BaseModel):
    """The Temporal cluster all clients of a process connect to (``adapters.temporal_client``)."""

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "moorage"
    tls: TemporalTlsSettings = TemporalTlsSettings()
    #: An API key (Temporal Cloud), sent as a bearer token; TLS is then on by default.
    api_key: SecretStr | None = None
    #: How long a workflow's next task waits for the worker that ran its last one (which
    #: holds its history in memory) before any worker may take it. After a worker dies,
    #: the workflows it ran resume this much later; a shorter wait sends a busy worker's
    #: workflows to other workers sooner, which then replay their histories. Temporal's
    #: SDK default.
    sticky_queue_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    #: Ports of the embedded dev server (``moorage dev`` only).
    dev_port: int = 7233
    dev_ui_port: int = 8233
    dev_http_port: int = 0
    dev_metrics_port: int = 0


class LimitSettings(BaseModel):
    manifest_max_bytes: int = 4 * 1024 * 1024
    #: Largest blob accepted in one upload session.
    blob_max_bytes: int = 64 * 1024 * 1024 * 1024
    page_max: int = 1000
    upload_ttl_seconds: int = 24 * 3600
    #: Open upload sessions allowed per project before 429.
    uploads_per_project: int = 1000
    #: Regular expression (searched) every URL of a non-distributable layer must match
    #: when the registry does not hold the layer; empty: such layers must be pushed.
    nondistributable_urls: str = r"^https?://"
    #: Free bytes below which ``/readyz?verbose`` reports a local disk the registry writes
    #: to (SQLite, filesystem blobs) as low: degraded, never unready. 0 turns it off.
    min_free_bytes: int = Field(default=1024 * 1024 * 1024, ge=0)


class AuthSettings(BaseModel):
    admin_username: str = "admin"
    admin_password: SecretStr | None = None
    service: str = "moorage"
    issuer: str = "moorage"
    token_ttl_seconds: int = Field(default=300, ge=60, le=300)
    #: Let a caller with push rights create a project by pushing into it.
    create_project_on_push: bool = False
    #: Days between scheduled rotations of the token-signing key (0 turns them off).
    key_rotation_days: int = Field(default=30, ge=0)


class SecretSettings(BaseModel):
    """The master keys that seal secrets at rest (``core.sealing``).

    ``master_keys`` are base64 strings of at least 32 bytes each; the first seals, all
    open (rotation: put the new key first). Without any, the installation keeps one
    generated key in ``data_dir/master.key`` (mode 0600), created once at first start.
    """

    master_keys: list[SecretStr] = Field(default_factory=list)
    master_key_file: Path | None = None


class OutboundSettings(BaseModel):
    """Where outbound calls (webhooks, upstream registries, preheat) may go (``core.outbound``).

    ``allow`` lists networks (CIDR) that may be contacted although they are not public;
    ``allow_http`` accepts plain ``http`` URLs.
    """

    allow: list[str] = Field(default_factory=list)
    allow_http: bool = False


class Settings(BaseSettings):
    """Every setting of a Moorage process."""

    model_config = SettingsConfigDict(
        env_prefix="MOORAGE_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Path("./moorage-data")
    #: SQLAlchemy URL; defaults to SQLite under ``data_dir``.
    database_url: str | None = None
    #: PostgreSQL connection pools (``core.database_settings``).
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageBackend = StorageBackend.FILESYSTEM
    #: Root of the filesystem blob store; defaults to ``data_dir/blobs``.
    blob_root: Path | None = None
    s3: S3Settings = S3Settings()
    temporal: TemporalSettings = TemporalSettings()
    limits: LimitSettings = LimitSettings()
    #: Timeouts and connection caps of the API's HTTP connections.
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    oidc: OidcSettings = OidcSettings()
    login_limit: LoginLimitSettings = LoginLimitSettings()
    audit: AuditSettings = AuditSettings()
    control: ControlSettings = ControlSettings()
    secrets: SecretSettings = SecretSettings()
    outbound: OutboundSettings = OutboundSettings()
    proxy: ProxySettings = ProxySettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    scan: ScanSettings = ScanSettings()
    scanner_api: ScannerApiSettings = ScannerApiSettings()
    webhooks: WebhookSettings = WebhookSettings()
    backup: BackupSettings = BackupSettings()
    downloads: DownloadSettings = DownloadSettings()
    replication: ReplicationSettings = ReplicationSettings()
    trust: TrustSettings = TrustSettings()
    preheat: PreheatSettings = PreheatSettings()
    #: Public base URL of the registry; derived from the request when unset.
    public_url: str | None = None
    grpc_health_port: int = 0

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        del settings_cls, dotenv_settings, file_secret_settings  # NOTE: no .env, no secret dirs
        return (init_settings, env_settings)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'moorage.db').resolve()}"

    @property
    def resolved_master_key_file(self) -> Path:
        return (self.secrets.master_key_file or self.data_dir / "master.key").resolve()

    @property
    def resolved_blob_root(self) -> Path:
        return (self.blob_root or self.data_dir / "blobs").resolve()
