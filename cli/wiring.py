"""The worker's activities, bound to the services of the composition root."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from activities.backup import BackupActivities
from activities.events import EventActivities
from activities.gc import GcActivities
from activities.keys import KeyActivities
from activities.preheat import PreheatActivities
from activities.promotion_rules import PromotionRuleActivities
from activities.promotions import PromotionActivities
from activities.quota import QuotaActivities
from activities.replication import ReplicationActivities
from activities.retention import RetentionActivities
from activities.scanner_api import DelegateActivities, ScannerApiActivities
from activities.scans import ScanActivities
from activities.trust import TrustActivities
from activities.uploads import UploadActivities
from activities.vulndb import VulnDbActivities
from activities.webhooks import WebhookActivities
from adapters.master_key import secret_box
from adapters.scanner_api_http import ScannerApiClient, remote_source
from adapters.webhook_http import webhook_http
from core.outbound import OutboundPolicy
from core.scanners import delegate_of
from core.services.promotion_outcomes import PromotionOutcomes

if TYPE_CHECKING:
    from collections.abc import Callable

    from cli.composition import Composition


def build_activities(root: Composition) -> list[Callable[..., Any]]:
    """Every activity the worker registers, over ``root``'s services.

    The activities get the services (and the process's one clock) the root built, so
    they share its engines: on SQLite every writer takes the process's write lock
    (``storage.db.engine.Engines.writing``), and a setting reaches the worker's services
    exactly as it reaches the API's.
    """
    uploads = UploadActivities(root.uploads, root.store, root.clock)
    gc = GcActivities(root.collector, root.metadata, root.settings.control, root.clock)
    keys = KeyActivities(root.key_rotation, root.clock)
    events = EventActivities()
    settings = root.settings
    webhooks = WebhookActivities(
        settings, root.webhook_store, partial(secret_box, settings), partial(webhook_http, settings)
    )
    backups = BackupActivities(root.backups)
    replication = ReplicationActivities(root.replication_runner, root.replication)
    scans = ScanActivities(root.scans, root.sboms)
    policy = OutboundPolicy.of(settings.outbound.allow, allow_http=settings.outbound.allow_http)
    served = ScannerApiActivities(
        root.adapter_scans,
        partial(
            remote_source,
            policy=policy,
            max_blob_bytes=settings.scanner_api.max_blob_bytes,
            spool_bytes=settings.scan.spool_bytes,
        ),
    )
    delegate = settings.scanner_api.delegate
    delegated = DelegateActivities(
        root.scans,
        delegate,
        delegate.registry_url or settings.public_url or settings.replication.local_url,
        lambda: root.tokens,
        partial(delegate_of, registered=root.scanners.resolve, settings=delegate),
        partial(ScannerApiClient.of, policy=policy),
        root.sboms.attach_documents,
    )
    promotions = PromotionActivities(
        root.promotions,
        root.promotion_copier,
        root.audit_log,
        root.clock,
        PromotionOutcomes(root.metadata),
    )
    preheat = PreheatActivities(root.preheat_runner)
    return [
        backups.backup_begin,
        backups.backup_copy_blobs,
        backups.backup_finish,
        backups.backup_release,
        backups.backup_verify,
        backups.backup_prune,
        backups.restore_plan,
        backups.restore_blobs,
        backups.restore_rows,
        uploads.reap_expired_uploads,
        gc.gc_record_run,
        gc.gc_collect_manifests,
        gc.gc_collect_blobs,
        gc.gc_sweep_orphans,
        events.deliver_events_log,
        events.handle_event,
        RetentionActivities(root.retention, root.metadata, root.clock).run_retention,
        QuotaActivities(root.reconciler).reconcile_quotas,
        keys.rotate_signing_key,
        keys.retire_signing_keys,
        webhooks.deliver_events_webhook,
        webhooks.send_webhook_deliveries,
        replication.replication_plan,
        replication.replication_next_tasks,
        replication.replication_copy,
        replication.replication_fail_task,
        replication.replication_finish,
        replication.replication_stop,
        replication.deliver_events_replication,
        TrustActivities(root.trust_verifier, root.push_signer).deliver_events_trust,
        scans.deliver_events_scan,
        scans.scan_analyze_artifact,
        scans.scan_match_artifact,
        scans.scan_attach_sboms,
        scans.scan_record_failure,
        scans.scan_list_candidates,
        scans.scan_rematch_reports,
        delegated.scan_delegate_artifact,
        served.scanner_api_scan_artifact,
        served.scanner_api_record_failure,
        VulnDbActivities(root.osv_importer, settings.scan.vulndb.sources).vulndb_import_sources,
        promotions.promotion_evaluate,
        promotions.promotion_copy,
        promotions.promotion_record,
        PromotionRuleActivities(
            root.promotion_rule_store, root.audit_log, root.clock
        ).deliver_events_promotion,
        preheat.preheat_plan,
        preheat.preheat_next_tasks,
        preheat.preheat_create_job,
        preheat.preheat_poll_job,
        preheat.preheat_record_task,
        preheat.preheat_finish,
        preheat.preheat_stop,
        preheat.deliver_events_preheat,
    ]
