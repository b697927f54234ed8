"""The composition root: every engine, store, clock and service a process uses, from ``Settings``.

Nothing else in Moorage builds these; the API, the worker and the CLI commands all take
them from a :class:`Composition`:

- ``api.app.create_app`` (each API server worker process, and ``moorage dev``) builds the
  request handlers' :class:`api.context.Registry` with :meth:`Composition.registry`;
- the worker (``moorage worker``, and ``moorage dev`` beside the API, on the same
  composition) binds its activities to the services here (``cli.wiring.build_activities``)
  and runs :meth:`Composition.outbox_dispatcher`;
- ``cli.startup.prepare_installation`` (``moorage api``'s and ``moorage dev``'s main
  process, before any server worker exists) and the admin commands (``moorage keys``,
  ``moorage audit``) use the metadata and the stores here.

What it builds, once per process and composition:

- **engines** (``storage.db.engine.create_engines``): the reader and writer engines and, on
  SQLite, the write lock every writer of the process takes;
- **metadata**: ``SqlMetadata(engines)``, the one metadata store (its only construction);
- **blob store** (filesystem or S3), the **clock** (one :class:`adapters.clock.SystemClock`)
  and the **change recorder** (GC review delay and quota warning ratio from settings);
- the **services**: projects, repositories, uploads, manifests (with pull-time recording
  and the nondistributable-URL rules), auth and tokens, identity, access control and audit,
  the garbage collector, retention, quota reconciliation, key rotation.

Every dependency is passed explicitly: no service builds a default collaborator of its own
(``tests/unit/cli/test_composition.py`` checks that every constructor called here gets
every parameter). Components are built on first use (a CLI command that only verifies the
audit log opens no blob store) and then shared: the API and the worker of ``moorage dev``
use the same upload service, change recorder and clock. They live until :meth:`close`
(or the process's end); a composition is not shared across processes: a forked or spawned
server worker builds its own from the same settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cached_property, partial

from adapters.clock import SystemClock
from adapters.jwks import JwksKeys
from adapters.keycloak import KeycloakProvider
from adapters.master_key import secret_box
from adapters.openssl_sha256 import resumable_hashing
from adapters.osv_files import OsvFiles
from adapters.outbound_http import KEEPALIVE, OutboundClient, resolve_host
from adapters.preheat_providers import PROVIDER_ANSWER_BYTES, provider_client
from adapters.replication_clients import ReplicationClients
from adapters.scanner_api_http import PING_SECONDS, AdapterProbe
from api.backup_runs import BackupRuns
from api.context import Registry
from api.preheat_schedules import preheat_schedules
from api.promotion_runs import PromotionRuns
from api.replication_schedules import replication_schedules
from api.run_control import EXTRAS_KEY as RUN_CONTROL
from api.run_control import RunControl, TemporalRuns
from api.temporal import TemporalProbe
from api.workflow_starter import TemporalStarter
from cli.outbox import OutboxDispatcher
from cli.outbox_task import build_outbox_dispatcher, webhook_log_pruner
from core.backup_crypto import codec_of
from core.backup_ports import BlobAddress
from core.backup_service import BackupService
from core.digests import Digest
from core.endpoints import EndpointService
from core.execution_reconcile import ExecutionReconciler
from core.execution_rows import PreheatExecutionRows, ReplicationExecutionRows
from core.execution_stop import ExecutionStopper
from core.key_rotation import KeyRotation
from core.login_limit import LoginLimiter, LoginPolicy
from core.manifests import ManifestRules
from core.outbound import OutboundPolicy
from core.ports import BlobStore, Clock, NowaitReads
from core.preheat import PREHEAT_SUBSCRIBER, Instance, ProviderClient, preheat_interest
from core.preheat_service import (
    PreheatRunner,
    PreheatService,
    StoredCriteria,
    StoredSignatures,
    StoredVulnerabilities,
)
from core.promotion import ScanReports
from core.promotion_rules import PROMOTION_SUBSCRIBER, promotion_interest
from core.promotion_scans import StoredScanReports
from core.proxy import is_proxy_project
from core.pulls import PullRecorder
from core.replication import REPLICATION_SUBSCRIBER, ReplicationService, replication_interest
from core.replication_copy import ReplicaRegistry
from core.replication_run import ReplicationRunner
from core.scan.analyzer import Analyzer
from core.scan_jobs import SCAN_SUBSCRIBER, scan_interest
from core.scan_referrers import SbomPublisher
from core.scan_service import ScanService
from core.scanner_api_service import AdapterScans
from core.scanners import ScannerService
from core.services.access_control import AccessControl
from core.services.audit_log import AuditLog
from core.services.auth import AuthService, load_signing_keys
from core.services.authenticator import Authenticator
from core.services.browser_login import BrowserLogin
from core.services.changes import ChangeRecorder
from core.services.gc import SWEEP_CHUNK, GarbageCollector
from core.services.identity_services import IdentityServices
from core.services.manifests import ManifestService
from core.services.members import KnownIdentities, MemberService
from core.services.personal_tokens import PersonalTokenService
from core.services.policies import PolicyService
from core.services.project_access import ProjectAccess
from core.services.projects import ProjectService
from core.services.promotion_copy import PromotionCopier
from core.services.promotion_keys import PromotionKeys
from core.services.promotion_rules import PromotionRuleService
from core.services.promotions import PromotionService
from core.services.push_signing import PushSigner
from core.services.reconcile import QuotaReconciler
from core.services.registry_signing import RegistrySigner
from core.services.replication_local import LocalReplica
from core.services.repositories import RepositoryService
from core.services.retention import RetentionService
from core.services.robots import RobotService
from core.services.trusted_issuers import TrustedIssuers
from core.services.uploads import UploadService
from core.services.users import UserService
from core.settings import Settings
from core.subscribers import Interest, Subscribers
from core.tokens import TokenService
from core.trust_verify import TrustVerifier
from core.vulndb.importer import ImportLimits, OsvImporter
from core.webhook_events import WEBHOOK_SUBSCRIBER, webhook_interest
from storage.backup_holds import SqlBackupHolds
from storage.backup_location import build_backup_location
from storage.backup_snapshot import SqlSnapshots
from storage.blobs import build_blob_store
from storage.db.audit import SqlAuditStore
from storage.db.endpoints import SqlEndpoints
from storage.db.engine import Engines, create_engines
from storage.db.identity import SqlIdentityStore
from storage.db.login_attempts import SqlLoginAttemptStore
from storage.db.metadata import SqlMetadata
from storage.db.preheat import SqlPreheatStore
from storage.db.promotion_rules import SqlPromotionRuleStore
from storage.db.pull_times import LOCK_WAIT_SECONDS, SqlPullTimes
from storage.db.replication import SqlReplicationStore
from storage.db.scanner_api import SqlAdapterScans
from storage.db.scanners import SqlScanners
from storage.db.scans import SqlArtifacts, SqlScanStore
from storage.db.signing_keys import SqlSigningKeyStore
from storage.db.trust import SqlTrustStore
from storage.db.vulndb import SqlVulnDb
from storage.db.webhooks import SqlWebhookStore


class Composition:
    """The components of one process, built from one :class:`Settings`.

    Args:
        settings: The process's settings.
        clock: The process's clock; :func:`compose` passes the system clock (tests pass
            a clock they control).
    """

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.engines: Engines = create_engines(settings)
        #: The one construction of the metadata store.
        self.metadata = SqlMetadata(self.engines)
        self.changes = ChangeRecorder(
            settings.control.gc_review_delay_seconds,
            settings.control.quota_warning_ratio,
            clock,
        )

    def close(self) -> None:
        """Write the audit events still queued, release the database connections.

        (The process is done with them.) The audit log is closed only if this root built it.
        """
        try:
            if "audit_log" in self.__dict__:
                self.audit_log.close()
        finally:
            self.engines.dispose()

    # -- stores -------------------------------------------------------------------------

    @cached_property
    def store(self) -> BlobStore:
        """The blob store the settings name (filesystem or S3)."""
        return build_blob_store(self.settings)

    @cached_property
    def nowait(self) -> NowaitReads | None:
        """Reads that never wait (SQLite only), for callers on an event loop thread."""
        return self.metadata if self.metadata.reads_nowait else None

    @cached_property
    def identity_store(self) -> SqlIdentityStore:
        return SqlIdentityStore(self.metadata)

    @cached_property
    def audit_store(self) -> SqlAuditStore:
        return SqlAuditStore(self.engines)

    @cached_property
    def signing_keys(self) -> SqlSigningKeyStore:
        return SqlSigningKeyStore(self.metadata)

    # -- data-plane services --------------------------------------------------------------

    @cached_property
    def projects(self) -> ProjectService:
        return ProjectService(self.metadata, self.store)

    @cached_property
    def repositories(self) -> RepositoryService:
        return RepositoryService(self.metadata, self.projects, self.changes, nowait=self.nowait)

    @cached_property
    def uploads(self) -> UploadService:
        return UploadService(
            self.metadata,
            self.store,
            self.clock,
            self.settings.limits,
            self.changes,
            resumable_hashing(),
        )

    @cached_property
    def manifests(self) -> ManifestService:
        pulls = PullRecorder(
            SqlPullTimes(self.engines, LOCK_WAIT_SECONDS),
            self.settings.control.pull_time_granularity_seconds,
            self.clock,
        )
        return ManifestService(
            self.metadata,
            self.changes,
            pulls=pulls,
            nowait=self.nowait,
            rules=ManifestRules.from_pattern(self.settings.limits.nondistributable_urls),
            awaited=self.metadata if self.metadata.reads_async else None,
        )

    @cached_property
    def tokens(self) -> TokenService:
        """The registry's token service over the stored signing keys.

        Raises:
            RuntimeError: There is no signing key (the installation is not prepared:
                ``cli.startup.prepare_installation``).
        """
        keys = load_signing_keys(self.metadata)
        if not keys:
            raise RuntimeError("no token-signing key: run cli.startup.prepare_installation first")
        auth = self.settings.auth
        return TokenService(
            keys,
            auth.issuer,
            auth.service,
            auth.token_ttl_seconds,
            partial(load_signing_keys, self.metadata),
        )

    @cached_property
    def auth(self) -> AuthService:
        return AuthService(
            self.metadata, self.projects, self.tokens, self.settings.auth, self.clock
        )

    # -- identity, access control, audit --------------------------------------------------

    @cached_property
    def identity(self) -> IdentityServices:
        """Identity, access control and audit over the SQL stores and the IdP adapters."""
        settings = self.settings
        store = self.identity_store
        local = self.auth
        access = AccessControl(store, self.projects, settings.oidc.group_prefix)
        issuers = TrustedIssuers(store, JwksKeys)
        keycloak = KeycloakProvider(settings.oidc) if settings.oidc.issuer else None
        policy = LoginPolicy(
            settings.login_limit.max_failures,
            timedelta(seconds=settings.login_limit.window_seconds),
        )
        limiter = LoginLimiter(SqlLoginAttemptStore(self.engines), policy, self.clock)
        tokens = PersonalTokenService(store, self.clock)
        return IdentityServices(
            store=store,
            authenticator=Authenticator(local, store, issuers, keycloak, limiter, self.clock),
            access=access,
            users=UserService(store, local, limiter),
            members=MemberService(store, access, KnownIdentities(local, keycloak)),
            projects=ProjectAccess(self.projects, access, store),
            robots=RobotService(store, access),
            tokens=tokens,
            issuers=issuers,
            audit=AuditLog(self.audit_store, settings.audit),
            limiter=limiter,
            browser_login=BrowserLogin(
                keycloak, store, tokens, self.clock, token_hours=settings.oidc.browser_token_hours
            ),
        )

    # -- control-plane services -----------------------------------------------------------

    @cached_property
    def collector(self) -> GarbageCollector:
        return GarbageCollector(
            self.metadata, self.store, self.changes, self.backup_holds, sweep_chunk=SWEEP_CHUNK
        )

    @cached_property
    def backup_holds(self) -> SqlBackupHolds:
        """GC holds of running backups (GC honours them, backups take them)."""
        return SqlBackupHolds(self.engines, self.clock)

    @cached_property
    def backups(self) -> BackupService:
        """Backups into ``settings.backup``'s location, restores from it."""
        key = self.settings.backup.encryption_key
        return BackupService(
            build_backup_location(self.settings),
            SqlSnapshots(self.engines),
            self.backup_holds,
            self.store,
            codec_of(key.get_secret_value() if key is not None else None),
            self.clock,
            hold_seconds=self.settings.backup.hold_seconds,
            source_address=self._blob_address,
        )

    def _blob_address(self, tenant: str, digest: Digest) -> BlobAddress | None:
        """Where a blob lives in S3, when the store is S3 (for server-side backup copies)."""
        address = getattr(self.store, "blob_address", None)
        found: BlobAddress | None = address(tenant, digest) if address is not None else None
        return found

    @cached_property
    def retention(self) -> RetentionService:
        return RetentionService(self.metadata, self.manifests, self.changes)

    @cached_property
    def reconciler(self) -> QuotaReconciler:
        return QuotaReconciler(self.metadata, self.store, self.settings.control.quota_warning_ratio)

    @cached_property
    def key_rotation(self) -> KeyRotation:
        return KeyRotation(self.signing_keys)

    @cached_property
    def webhook_store(self) -> SqlWebhookStore:
        """Webhook policies and their delivery log, on this process's engines."""
        return SqlWebhookStore(self.engines)

    @cached_property
    def endpoint_store(self) -> SqlEndpoints:
        """Registry endpoints (proxy upstreams, replication targets), on these engines."""
        return SqlEndpoints(self.engines)

    @cached_property
    def replication_store(self) -> SqlReplicationStore:
        """Replication policies, executions and tasks, on these engines."""
        return SqlReplicationStore(self.engines)

    @cached_property
    def replication(self) -> ReplicationService:
        """Replication policies and the execution history (``core.replication``)."""
        endpoints = self.endpoint_store
        return ReplicationService(
            self.replication_store, lambda name: endpoints.get(name) is not None, self.clock.now
        )

    @cached_property
    def replication_runner(self) -> ReplicationRunner:
        """What replication's activities run: plans and copies over both sides' clients."""
        settings = self.settings
        policy = OutboundPolicy.of(settings.outbound.allow, allow_http=settings.outbound.allow_http)
        endpoints = EndpointService(self.endpoint_store, partial(secret_box, settings), policy)
        clients = ReplicationClients(settings, endpoints, lambda: self.tokens)
        return ReplicationRunner(
            self.replication_store,
            clients,
            settings.replication,
            settings.limits.manifest_max_bytes,
            self.clock.now,
            local_digests=self.manifests.tag_digests,
            local_destination=self.replication_local(clients.local),
            monotonic=time.monotonic,
        )

    def replication_local(self, reads: Callable[[], ReplicaRegistry]) -> LocalReplica:
        """This installation as a pull's destination, written in-process.

        ``reads``: the ``/v2`` client for what a copy reads from here (a push's side).
        """
        return LocalReplica(
            self.metadata,
            self.repositories,
            self.manifests,
            self.uploads,
            self.audit_log,
            self.clock,
            is_proxy=partial(is_proxy_project, self.metadata),
            create_project=self.settings.auth.create_project_on_push,
            reads=reads,
            refresh_seconds=self.settings.proxy.refresh_seconds,
        )

    @cached_property
    def trust_store(self) -> SqlTrustStore:
        """Trust policies and signature verification results, on these engines."""
        return SqlTrustStore(self.engines)

    @cached_property
    def trust_verifier(self) -> TrustVerifier:
        return TrustVerifier(
            self.metadata, self.store, self.trust_store, self.settings.trust, self.clock
        )

    @cached_property
    def scan_store(self) -> SqlScanStore:
        """Scan inventories, reports, allowlists and policies, on these engines."""
        return SqlScanStore(self.engines)

    @cached_property
    def vulndb(self) -> SqlVulnDb:
        """The offline vulnerability data (OSV records), on these engines."""
        return SqlVulnDb(self.engines)

    @cached_property
    def osv_importer(self) -> OsvImporter:
        """The OSV importer over this database and the outbound policy's client."""
        settings = self.settings
        config = settings.scan.vulndb
        policy = OutboundPolicy.of(settings.outbound.allow, allow_http=settings.outbound.allow_http)
        return OsvImporter(
            self.vulndb,
            OsvFiles(policy, config.max_download_bytes, config.download_timeout_seconds),
            self.clock.now,
            ImportLimits(config.max_record_bytes, config.max_records, config.import_batch_size),
        )

    @cached_property
    def scan_artifacts(self) -> SqlArtifacts:
        """Stored manifests as scan candidates."""
        return SqlArtifacts(self.engines)

    @cached_property
    def sboms(self) -> SbomPublisher:
        """Pushes SBOM referrers of scanned images through the push services."""
        return SbomPublisher(
            self.scan_artifacts,
            self.scan_store,
            self.repositories,
            self.uploads,
            self.manifests,
            self.clock,
        )

    @cached_property
    def scans(self) -> ScanService:
        """Analysis and matching of stored artifacts."""
        return ScanService(
            self.scan_artifacts,
            self.store,
            self.scan_store,
            self.vulndb,
            self.vuln_data_time,
            Analyzer(self.settings.scan, time.monotonic),
            self.clock,
        )

    def vuln_data_time(self) -> datetime | None:
        """When the vulnerability data was last imported (``None``: never)."""
        stamps = [s.imported_at for s in self.vulndb.sources() if s.imported_at is not None]
        return max(stamps, default=None)

    @cached_property
    def adapter_scans(self) -> AdapterScans:
        """Scans requested through the served scanner API (``core.scanner_api_service``)."""
        settings = self.settings
        return AdapterScans(
            SqlAdapterScans(self.engines, partial(secret_box, settings)),
            self.clock,
            settings.scanner_api.keep_seconds,
            self.vulndb,
            Analyzer(settings.scan, time.monotonic),
            self.vuln_data_time,
        )

    @cached_property
    def scanners(self) -> ScannerService:
        """Scanner registrations and the choice of a project's scanner (``core.scanners``)."""
        settings = self.settings
        return ScannerService(
            SqlScanners(self.engines),
            partial(secret_box, settings),
            OutboundPolicy.of(settings.outbound.allow, allow_http=settings.outbound.allow_http),
            PolicyService(self.metadata),
            self.clock.now,
        )

    @cached_property
    def scan_reports(self) -> ScanReports:
        """Scan reports for the promotion gate: the scan store's, allowlists applied."""
        projects = self.projects

        def project_id_of(name: str) -> int | None:
            found = projects.find(name)
            return None if found is None else found.id

        return StoredScanReports(self.scan_store, project_id_of, self.clock.now)

    @cached_property
    def promotion_copier(self) -> PromotionCopier:
        return PromotionCopier(
            self.metadata,
            self.repositories,
            self.manifests,
            self.uploads,
            self.registry_signer,
            partial(is_proxy_project, self.metadata),
        )

    @cached_property
    def push_signer(self) -> PushSigner:
        """Signs pushes into projects whose trust policy asks (the trust subscriber)."""
        return PushSigner(
            self.metadata, self.repositories, self.trust_store, self.registry_signer, self.clock
        )

    @cached_property
    def registry_signer(self) -> RegistrySigner:
        """The registry's own signatures with its projects' keys (promotions, pushes)."""
        return RegistrySigner(self.metadata, self.manifests, self.uploads, self.promotion_keys)

    @cached_property
    def audit_log(self) -> AuditLog:
        """The audit log for writers outside a request (the promotion outcome)."""
        return AuditLog(self.audit_store, self.settings.audit)

    @cached_property
    def promotion_keys(self) -> PromotionKeys:
        """Projects' promotion signing keys, sealed under the master key."""
        return PromotionKeys(self.metadata, partial(secret_box, self.settings), self.clock)

    @cached_property
    def promotions(self) -> PromotionService:
        """Promotion requests, rights and gates (``core.services.promotions``)."""
        # NOTE: its own AccessControl over the stores, not ``identity``'s: a worker builds
        # this without the token service (which needs a prepared installation).
        access = AccessControl(self.identity_store, self.projects, self.settings.oidc.group_prefix)
        return PromotionService(
            access,
            self.projects,
            self.promotion_copier,
            self.trust_store,
            self.scan_reports,
        )

    @cached_property
    def promotion_rule_store(self) -> SqlPromotionRuleStore:
        """Promotion rules, on these engines."""
        return SqlPromotionRuleStore(self.engines)

    @cached_property
    def promotion_rules(self) -> PromotionRuleService:
        """Projects' promotion rules (``core.services.promotion_rules``)."""
        access = AccessControl(self.identity_store, self.projects, self.settings.oidc.group_prefix)
        return PromotionRuleService(
            self.promotion_rule_store, access, self.promotions, self.clock.now
        )

    @cached_property
    def preheat_store(self) -> SqlPreheatStore:
        """P2P instances, preheat policies, executions and tasks, on these engines."""
        return SqlPreheatStore(self.engines)

    @cached_property
    def preheat_outbound(self) -> OutboundClient:
        """The SSRF-safe client every provider call goes through."""
        settings = self.settings
        policy = OutboundPolicy.of(settings.outbound.allow, allow_http=settings.outbound.allow_http)
        return OutboundClient(
            policy,
            connect_timeout=min(5.0, settings.preheat.timeout_seconds),
            total_timeout=settings.preheat.timeout_seconds,
            max_body_bytes=PROVIDER_ANSWER_BYTES,
            verify=True,
            resolver=resolve_host,
            keepalive=KEEPALIVE,
        )

    @cached_property
    def preheat_insecure_outbound(self) -> OutboundClient:
        """The client of ``insecure`` P2P instances: outbound checks kept, TLS not verified."""
        settings = self.settings
        policy = OutboundPolicy.of(settings.outbound.allow, allow_http=settings.outbound.allow_http)
        return OutboundClient(
            policy,
            connect_timeout=min(5.0, settings.preheat.timeout_seconds),
            total_timeout=settings.preheat.timeout_seconds,
            max_body_bytes=PROVIDER_ANSWER_BYTES,
            verify=False,
            resolver=resolve_host,
            keepalive=KEEPALIVE,
        )

    @cached_property
    def preheat_providers(self) -> Callable[[Instance, str | None], ProviderClient]:
        """Builds the vendor client of an instance (``adapters.preheat_providers``)."""
        return partial(
            provider_client,
            self.preheat_outbound,
            insecure_client=self.preheat_insecure_outbound,
        )

    @cached_property
    def preheat(self) -> PreheatService:
        """Provider instances, preheat policies and executions (``core.preheat_service``)."""
        settings = self.settings
        # NOTE: its own AccessControl over the stores (a worker builds this without the
        # token service, which needs a prepared installation).
        access = AccessControl(self.identity_store, self.projects, settings.oidc.group_prefix)
        return PreheatService(
            self.preheat_store,
            access,
            partial(secret_box, settings),
            OutboundPolicy.of(settings.outbound.allow, allow_http=settings.outbound.allow_http),
            self.clock.now,
            self.preheat_criteria,
        )

    @cached_property
    def preheat_criteria(self) -> StoredCriteria:
        """The preheat criteria a project's trust and scan policies impose."""
        return StoredCriteria(self.trust_store, self.scan_store)

    @cached_property
    def preheat_runner(self) -> PreheatRunner:
        """What the preheat activities run."""
        settings = self.settings
        return PreheatRunner(
            self.preheat,
            self.metadata,
            StoredSignatures(self.trust_store, time.monotonic),
            StoredVulnerabilities(self.scan_reports),
            self.preheat_criteria,
            lambda: self.tokens,
            self.preheat_providers,
            settings.preheat,
            settings.preheat.registry_url or settings.public_url or settings.replication.local_url,
            self.clock.now,
        )

    # -- what processes run ---------------------------------------------------------------

    def registry(self) -> Registry:
        """What the API's request handlers reach (``api.context.Registry``).

        The installation must be prepared (schema at head, a signing key, the admin
        account: ``cli.startup.prepare_installation``); this only reads it, so every API
        worker process can call it. ``build_app`` sets the registry's hooks (the audit
        hook it puts first needs the registry).
        """
        workflow_runs = TemporalRuns(self.settings.temporal)
        replication_rows = ReplicationExecutionRows(self.replication_store)
        preheat_rows = PreheatExecutionRows(self.preheat_store)
        return Registry(
            settings=self.settings,
            metadata=self.metadata,
            store=self.store,
            projects=self.projects,
            repositories=self.repositories,
            uploads=self.uploads,
            manifests=self.manifests,
            auth=self.auth,
            extras={
                "webhook_store": self.webhook_store,
                "endpoint_store": self.endpoint_store,
                "replication": self.replication,
                "replication_starter": TemporalStarter(self.settings.temporal),
                "replication_schedules": replication_schedules(self.settings.temporal),
                "replication_stopper": ExecutionStopper(
                    replication_rows, workflow_runs, self.clock.now
                ),
                "replication_reconciler": ExecutionReconciler(
                    replication_rows, workflow_runs, self.clock.now
                ),
                "preheat": self.preheat,
                "preheat_providers": self.preheat_providers,
                "preheat_starter": TemporalStarter(self.settings.temporal),
                "preheat_stopper": ExecutionStopper(preheat_rows, workflow_runs, self.clock.now),
                "preheat_reconciler": ExecutionReconciler(
                    preheat_rows, workflow_runs, self.clock.now
                ),
                "preheat_schedules": preheat_schedules(self.settings.temporal),
                "trust_store": self.trust_store,
                "scan_store": self.scan_store,
                "scanner_api": self.adapter_scans,
                "scanners": self.scanners,
                "scanner_probe": AdapterProbe(
                    OutboundPolicy.of(
                        self.settings.outbound.allow, allow_http=self.settings.outbound.allow_http
                    ),
                    timeout=PING_SECONDS,
                ),
                "vuln_data_time": self.vuln_data_time,
                "promotions": self.promotions,
                "promotion_keys": self.promotion_keys,
                "promotion_rules": self.promotion_rules,
                "promotion_runs": PromotionRuns(self.settings.temporal),
                "temporal_check": TemporalProbe(self.settings.temporal),
                "backups": self.backups,
                "backup_runs": BackupRuns(self.settings.temporal),
                RUN_CONTROL: RunControl(self.metadata, workflow_runs, self.clock),
            },
            identity=self.identity,
        )

    def outbox_dispatcher(self, subscribers: Subscribers) -> OutboxDispatcher:
        """The outbox dispatcher over this metadata store, feeding ``subscribers``."""
        pruner = webhook_log_pruner(self.settings, self.webhook_store)
        return build_outbox_dispatcher(
            self.settings,
            self.metadata,
            subscribers,
            self.clock,
            pruners=() if pruner is None else (pruner,),
            interests=self.subscriber_interests(),
        )

    def subscriber_interests(self) -> dict[str, Interest]:
        """By subscriber kind, the events each feature's configuration could act on."""
        return {
            WEBHOOK_SUBSCRIBER.kind: webhook_interest(self.webhook_store.subscribed),
            REPLICATION_SUBSCRIBER.kind: replication_interest(self.replication.policies),
            SCAN_SUBSCRIBER.kind: scan_interest(self.scan_store.policy),
            PREHEAT_SUBSCRIBER.kind: preheat_interest(self.preheat.store.policies),
            PROMOTION_SUBSCRIBER.kind: promotion_interest(self.promotion_rule_store.enabled_of),
        }


def compose(settings: Settings) -> Composition:
    """The composition of a process: ``settings`` with the system clock."""
    return Composition(settings, SystemClock())
