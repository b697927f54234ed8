"""Kinds of outbox events and of GC review triggers (plain constants)."""

from __future__ import annotations

from typing import Final

MANIFEST_PUSHED: Final = "manifest.pushed"
MANIFEST_DELETED: Final = "manifest.deleted"
TAG_CREATED: Final = "tag.created"
TAG_MOVED: Final = "tag.moved"
TAG_DELETED: Final = "tag.deleted"
BLOB_UNLINKED: Final = "blob.unlinked"
PROJECT_DELETED: Final = "project.deleted"
GC_REQUESTED: Final = "gc.requested"
RETENTION_REQUESTED: Final = "retention.requested"
#: A project's usage crossed its quota's warning ratio (``core.services.quota``).
QUOTA_WARNING: Final = "quota.warning"
#: A push was refused by the project's quota (``core.services.quota``); at most one per
#: project, quota and hour.
QUOTA_EXCEEDED: Final = "quota.exceeded"

#: Requests for a control-plane run: each starts its own workflow (named by the run).
RUN_REQUESTS: Final = frozenset({GC_REQUESTED, RETENTION_REQUESTED})

#: Events that describe a change of an artifact (fanned out to subscribers,
#: ``core.subscribers``).
ARTIFACT_EVENTS: Final = frozenset(
    {
        MANIFEST_PUSHED,
        MANIFEST_DELETED,
        TAG_CREATED,
        TAG_MOVED,
        TAG_DELETED,
        BLOB_UNLINKED,
        PROJECT_DELETED,
    }
)

# review-queue triggers (GitLab's event names)
BLOB_UPLOAD: Final = "blob_upload"
BLOB_MOUNT: Final = "blob_mount"
LAYER_DELETE: Final = "layer_delete"
MANIFEST_UPLOAD: Final = "manifest_upload"
MANIFEST_DELETE: Final = "manifest_delete"
MANIFEST_LIST_DELETE: Final = "manifest_list_delete"
TAG_DELETE: Final = "tag_delete"
TAG_SWITCH: Final = "tag_switch"

# events added for webhook subscribers (``core.webhook_events``)
#: A manifest was served by a ``GET`` (written only while a pull subscriber exists).
MANIFEST_PULLED: Final = "manifest.pulled"
#: A GC run reached a final state (system event; data: run id, state, report).
GC_FINISHED: Final = "gc.finished"
#: A retention run completed (data: run id, project, report).
RETENTION_FINISHED: Final = "retention.finished"
#: A webhook policy has deliveries to send again (redelivery, resume); data: policy id.
WEBHOOK_WAKE: Final = "webhook.wake"
#: A scan of an artifact finished with a report (``core.scan_events``).
SCAN_COMPLETED: Final = "scan.completed"
#: A scan of an artifact ended without a result (``core.scan_events``).
SCAN_FAILED: Final = "scan.failed"
#: An image's signatures meet its project's trust policy (``core.trust_events``).
SIGNATURE_VERIFIED: Final = "signature.verified"
#: An image's signatures do not meet its project's trust policy (``core.trust_events``).
SIGNATURE_REFUSED: Final = "signature.refused"
#: A replication execution reached its final status (system event,
#: ``core.replication_events``).
REPLICATION_FINISHED: Final = "replication.finished"
#: A promotion was promoted, refused or failed (``core.promotion_events``).
PROMOTION_FINISHED: Final = "promotion.finished"
